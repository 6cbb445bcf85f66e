//! The client subcommands and `info`, run as the real binary, against a real master where
//! they talk to one.

mod cli_support;
mod common;

/// The repository's config directory, whatever the test's working directory.
fn repo_config(name: &str) -> String {
    format!("{}/../../config/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bench_config_runs_embedded_without_redis_url() {
    let data = agentpool_testkit::TempDir::new("cli-info");
    let dir = data.path().display().to_string();
    let config = repo_config("bench.toml");
    let env = [("AGENTPOOL_DATA_DIR", dir.as_str())];
    let text = cli_support::stdout(&["info", "--config", &config], &env);
    assert!(
        text.contains("mode:      embedded (auto: no Redis URL configured"),
        "{text}"
    );
    assert!(text.contains("bench"), "lists the bench pool: {text}");
}

#[test]
fn info_in_embedded_mode_neither_probes_nor_prints_a_redis() {
    let data = agentpool_testkit::TempDir::new("cli-info");
    let dir = data.path().display().to_string();
    // A Redis URL that embedded mode must ignore: any connection to it would be queued here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let env = [
        ("AGENTPOOL_DATA_DIR", dir.as_str()),
        ("REDIS_URL", url.as_str()),
    ];
    let text = cli_support::stdout(&["info", "--backend", "embedded"], &env);
    assert!(
        text.contains("redis:     not used (embedded mode)\n"),
        "{text}"
    );
    assert!(!text.contains(&url), "{text}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "info connected to the Redis it does not use: {accepted:?}"
    );

    let auto = cli_support::stdout(&["info"], &[("AGENTPOOL_DATA_DIR", dir.as_str())]);
    assert!(
        auto.contains("redis:     not used (embedded mode)\n"),
        "{auto}"
    );
}

#[test]
fn an_empty_agentpool_url_means_the_default_url() {
    let out = cli_support::output(&["pools", "--timeout", "5"], &[("AGENTPOOL_URL", "")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("invalid master URL"), "{stderr}");
    // Another master may listen on the default port on this machine; if none, the error
    // names the default URL.
    if !out.status.success() {
        assert!(stderr.contains("http://127.0.0.1:8000/"), "{stderr}");
    }
}

#[tokio::test]
async fn agentpool_url_names_the_master_and_the_flag_wins() {
    let c =
        common::Cluster::start_on(common::Backend::Embedded, common::config(10, 2, ""), &[]).await;
    let url = c.master.url();
    let text = cli_support::stdout(&["pools"], &[("AGENTPOOL_URL", &url)]);
    assert!(text.starts_with("POOL"), "{text}");
    let dead = format!("http://127.0.0.1:{}", agentpool_testkit::free_port());
    let text = cli_support::stdout(&["pools", "--url", &url], &[("AGENTPOOL_URL", &dead)]);
    assert!(text.starts_with("POOL"), "{text}");
    let out = cli_support::output(&["pools"], &[("AGENTPOOL_URL", &dead)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&dead));
}

/// A "master" that accepts connections and never answers; it holds them until the test ends.
fn silent_master() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    url
}

/// Runs `agentpool pools` against a silent master and checks it gives up in time, saying why.
async fn gives_up_on_a_silent_master(args: &[&str], env: &[(&str, &str)]) {
    let url = silent_master();
    let mut all = vec!["pools", "--url", &url];
    all.extend_from_slice(args);
    let started = std::time::Instant::now();
    let mut run = cli_support::Background::start(&all, env, std::process::Stdio::null());
    // Far below the 30 s default: the 1 s asked for is what ends it.
    let status = run.wait(std::time::Duration::from_secs(15)).await;
    let stderr = run.stderr();
    assert!(!status.success(), "{stderr}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{stderr}"
    );
    assert!(stderr.contains(&url), "names the URL: {stderr}");
    assert!(stderr.contains("did not answer within 1 s"), "{stderr}");
    assert!(
        stderr.contains("agentpool serve"),
        "says how to start one: {stderr}"
    );
}

#[tokio::test]
async fn timeout_flag_ends_a_request_the_master_never_answers() {
    gives_up_on_a_silent_master(&["--timeout", "1"], &[]).await;
}

