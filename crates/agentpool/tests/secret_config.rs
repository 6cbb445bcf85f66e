//! An agent's `secret_config` reaches its program and nothing else: not the API, not Redis in
//! clear, not a log, not the data directory in clear; and it still reaches the agent after
//! the master restarts and restores it from the store.

mod common;

use agentpool_testkit::{Heartbeats, redis_snapshot};
use common::{Backend, Cluster, pool_config, worker_logs};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The secret under test: a string that appears nowhere else.
const SECRET: &str = "sk-never-shown-7f3a91c2";

/// A per-task program that answers with its secret's `api_key` reversed: proof that it read
/// the secret, without putting the secret into a task's output.
fn handler() -> String {
    let script = "import json, os; \
        s = json.loads(os.environ['AGENTPOOL_SECRET_CONFIG']); \
        print(json.dumps(s['api_key'][::-1]))";
    format!(
        r#"handler = {{ type = "exec", mode = "per_task", command = ["python3", "-c", "{script}"] }}"#
    )
}

fn reversed() -> String {
    SECRET.chars().rev().collect()
}

/// Runs one task and returns its output.
async fn answer(c: &Cluster) -> Value {
    let (status, t) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=20", json!({"input": {}}))
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "succeeded", "{t}");
    t["output"].clone()
}

/// A response body must name neither the secret nor the field that carries it sealed.
fn assert_clean(what: &str, body: &Value) {
    let text = body.to_string();
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
    assert!(
        !text.contains("secret_config"),
        "{what} shows the sealed secret: {text}"
    );
}

/// Every file under `dir` (store, logs, key), none of which may hold the secret in clear.
fn assert_no_file_holds_it(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_file_holds_it(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{} holds the secret in clear", path.display());
        }
    }
}

both_backends!(a_secret_reaches_its_agent_and_nothing_else: secret_redis, secret_embedded);

async fn a_secret_reaches_its_agent_and_nothing_else(backend: Backend) {
    let mut c = Cluster::start_on(backend, pool_config(4, 2, "", &handler()), &[]).await;
    let secret = json!({"api_key": SECRET});
    let (status, one) = c
        .master
        .post(
            "/api/v1/agents",
            json!({"pool": "p", "config": {"model": "small"}, "secret_config": secret}),
        )
        .await;
    assert_eq!(status, 201, "{one}");
    assert_clean("the spawn answer", &one);
    let (status, bulk) = c
        .master
        .post(
            "/api/v1/pools/p/agents",
            json!({"count": 2, "secret_config": secret}),
        )
        .await;
    assert_eq!(status, 201, "{bulk}");
    assert_clean("the bulk spawn answer", &bulk);

    for _ in 0..3 {
        assert_eq!(answer(&c).await, json!(reversed()), "the program read it");
    }
    let id = one["agent_id"].as_str().expect("agent id");
    for path in [
        "/api/v1/agents".to_owned(),
        format!("/api/v1/agents/{id}"),
        format!("/api/v1/agents/{id}/events"),
        "/api/v1/pools".into(),
        "/api/v1/pools/p".into(),
        "/api/v1/processes".into(),
        "/api/v1/tasks?pool=p".into(),
    ] {
        let (status, body) = c.master.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_clean(&path, &body);
    }
    if backend == Backend::Redis {
        assert_redis_holds_it_sealed_only(&c, id).await;
    }

    c.restart_master().await;
    c.wait_all_running("p", 3).await;
    assert_eq!(
        answer(&c).await,
        json!(reversed()),
        "still delivered after a restore"
    );

    let logs = [c.master.log(), c.retired[0].log(), worker_logs(&c)].concat();
    assert!(!logs.is_empty(), "there are logs to check");
    assert!(!logs.contains(SECRET), "a log shows the secret");
    assert_no_file_holds_it(&c.data_dir());
    let key = std::fs::metadata(c.data_dir().join("secret.key")).expect("the key file");
    assert_eq!(
        key.permissions().mode() & 0o777,
        0o600,
        "the key is private"
    );
}

/// Redis has the sealed form, for the worker, and never the clear one.
async fn assert_redis_holds_it_sealed_only(c: &Cluster, id: &str) {
    let snapshot = redis_snapshot(&c.conn().await, Heartbeats::Keep).await;
    for (key, value) in &snapshot {
        assert!(!value.contains(SECRET), "{key} holds the secret in clear");
    }
    let agent = &snapshot[&format!("agent:{id}")];
    assert!(agent.contains("secret_config"), "sealed in {agent}");
}

#[tokio::test]
async fn a_secret_config_that_is_not_an_object_is_refused_without_quoting_it() {
    let c = Cluster::start_on(Backend::Embedded, pool_config(4, 1, "", ""), &[]).await;
    let (status, body) = c
        .master
        .post(
            "/api/v1/agents",
            json!({"pool": "p", "secret_config": SECRET}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("secret_config"), "{body}");
    assert!(!body.to_string().contains(SECRET), "{body}");
}

#[tokio::test]
async fn openapi_lists_secret_config_as_write_only_and_in_no_answer() {
    let c = Cluster::start_on(Backend::Embedded, pool_config(4, 1, "", ""), &[]).await;
    let (status, doc) = c.master.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    let schemas = &doc["components"]["schemas"];
    for body in ["SpawnBody", "BulkBody"] {
        let field = &schemas[body]["properties"]["secret_config"];
        assert_eq!(field["writeOnly"], true, "{body}: {field}");
    }
    for answer in ["Agent", "AgentSpec"] {
        let text = schemas[answer].to_string();
        assert!(!text.contains("secret_config"), "{answer}: {text}");
    }
}
