//! `--log-format json` / `AGENTPOOL_LOG_FORMAT=json`: the master and the workers it starts
//! write one JSON object per line, with the fields of each event at the top level.

mod common;

use agentpool_testkit::wait_for;
use common::{Backend, Cluster, WAIT, config, worker_logs};
use serde_json::{Value, json};

/// The log's lines, each of which must be a JSON object.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

both_backends!(logs_are_json_lines: json_logs_flag_redis, json_logs_env_embedded);

/// Redis mode takes the flag, embedded mode the environment variable.
async fn logs_are_json_lines(backend: Backend) {
    let c = match backend {
        Backend::Redis => {
            Cluster::start_on(backend, config(10, 2, ""), &["--log-format", "json"]).await
        }
        Backend::Embedded => {
            Cluster::start_on_env(
                backend,
                config(10, 2, ""),
                &[("AGENTPOOL_LOG_FORMAT", "json")],
            )
            .await
        }
    };
    let (status, body) = c
        .master
        .post("/api/v1/agents", json!({ "pool": "p" }))
        .await;
    assert_eq!(status, 201, "{body}");
    let agent = body["agent_id"].as_str().unwrap().to_owned();
    let placed = wait_for("the spawn in the master's log", WAIT, || async {
        json_lines(&c.master.log())
            .into_iter()
            .find(|l| l["agent_id"] == agent.as_str())
    })
    .await;
    for key in ["timestamp", "level", "target", "message"] {
        assert!(placed[key].is_string(), "no {key}: {placed}");
    }
    assert_eq!(placed["pool"], "p", "{placed}");
    let workers = json_lines(&worker_logs(&c));
    assert!(!workers.is_empty(), "the worker logged nothing");
    assert!(
        workers
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
}
