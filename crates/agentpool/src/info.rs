//! `agentpool info`: which mode `serve` would run in and why, whether Redis answers, the store,
//! the data directory and the pools. It reads the same configuration `serve` does.

use crate::cli::table::Table;
use crate::config::{self, BackendChoice, Flags};
use agentpool_master::MasterConfig;
use agentpool_master::config::Backend;
use agentpool_registry::Registry;
use agentpool_registry::redis::RedisRegistry;
use agentpool_types::mask_url;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// How long `info` waits for Redis before calling it unreachable.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Config file [default: config/agentpool.toml, else the built-in default].
    #[arg(long)]
    config: Option<PathBuf>,
    /// The backend `serve` would be given.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

pub async fn run(args: InfoArgs) -> Result<()> {
    let cfg = config::load(&Flags {
        config: args.config.as_deref(),
        backend: args.backend,
        ..Flags::default()
    })?;
    let m = &cfg.master;
    let mode = match m.backend {
        Backend::Redis => "redis",
        Backend::Embedded => "embedded",
    };
    let mut out = format!("config:    {}\n", cfg.origin);
    out += &format!("mode:      {mode} ({})\n", cfg.backend_reason);
    out += &format!(
        "redis:     {}\n",
        redis_line(m.backend, m, &m.key_prefix).await
    );
    out += &format!("store:     {}\n", m.store);
    out += &format!("data dir:  {}\n", m.data_dir.display());
    if m.backend == Backend::Embedded {
        out += &format!("socket:    {}\n", m.socket_path().display());
    }
    out += &format!("listen:    {}\n\n", cfg.listen);
    let mut t = Table::new(&[
        "POOL",
        "ROLE",
        "AGENTS/WORKER",
        "MIN",
        "MAX",
        "PLACEMENT",
        "RESTART",
    ]);
    for p in &m.pools {
        t.row(vec![
            p.name.clone(),
            p.role.clone(),
            p.max_agents_per_process.to_string(),
            p.min_processes.to_string(),
            p.max_processes.to_string(),
            p.placement.as_str().to_owned(),
            p.restart.as_str().to_owned(),
        ]);
    }
    out += &t.render();
    crate::cli::write_stdout(&out);
    Ok(())
}

/// The Redis `serve` would use and whether it answers; in embedded mode it uses none, so
/// none is probed (a Redis at the default address would only mislead).
async fn redis_line(backend: Backend, m: &MasterConfig, prefix: &str) -> String {
    match backend {
        Backend::Embedded => "not used (embedded mode)".to_owned(),
        Backend::Redis => format!(
            "{} ({})",
            mask_url(&m.redis_url),
            redis_status(m, prefix).await
        ),
    }
}

async fn redis_status(m: &MasterConfig, prefix: &str) -> String {
    let probe = async {
        let r = RedisRegistry::connect_to(&m.redis_target()?, prefix).await?;
        r.ping().await
    };
    match tokio::time::timeout(REDIS_PROBE_TIMEOUT, probe).await {
        Ok(Ok(rtt)) => format!("reachable, {:.2} ms", rtt.as_secs_f64() * 1000.0),
        Ok(Err(e)) => format!("unreachable: {e}"),
        Err(_) => format!("unreachable: no answer within {REDIS_PROBE_TIMEOUT:?}"),
    }
}
