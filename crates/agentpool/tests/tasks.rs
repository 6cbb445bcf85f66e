//! Tasks end to end, on both backends, with real workers running the echo handler: a round
//! trip, priority then FIFO, a task asked of one agent, retries into the dead set, timeouts,
//! cancels, broadcast, idempotency keys, the event stream and the pool's stats.

mod common;

use agentpool_testkit::{wait_for, wait_until};
use common::tasks::task_id;
use common::{Backend, Cluster, WAIT, config, pool_config};
use serde_json::{Value, json};

/// One agent's pool, `n` agents of one worker.
async fn with_agents(backend: Backend, n: u32, pool_extra: &str) -> Cluster {
    let c = Cluster::start_on(backend, pool_config(10, 4, "", pool_extra), &[]).await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": n }))
        .await;
    assert_eq!(status, 201, "{body}");
    c
}

async fn submit(c: &Cluster, body: Value, wait: Option<f64>) -> (u16, Value) {
    let path = match wait {
        Some(w) => format!("/api/v1/pools/p/tasks?wait={w}"),
        None => "/api/v1/pools/p/tasks".to_owned(),
    };
    c.master.post(&path, body).await
}

both_backends!(a_task_round_trips_through_an_idle_agent: round_trip_redis, round_trip_embedded);

async fn a_task_round_trips_through_an_idle_agent(backend: Backend) {
    let c = with_agents(backend, 1, "").await;
    let input = json!({"question": 42, "nested": {"big": 12345678901234567u64}});
    let (status, t) = submit(&c, json!({ "input": input }), Some(10.0)).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["output"], input, "echo answers the input unchanged");
    assert_eq!(
        (t["attempts"].as_u64(), t["priority"].as_u64()),
        (Some(1), Some(5))
    );
    let agent = t["agent_id"].as_str().unwrap();
    let (_, a) = c.master.get(&format!("/api/v1/agents/{agent}")).await;
    assert_eq!(
        (a["status"].as_str(), a["tasks_done"].as_u64()),
        (Some("idle"), Some(1)),
        "{a}"
    );
    // Without a wait: 202 with the task as it stands.
    let (status, queued) = submit(&c, json!({"input": "x"}), None).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(c.finished(&task_id(&queued)).await["output"], "x");
    let row = c.pool_row("p").await;
    assert_eq!(
        (row["queued_tasks"].as_u64(), row["running_tasks"].as_u64()),
        (Some(0), Some(0)),
        "{row}"
    );
}

both_backends!(tasks_run_by_priority_then_in_order: priority_redis, priority_embedded);

async fn tasks_run_by_priority_then_in_order(backend: Backend) {
    let c = with_agents(backend, 1, "").await;
    // The one agent is busy while the others queue up.
    let (_, blocker) = submit(&c, json!({"input": {"sleep_ms": 700}}), None).await;
    wait_until("the blocker running", WAIT, || async {
        c.task(&task_id(&blocker)).await["status"] == "running"
    })
    .await;
    let mut ids = Vec::new();
    for (name, priority) in [("low", 1), ("high-1", 9), ("mid", 5), ("high-2", 9)] {
        // Each works a little, so their start times differ.
        let input = json!({"name": name, "sleep_ms": 30});
        let (status, t) = submit(&c, json!({"input": input, "priority": priority}), None).await;
        assert_eq!(status, 202, "{t}");
        ids.push(task_id(&t));
    }
    let row = c.pool_row("p").await;
    assert_eq!(
        (row["queued_tasks"].as_u64(), row["busy_agents"].as_u64()),
        (Some(4), Some(1)),
        "{row}"
    );
    let mut started = Vec::new();
    for i in &ids {
        let t = c.finished(i).await;
        started.push((
            t["started_at"].as_str().unwrap().to_owned(),
            t["output"]["name"].clone(),
        ));
    }
    started.sort_by(|a, b| a.0.cmp(&b.0));
    let order: Vec<Value> = started.into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        order,
        [json!("high-1"), json!("high-2"), json!("mid"), json!("low")]
    );
}

both_backends!(a_task_asked_of_one_agent_waits_for_it: asked_redis, asked_embedded);

