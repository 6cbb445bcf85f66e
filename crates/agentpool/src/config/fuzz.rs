//! The config parser against arbitrary files: every text gets a config or an error naming the
//! problem, never a panic, and whatever it accepts holds the limits validation promises.

use super::{Flags, load};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `text` to a config file of its own and loads it as `serve --config` would.
fn load_text(text: &str) -> anyhow::Result<super::ServeConfig> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "agentpool-config-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("agentpool.toml");
    std::fs::write(&path, text).expect("write config");
    let loaded = load(&Flags {
        config: Some(&path),
        ..Flags::default()
    });
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

/// Values that sit on the edges of what the fields take.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1".to_owned()),
        Just("4294967296".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("1.5".to_owned()),
        Just("nan".to_owned()),
        Just("true".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"a\\u202eb\"".to_owned()),
        Just("[]".to_owned()),
        Just("{ type = \"exec\", command = [] }".to_owned()),
        Just("{ type = \"http\", url = \"ftp://x\" }".to_owned()),
        any::<u32>().prop_map(|n| n.to_string()),
        "[a-z]{0,80}".prop_map(|s| format!("\"{s}\"")),
    ]
}

const POOL_KEYS: [&str; 12] = [
    "name",
    "role",
    "max_agents_per_process",
    "min_processes",
    "max_processes",
    "idle_worker_ttl_secs",
    "placement",
    "restart",
    "max_restarts",
    "handler",
    "restart_backoff_ms",
    "unknown_key",
];

/// A config with one pool whose fields are drawn from the edges above.
fn pool_file() -> impl Strategy<Value = String> {
    proptest::collection::vec((0..POOL_KEYS.len(), value()), 0..10).prop_map(|fields| {
        let mut text = String::from("[[pools]]\n");
        let mut seen = std::collections::HashSet::new();
        for (key, value) in fields {
            if seen.insert(key) {
                text.push_str(&format!("{} = {value}\n", POOL_KEYS[key]));
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_text_loads_or_fails_without_panicking(text in "\\PC{0,400}") {
        let _ = load_text(&text);
    }

    #[test]
    fn accepted_pools_hold_their_limits(text in pool_file()) {
        if let Ok(config) = load_text(&text) {
            for pool in &config.master.pools {
                prop_assert!(!pool.name.is_empty(), "{text}");
                prop_assert!(pool.max_agents_per_process >= 1, "{text}");
                prop_assert!(pool.max_processes >= pool.min_processes, "{text}");
            }
        }
    }
}

/// The property above is only worth something if valid pools load through the same path.
#[test]
fn a_valid_pool_loads_through_the_same_path() {
    let config = load_text("[[pools]]\nname = \"p\"\nrole = \"r\"\nmax_processes = 2\n")
        .expect("a valid config");
    assert_eq!(config.master.pools.len(), 1);
    assert!(
        load_text("[[pools]]\nname = \"p\"\nrole = \"r\"\nmax_agents_per_process = 0\n").is_err()
    );
}
