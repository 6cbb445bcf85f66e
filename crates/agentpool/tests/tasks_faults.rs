//! Tasks through faults, on both backends: a worker SIGKILLed mid-task (retried elsewhere,
//! one result), a master SIGKILLed with tasks queued and running (nothing lost), an agent
//! that panics mid-task, the circuit breaker, and the event stream of one task.

mod common;

use agentpool_testkit::{wait_for, wait_until, worker_pids};
use common::tasks::task_id;
use common::{Backend, Cluster, WAIT, pool_config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::HashSet;

async fn submit(c: &Cluster, body: Value) -> Value {
    let (status, t) = c.master.post("/api/v1/pools/p/tasks", body).await;
    assert!([200, 202].contains(&status), "{t}");
    t
}

both_backends!(a_task_whose_worker_dies_is_retried_elsewhere_once: killed_redis, killed_embedded);

async fn a_task_whose_worker_dies_is_retried_elsewhere_once(backend: Backend) {
    // One agent per worker: two workers.
    let c = Cluster::start_on(backend, pool_config(1, 4, "", ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 2}))
        .await;
    assert_eq!(status, 201);
    let t = submit(&c, json!({"input": {"sleep_ms": 1500, "v": 7}})).await;
    let running = wait_for("the task running", WAIT, || async {
        let t = c.task(&task_id(&t)).await;
        (t["status"] == "running").then_some(t)
    })
    .await;
    let agent = running["agent_id"].as_str().unwrap();
    let (_, a) = c.master.get(&format!("/api/v1/agents/{agent}")).await;
    let (_, procs) = c.master.get("/api/v1/processes").await;
    let pid = procs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_id"] == a["process_id"])
        .unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let done = c.finished(&task_id(&t)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "the dead worker's attempt counts: {done}"
    );
    // Wherever it ran the second time (the other agent, or the same agent placed again on a
    // new worker), the dead worker is gone and the result is one.
    assert_eq!(done["output"], json!({"sleep_ms": 1500, "v": 7}));
}

both_backends!(queued_and_running_tasks_survive_a_master_sigkill: master_redis, master_embedded);

async fn queued_and_running_tasks_survive_a_master_sigkill(backend: Backend) {
    let mut c = Cluster::start_on(backend, pool_config(10, 4, "", ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 2}))
        .await;
    assert_eq!(status, 201);
    let tasks: Vec<Value> = (0..20)
        .map(|i| json!({"input": {"sleep_ms": 100, "i": i}}))
        .collect();
    let ids = c.submit_batch("p", tasks).await;
    wait_until("some tasks done, some not", WAIT, || async {
        let (_, done) = c.master.get("/api/v1/tasks?status=succeeded").await;
        done.as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    c.restart_master().await;
    if backend == Backend::Embedded {
        // Embedded workers went with the master: the restored agents take the tasks.
        wait_until("agents back", WAIT, || async {
            c.master
                .get("/api/v1/agents")
                .await
                .1
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
        .await;
    }
    for (i, t) in ids.iter().enumerate() {
        let t = c.finished(t).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["output"]["i"], i, "{t}");
    }
    let (_, all) = c.master.get("/api/v1/tasks?limit=100").await;
    let distinct: HashSet<String> = all.as_array().unwrap().iter().map(task_id).collect();
    assert_eq!(distinct.len(), 20, "no task lost, none added");
}

both_backends!(a_task_that_panics_its_agent_is_retried_and_the_worker_lives: panic_redis, panic_embedded);

async fn a_task_that_panics_its_agent_is_retried_and_the_worker_lives(backend: Backend) {
    let c = Cluster::start_on(
        backend,
        pool_config(10, 2, "", "circuit = { failures = 100 }"),
        &[],
    )
    .await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 1}))
        .await;
    assert_eq!(status, 201);
    let pids = worker_pids(&c.control_url());
    let t = submit(&c, json!({"input": {"panic": true}, "max_attempts": 2})).await;
    let t = c.finished(&task_id(&t)).await;
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "{t}"
    );
    assert!(t["error"].as_str().unwrap().contains("panicked"), "{t}");
    assert_eq!(worker_pids(&c.control_url()), pids, "the worker survived");
    // The agent restarted in place and takes work again.
    let (_, ok) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=10", json!({"input": "fine"}))
        .await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
}

both_backends!(the_circuit_opens_on_failures_and_a_trial_closes_it: circuit_redis, circuit_embedded);

async fn the_circuit_opens_on_failures_and_a_trial_closes_it(backend: Backend) {
    let pool = "circuit = { failures = 2, cooldown_secs = 1 }";
    let c = Cluster::start_on(backend, pool_config(10, 2, "", pool), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 1}))
        .await;
    assert_eq!(status, 201);
    for _ in 0..2 {
        let t = submit(&c, json!({"input": {"fail": "down"}, "max_attempts": 1})).await;
        c.finished(&task_id(&t)).await;
    }
    assert_eq!(c.pool_row("p").await["circuit"], "open");
    let good = submit(&c, json!({"input": "after"})).await;
    assert_eq!(
        c.task(&task_id(&good)).await["status"],
        "queued",
        "held while the circuit is open"
    );
    let done = c.finished(&task_id(&good)).await;
    assert_eq!(
        done["status"], "succeeded",
        "the trial after the cooldown: {done}"
    );
    wait_until("the circuit closed", WAIT, || async {
        c.pool_row("p").await["circuit"] == "closed"
    })
    .await;
}

both_backends!(the_event_stream_follows_a_task_to_its_end: sse_redis, sse_embedded);

async fn the_event_stream_follows_a_task_to_its_end(backend: Backend) {
    let c = Cluster::start_on(backend, pool_config(10, 2, "", ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 1}))
        .await;
    assert_eq!(status, 201);
    let t = submit(&c, json!({"input": {"sleep_ms": 500}})).await;
    // The stream ends by itself once the task has finished.
    let body = c.task_stream(&task_id(&t)).await;
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"task"), "{body}");
    assert_eq!(names.last(), Some(&"task"), "{body}");
    assert!(names.contains(&"status"), "{body}");
    let last = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
}