#[tokio::test]
async fn agentpool_timeout_ends_a_request_the_master_never_answers() {
    gives_up_on_a_silent_master(&[], &[("AGENTPOOL_TIMEOUT", "1")]).await;
}

#[test]
fn a_bad_timeout_is_refused_naming_it() {
    let out = cli_support::output(&["pools"], &[("AGENTPOOL_TIMEOUT", "soon")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AGENTPOOL_TIMEOUT=\"soon\""), "{stderr}");
}

/// The body of `GET <path>` exactly as the master sends it.
async fn raw_body(master: &agentpool_testkit::TestMaster, path: &str) -> Vec<u8> {
    let url = format!("{}{path}", master.url());
    let response = master.http().get(url).send().await.expect("GET");
    response.bytes().await.expect("body").to_vec()
}

#[tokio::test]
async fn json_prints_the_body_as_received() {
    let c =
        common::Cluster::start_on(common::Backend::Embedded, common::config(10, 2, ""), &[]).await;
    assert_eq!(common::spawn(&c.master, "p").await.0, 201);
    c.wait_all_running("p", 1).await;
    let url = c.master.url();
    for (cmd, path) in [("pools", "/api/v1/pools"), ("agents", "/api/v1/agents")] {
        // Retried only in case the registry changed between the two reads.
        agentpool_testkit::wait_until(
            &format!("`{cmd} --json` to be the body"),
            common::WAIT,
            || async {
                let printed = cli_support::stdout(&[cmd, "--json", "--url", &url], &[]);
                let mut body = raw_body(&c.master, path).await;
                body.push(b'\n');
                printed.as_bytes() == body
            },
        )
        .await;
        let printed = cli_support::stdout(&[cmd, "--json", "--url", &url], &[]);
        assert_eq!(printed.lines().count(), 1, "compact, as sent: {printed}");
    }
}

/// A pool with long names, as in the default config, so rows are as wide as real ones.
const WIDE_POOL: &str = r#"
heartbeat_interval_ms = 250
heartbeat_timeout_ms = 5000

[[pools]]
name = "business_analyst"
role = "business_analyst"
max_agents_per_process = 10
max_processes = 2
"#;

#[tokio::test]
async fn tables_fit_80_columns_and_wide_prints_full_ids() {
    let c = common::Cluster::start_on(common::Backend::Embedded, WIDE_POOL.into(), &[]).await;
    let (status, placed) = c
        .master
        .post(
            "/api/v1/pools/business_analyst/agents",
            serde_json::json!({"count": 3}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    let id = placed[0]["agent_id"].as_str().unwrap().to_owned();
    let worker = placed[0]["process_id"].as_str().unwrap().to_owned();
    let url = c.master.url();
    let narrow = [("COLUMNS", "80")];
    // Header plus 3 agents, 1 worker, 1 pool.
    for (cmd, lines) in [("agents", 4), ("processes", 2), ("pools", 2)] {
        let text = cli_support::stdout(&[cmd, "--url", &url], &narrow);
        assert_eq!(text.lines().count(), lines, "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "`{cmd}` at 80 columns:\n{text}");
        }
    }
    let agents = cli_support::stdout(&["agents", "--url", &url], &narrow);
    assert!(agents.lines().next().unwrap().contains("ROLE"), "{agents}");
    assert!(
        agents.contains(&format!("…{}", &id[id.len() - 12..])),
        "{agents}"
    );
    assert!(!agents.contains(&id), "{agents}");

    let wide = cli_support::stdout(&["agents", "--url", &url, "--wide"], &narrow);
    assert!(wide.contains(&id) && wide.contains(&worker), "{wide}");
    assert!(wide.lines().next().unwrap().ends_with("RESTARTS"), "{wide}");
    let processes = cli_support::stdout(&["processes", "--url", &url, "--wide"], &narrow);
    assert!(processes.contains(&worker), "{processes}");
    assert!(processes.contains("LAST_HEARTBEAT"), "{processes}");

    // Not a terminal and no COLUMNS: nothing is shortened.
    let piped = cli_support::stdout(&["agents", "--url", &url], &[]);
    assert_eq!(
        piped, wide,
        "output that is not a terminal is printed whole"
    );
}
