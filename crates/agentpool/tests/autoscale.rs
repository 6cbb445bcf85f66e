//! Autoscaling end to end, on both backends, with real workers running the echo handler: a
//! burst from an empty pool to its maximum and back to nothing, busy agents kept through a
//! scale-down, `min_agents` kept idle, manual spawns counted and never scaled down, and a
//! config that cannot work refused at start.

mod common;

use agentpool_testkit::wait_for;
use common::{Backend, Cluster, WAIT, pool_config};
use serde_json::{Value, json};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Pool `p` autoscaled within `min..=max`, 10 agents per worker, empty workers gone after 1 s.
async fn autoscaled(backend: Backend, min: u32, max: u32, per_agent: u32) -> Cluster {
    let pool = format!(
        "idle_worker_ttl_secs = 1\n\n[pools.autoscale]\nmin_agents = {min}\nmax_agents = {max}\n\
         tasks_per_agent = {per_agent}\nscale_down_idle_secs = 0.3"
    );
    Cluster::start_on(backend, pool_config(10, 5, "", &pool), &[]).await
}

/// Submits `n` echo tasks that each take `ms`, in one batch; their ids.
async fn burst(c: &Cluster, n: usize, ms: u64) -> Vec<String> {
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({"input": {"i": i, "sleep_ms": ms}}))
        .collect();
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(
        status,
        202,
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );
    let ids: Vec<String> = body["tasks"]
        .as_array()
        .expect("the submitted tasks")
        .iter()
        .map(|t| t["task_id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// Waits until every task succeeded, and checks each ran exactly once.
async fn all_succeeded_once(c: &Cluster, ids: &[String]) {
    for id in ids {
        let t = wait_for(&format!("task {id} to finish"), WAIT, || async {
            let (_, t) = c.master.get(&format!("/api/v1/tasks/{id}")).await;
            let done = ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str()?);
            done.then_some(t)
        })
        .await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["attempts"], 1, "ran once: {t}");
    }
}

/// Polls `/pools` until `until` holds for the row; returns the largest `agent_count` seen.
async fn watch_pool(c: &Cluster, what: &str, until: impl Fn(&Value) -> bool) -> u64 {
    let most = Cell::new(0);
    wait_for(what, WAIT, || async {
        let row = c.pool_row("p").await;
        most.set(most.get().max(row["agent_count"].as_u64().unwrap_or(0)));
        until(&row).then_some(())
    })
    .await;
    most.get()
}

both_backends!(a_burst_scales_to_the_maximum_and_back_to_nothing: burst_redis, burst_embedded);

async fn a_burst_scales_to_the_maximum_and_back_to_nothing(backend: Backend) {
    let c = autoscaled(backend, 0, 30, 1).await;
    let row = c.pool_row("p").await;
    assert_eq!(
        (row["agent_count"].as_u64(), row["desired_agents"].as_u64()),
        (Some(0), Some(0)),
        "{row}"
    );
    assert_eq!(
        row["autoscale"],
        json!({"min": 0, "max": 30, "tasks_per_agent": 1})
    );

    let ids = burst(&c, 300, 200).await;
    let most = watch_pool(&c, "30 agents in 3 workers", |r| {
        r["agent_count"] == 30 && r["process_count"] == 3
    })
    .await;
    assert!(most <= 30, "never past max_agents: {most}");
    let (_, agents) = c.master.get("/api/v1/agents?pool=p").await;
    let agents = agents.as_array().expect("agents").clone();
    assert!(
        agents.iter().all(|a| a["autoscaled"] == true),
        "started by the autoscaler: {agents:?}"
    );
    all_succeeded_once(&c, &ids).await;

    let most = watch_pool(&c, "no agent and no worker left", |r| {
        r["agent_count"] == 0 && r["process_count"] == 0
    })
    .await;
    assert!(most <= 30, "never past max_agents: {most}");
    assert_eq!(c.pool_row("p").await["desired_agents"], 0);
}

both_backends!(busy_agents_are_never_scaled_down: busy_redis, busy_embedded);

/// Twelve tasks of 1 s for six agents (two per agent wanted): once the first six finish, the
/// backlog calls for three agents while all six are busy with the second six. None of those
/// is touched; then all go.
async fn busy_agents_are_never_scaled_down(backend: Backend) {
    let c = autoscaled(backend, 0, 6, 2).await;
    let ids = burst(&c, 12, 1000).await;
    watch_pool(&c, "six agents", |r| r["agent_count"] == 6).await;
    watch_pool(&c, "the backlog down to what runs", |r| {
        r["queued_tasks"] == 0 && r["running_tasks"] == 6 && r["desired_agents"] == 3
    })
    .await;
    all_succeeded_once(&c, &ids).await;
    watch_pool(&c, "no agent left", |r| r["agent_count"] == 0).await;
}

both_backends!(min_agents_stay_and_manual_agents_are_kept: min_redis, min_embedded);

/// `min_agents = 2`: two idle agents come up with no work and stay after a burst. An agent
/// spawned by hand counts towards the total and is never scaled down.
async fn min_agents_stay_and_manual_agents_are_kept(backend: Backend) {
    let c = autoscaled(backend, 2, 5, 1).await;
    watch_pool(&c, "the two kept agents", |r| r["agent_count"] == 2).await;
    let (status, manual) = c.master.post("/api/v1/agents", json!({"pool": "p"})).await;
    assert_eq!(status, 201, "{manual}");
    assert_eq!(manual["autoscaled"], false, "{manual}");

    let ids = burst(&c, 10, 300).await;
    let most = watch_pool(&c, "five agents", |r| r["agent_count"] == 5).await;
    assert!(most <= 5, "manual spawns count towards max: {most}");
    all_succeeded_once(&c, &ids).await;
    watch_pool(&c, "back to the minimum", |r| r["agent_count"] == 2).await;
    let (_, agents) = c.master.get("/api/v1/agents?pool=p").await;
    let agents = agents.as_array().expect("agents").clone();
    assert!(
        agents.iter().any(|a| a["agent_id"] == manual["agent_id"]),
        "the agent spawned by hand stays: {agents:?}"
    );
    // It stays at the minimum, read after read, over several rounds and scale-down windows.
    let since = Instant::now();
    while since.elapsed() < Duration::from_millis(1500) {
        assert_eq!(c.pool_row("p").await["agent_count"], 2);
    }
}

#[test]
fn a_config_with_min_above_max_is_refused_naming_the_field() {
    let dir = agentpool_testkit::TempDir::new("autoscale-config");
    let file = dir.path().join("bad.toml");
    let pool = "[pools.autoscale]\nmin_agents = 5\nmax_agents = 2";
    std::fs::write(&file, pool_config(10, 2, "", pool)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentpool"))
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("AGENTPOOL_DATA_DIR", dir.path())
        .env("REDIS_URL", "")
        .output()
        .expect("agentpool serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("autoscale.min_agents"), "{stderr}");
    assert!(stderr.contains("max_agents (2)"), "{stderr}");
}