async fn a_task_asked_of_one_agent_waits_for_it(backend: Backend) {
    let c = with_agents(backend, 2, "").await;
    let (_, agents) = c.master.get("/api/v1/agents").await;
    let target = agents[0]["agent_id"].as_str().unwrap().to_owned();
    let ask = |input: Value| {
        let path = format!("/api/v1/agents/{target}/tasks");
        let master = &c.master;
        async move { master.post(&path, json!({ "input": input })).await }
    };
    let (_, first) = ask(json!({"sleep_ms": 400})).await;
    let (_, second) = ask(json!("second")).await;
    assert_eq!(
        second["status"], "queued",
        "its agent is busy, the other idle agent must not take it: {second}"
    );
    let second = c.finished(&task_id(&second)).await;
    let first = c.finished(&task_id(&first)).await;
    assert_eq!(first["agent_id"], target.as_str());
    assert_eq!(
        second["agent_id"],
        target.as_str(),
        "only the asked agent ran it"
    );
    assert!(second["started_at"].as_str() >= first["finished_at"].as_str());
    let (status, body) = c
        .master
        .post(
            "/api/v1/agents/00000000-0000-7000-8000-000000000000/tasks",
            json!({"input": 1}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_agent")),
        "{body}"
    );
}

both_backends!(failing_attempts_back_off_then_land_in_the_dead_set: dead_redis, dead_embedded);

async fn failing_attempts_back_off_then_land_in_the_dead_set(backend: Backend) {
    // A high circuit threshold, so this test sees retries, not the breaker.
    let c = with_agents(backend, 1, "circuit = { failures = 100 }").await;
    let (_, t) = submit(
        &c,
        json!({"input": {"fail": "boom"}, "max_attempts": 2}),
        None,
    )
    .await;
    let t = c.finished(&task_id(&t)).await;
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("failed"), Some(2)),
        "{t}"
    );
    assert_eq!(t["error"], "boom");
    // The store's listing follows the registry within a batch of the history writer.
    wait_until("the failed task listed", WAIT, || async {
        let (_, failed) = c.master.get("/api/v1/tasks?status=failed").await;
        failed.as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    // Retried by hand: back in line with its attempts reset.
    let (status, again) = c
        .master
        .post(&format!("/api/v1/tasks/{}/retry", task_id(&t)), json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    let again = c.finished(&task_id(&t)).await;
    assert_eq!(
        (again["status"].as_str(), again["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    let (status, body) = c
        .master
        .post(&format!("/api/v1/tasks/{}/retry", task_id(&t)), json!({}))
        .await;
    assert_eq!(status, 200, "a failed task can be retried again: {body}");
}

both_backends!(an_attempt_past_its_timeout_fails: timeout_redis, timeout_embedded);

async fn an_attempt_past_its_timeout_fails(backend: Backend) {
    let c = with_agents(backend, 1, "").await;
    let body = json!({"input": {"sleep_ms": 5000}, "timeout_secs": 1, "max_attempts": 1});
    let (_, t) = submit(&c, body, None).await;
    let t = c.finished(&task_id(&t)).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("timed out"), "{t}");
}

both_backends!(cancel_stops_a_queued_or_running_task: cancel_redis, cancel_embedded);

async fn cancel_stops_a_queued_or_running_task(backend: Backend) {
    let c = with_agents(backend, 1, "").await;
    let (_, running) = submit(&c, json!({"input": {"sleep_ms": 20000}}), None).await;
    wait_until("the long task running", WAIT, || async {
        c.task(&task_id(&running)).await["status"] == "running"
    })
    .await;
    let (_, queued) = submit(&c, json!({"input": "never"}), None).await;
    let (status, body) = c
        .master
        .delete(&format!("/api/v1/tasks/{}", task_id(&queued)))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (status, _) = c
        .master
        .delete(&format!("/api/v1/tasks/{}", task_id(&running)))
        .await;
    assert_eq!(status, 200);
    let t = c.finished(&task_id(&running)).await;
    assert_eq!(t["status"], "cancelled", "{t}");
    assert_eq!(
        c.task(&task_id(&queued)).await["attempts"],
        0,
        "a cancelled queued task never ran"
    );
    // The agent is free again.
    let (_, next) = submit(&c, json!({"input": "after"}), Some(10.0)).await;
    assert_eq!(next["status"], "succeeded", "{next}");
}

both_backends!(broadcast_reaches_every_running_agent: broadcast_redis, broadcast_embedded);

async fn broadcast_reaches_every_running_agent(backend: Backend) {
    let c = with_agents(backend, 3, "").await;
    let (status, body) = c
        .master
        .post(
            "/api/v1/pools/p/broadcast?wait=10",
            json!({"input": "hello"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    let agents: std::collections::HashSet<&str> = tasks
        .iter()
        .map(|t| t["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(agents.len(), 3, "one task per agent");
    assert!(
        tasks
            .iter()
            .all(|t| t["status"] == "succeeded" && t["output"] == "hello")
    );
}

both_backends!(an_idempotency_key_answers_the_existing_task: idem_redis, idem_embedded);

async fn an_idempotency_key_answers_the_existing_task(backend: Backend) {
    let c = with_agents(backend, 1, "").await;
    let body = json!({"input": "once", "idempotency_key": "k-1"});
    let (status, first) = submit(&c, body.clone(), Some(10.0)).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = submit(&c, body, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(task_id(&again), task_id(&first));
    let (_, all) = c.master.get("/api/v1/tasks?pool=p").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "no second task");
}

both_backends!(a_batch_runs_every_task_once: batch_redis, batch_embedded);

async fn a_batch_runs_every_task_once(backend: Backend) {
    let c = with_agents(backend, 4, "").await;
    let tasks: Vec<Value> = (0..200).map(|i| json!({"input": i})).collect();
    let ids = c.submit_batch("p", tasks).await;
    assert_eq!(ids.len(), 200);
    for (i, t) in ids.iter().enumerate() {
        let t = c.finished(t).await;
        assert_eq!(
            (t["output"].clone(), t["attempts"].as_u64()),
            (json!(i), Some(1))
        );
    }
    let (_, agents) = c.master.get("/api/v1/agents").await;
    let done: u64 = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tasks_done"].as_u64().unwrap())
        .sum();
    assert_eq!(done, 200, "each ran exactly once");
    // The stats read the store, which takes the last results a moment after the registry.
    let stats = wait_for("the store to count 200 succeeded tasks", WAIT, || async {
        let (status, stats) = c.master.get("/api/v1/pools/p/stats?window=1h").await;
        assert_eq!(status, 200, "{stats}");
        (stats["counts"]["succeeded"] == 200).then_some(stats)
    })
    .await;
    assert_eq!(
        (
            stats["counts"]["queued"].as_u64(),
            stats["counts"]["running"].as_u64()
        ),
        (Some(0), Some(0)),
        "{stats}"
    );
}

both_backends!(bad_task_input_gets_a_named_4xx: bad_redis, bad_embedded);

async fn bad_task_input_gets_a_named_4xx(backend: Backend) {
    let c = Cluster::start_on(backend, config(10, 2, ""), &[]).await;
    let big = "x".repeat(1024 * 1024 + 1);
    let cases = [
        (
            "/api/v1/pools/nope/tasks",
            json!({"input": 1}),
            404,
            "unknown_pool",
        ),
        (
            "/api/v1/pools/p/tasks",
            json!({"input": 1, "priority": 10}),
            422,
            "priority",
        ),
        (
            "/api/v1/pools/p/tasks",
            json!({"input": 1, "max_attempts": 0}),
            422,
            "max_attempts",
        ),
        ("/api/v1/pools/p/tasks", json!({"input": big}), 422, "1 MiB"),
        (
            "/api/v1/pools/p/tasks?wait=301",
            json!({"input": 1}),
            400,
            "wait",
        ),
        ("/api/v1/pools/p/tasks", json!({"inpt": 1}), 400, "inpt"),
        (
            "/api/v1/pools/p/tasks/batch",
            json!({"tasks": []}),
            422,
            "tasks",
        ),
    ];
    for (path, body, status, names) in cases {
        let (got, answer) = c.master.post(path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        let text = answer.to_string();
        assert!(
            text.contains(names),
            "{path}: the error names {names}: {text}"
        );
    }
    // A batch over its own limit (32 MiB, not the 1 MiB of other bodies) is told that limit.
    let limit = agentpool_master::api::MAX_BATCH_BODY_BYTES;
    let body = format!(r#"{{"tasks":[{{"input":"{}"}}]}}"#, "x".repeat(limit));
    let (status, answer) = c
        .master
        .post_raw(
            "/api/v1/pools/p/tasks/batch",
            "application/json",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "body_too_large", "{answer}");
    assert!(
        answer.to_string().contains(&limit.to_string()),
        "names the batch limit: {answer}"
    );
    let (status, _) = c.master.get("/api/v1/tasks/nope").await;
    assert_eq!(status, 404);
    let (status, _) = c.master.get("/api/v1/pools/p/stats?window=forever").await;
    assert_eq!(status, 400);
    // A task for a pool with no agent is accepted and waits.
    let (status, t) = submit(&c, json!({"input": 1}), None).await;
    assert_eq!((status, t["status"].as_str()), (202, Some("queued")), "{t}");
}
