//! Redis over TLS: a master and its workers on a TLS-only redis-server (a CA generated per
//! test) spawn agents and run a task; a plain `redis://` URL to the TLS port and a CA that did
//! not sign the server's certificate both leave the master answering 503 naming Redis.

mod common;

use agentpool_testkit::tls::unrelated_ca;
use agentpool_testkit::{
    MasterOptions, RedisOptions, TempDir, TestMaster, TestRedis, wait_for, worker_pids,
};
use common::{WAIT, config};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn options(redis_url: String, ca_file: Option<&Path>) -> MasterOptions {
    MasterOptions {
        bin: env!("CARGO_BIN_EXE_agentpool").into(),
        redis_url,
        config_toml: config(5, 2, ""),
        env: ca_file
            .map(|ca| ("AGENTPOOL_REDIS_CA_FILE".into(), ca.display().to_string()))
            .into_iter()
            .collect(),
        args: Vec::new(),
    }
}

async fn tls_redis() -> TestRedis {
    TestRedis::start_with(RedisOptions {
        tls: true,
        ..RedisOptions::default()
    })
    .await
}

/// The task once it has finished.
async fn finished(master: &TestMaster, id: &str) -> Value {
    wait_for(&format!("task {id} to finish"), WAIT, || async {
        let (_, t) = master.get(&format!("/api/v1/tasks/{id}")).await;
        let done = ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str()?);
        done.then_some(t)
    })
    .await
}

#[tokio::test]
async fn a_tls_only_redis_runs_agents_and_tasks() {
    let redis = tls_redis().await;
    assert!(redis.url().starts_with("rediss://"));
    let ca = redis.ca_file().expect("a TLS server has a CA");
    let mut master = TestMaster::start(options(redis.url(), Some(ca))).await;

    let (status, agents) = master
        .post("/api/v1/pools/p/agents", json!({"count": 3}))
        .await;
    assert_eq!(status, 201, "{agents}");
    assert!(
        !worker_pids(&redis.url()).is_empty(),
        "workers run against the rediss:// URL"
    );

    let input = json!({"over": "tls"});
    let (status, task) = master
        .post("/api/v1/pools/p/tasks", json!({"input": input}))
        .await;
    assert!(status == 201 || status == 202, "{status} {task}");
    let id = task["task_id"].as_str().expect("a task id");
    let done = finished(&master, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], input, "echo answers with its input");

    let (status, health) = master.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert!(master.terminate().await.success());
}

/// Starts a master that cannot reach its Redis and checks that it says so at once.
async fn refused(redis_url: String, ca_file: Option<&Path>, log_says: &str) {
    let master = TestMaster::start_answering(options(redis_url, ca_file)).await;
    let (status, health) = master.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["waiting_for"], "redis", "{health}");
    let (status, err) = master
        .post("/api/v1/pools/p/agents", json!({"count": 1}))
        .await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "redis_unavailable", "{err}");
    wait_for(
        "the master to log why Redis is unreachable",
        WAIT,
        || async {
            let log = master.log().to_lowercase();
            (log.contains("redis unreachable") && log.contains(log_says)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_plain_url_to_the_tls_port_answers_503_naming_redis() {
    let redis = tls_redis().await;
    let plain = redis.url().replace("rediss://", "redis://");
    refused(plain, None, "redis").await;
}

#[tokio::test]
async fn a_ca_file_with_a_plain_url_is_a_startup_error() {
    let redis = tls_redis().await;
    let plain = redis.url().replace("rediss://", "redis://");
    let dir = TempDir::new("plain-with-ca");
    std::fs::write(dir.path().join("c.toml"), config(5, 2, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentpool"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("c.toml"))
        .env("REDIS_URL", &plain)
        .env("AGENTPOOL_DATA_DIR", dir.path().join("data"))
        .env("AGENTPOOL_REDIS_CA_FILE", redis.ca_file().unwrap())
        .output()
        .expect("run serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("redis CA file") && stderr.contains("not rediss://"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let redis = tls_redis().await;
    let dir = TempDir::new("wrong-ca");
    let wrong = unrelated_ca(&dir.path().join("other-ca.pem"));
    refused(redis.url(), Some(&wrong), "certificate").await;
}
