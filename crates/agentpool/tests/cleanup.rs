//! `agentpool cleanup` next to a stopped master: the stale workers it removes leave their
//! agents orphaned, and the next master places them again (the restore loop treats an orphan
//! no worker holds as one to place, whoever reaped it).

mod common;

use agentpool_testkit::{TempDir, wait_for, wait_until, worker_pids};
use common::{Cluster, WAIT, config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// Redis only: in embedded mode the registry dies with the master, and cleanup has nothing
/// to clean there.
#[tokio::test]
async fn agents_of_a_worker_removed_by_cleanup_run_again_under_the_next_master() {
    let extra = "heartbeat_timeout_ms = 1500\nreconcile_interval_ms = 1000";
    let mut c = Cluster::start(config(10, 4, extra)).await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 3}))
        .await;
    assert_eq!(status, 201, "{placed}");
    let exit = c.master.terminate().await;
    assert!(exit.success());
    let pid = worker_pids(&c.control_url())[0];
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    let dir = TempDir::new("cleanup");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, c.config_toml()).unwrap();
    let output = wait_for("cleanup to remove the dead worker", WAIT, || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentpool"))
            .args(["cleanup", "--config", file.to_str().unwrap()])
            .env("REDIS_URL", c.redis().url())
            .env("AGENTPOOL_DATA_DIR", c.data_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move { text.contains("removed stale worker").then_some(text) }
    })
    .await;
    assert!(output.contains("3 agents orphaned"), "{output}");

    c.restart_master().await;
    wait_until("the three orphans running again", WAIT, || async {
        let (_, list) = c.master.get("/api/v1/agents").await;
        let list = list.as_array().cloned().unwrap_or_default();
        list.len() == 3 && list.iter().all(|a| a["status"] == "idle")
    })
    .await;
    c.assert_pools_match_registry("p", 10).await;
}
