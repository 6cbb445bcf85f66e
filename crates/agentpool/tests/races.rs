//! Races and crashes a hostile operator tries: a master SIGKILLed mid-bulk (with and without an
//! Idempotency-Key), drains racing each other and terminates, terminates after a Redis wipe,
//! a drain that cannot finish, and refused spawns that must not pile up rows.

mod common;

use agentpool_testkit::{wait_for, wait_until, worker_pids};
use common::{Backend, Cluster, WAIT, config};
use serde_json::{Value, json};
use std::collections::HashSet;

async fn agents(c: &Cluster) -> Vec<Value> {
    let (status, list) = c.master.get("/api/v1/agents").await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

fn ids(list: &Value) -> HashSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// POSTs a bulk spawn of `count` from a task of its own, with an optional key.
fn bulk_in_background(c: &Cluster, count: u32, key: Option<&str>) -> tokio::task::JoinHandle<()> {
    let mut req = c
        .master
        .http()
        .post(format!("{}/api/v1/pools/p/agents", c.master.url()))
        .json(&json!({ "count": count }));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    // The master dies under it: whatever comes back (most likely a broken connection) is
    // not what the test looks at.
    tokio::spawn(async move {
        let _ = req.send().await;
    })
}

/// Waits until part of a bulk is placed, then SIGKILLs the master and starts another.
async fn crash_mid_bulk(c: &mut Cluster, count: u32, key: Option<&str>) {
    let bulk = bulk_in_background(c, count, key);
    wait_until("part of the bulk placed", WAIT, || async {
        let (_, p) = c.master.get("/api/v1/pools/p").await;
        p["agent_count"].as_u64().unwrap_or(0) > 0
    })
    .await;
    c.restart_master().await;
    let _ = bulk.await;
}

both_backends!(an_unanswered_bulk_spawn_is_rolled_back_by_the_next_master: rolled_back_redis, rolled_back_embedded);

async fn an_unanswered_bulk_spawn_is_rolled_back_by_the_next_master(backend: Backend) {
    let mut c = Cluster::start_on(backend, config(10, 40, ""), &[]).await;
    crash_mid_bulk(&mut c, 300, None).await;
    wait_until("no agent of the cut request left", WAIT, || async {
        agents(&c).await.is_empty()
    })
    .await;
    assert!(
        c.master.log().contains("rolled back a spawn request"),
        "the new master says what it did"
    );
    // Nothing comes back later either: the store wants none of them.
    let (status, spawned) = common::spawn(&c.master, "p").await;
    assert_eq!(status, 201, "{spawned}");
    c.assert_pools_match_registry("p", 10).await;
    assert_eq!(agents(&c).await.len(), 1);
}

both_backends!(a_retry_with_the_same_key_finishes_the_cut_bulk_and_never_adds: keyed_redis, keyed_embedded);

async fn a_retry_with_the_same_key_finishes_the_cut_bulk_and_never_adds(backend: Backend) {
    let mut c = Cluster::start_on(backend, config(10, 40, ""), &[]).await;
    crash_mid_bulk(&mut c, 120, Some("bulk-1")).await;
    let retry = || async {
        let req = c
            .master
            .http()
            .post(format!("{}/api/v1/pools/p/agents", c.master.url()))
            .header("Idempotency-Key", "bulk-1")
            .json(&json!({ "count": 120 }));
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let (status, first) = retry().await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = retry().await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(ids(&first).len(), 120);
    assert_eq!(ids(&first), ids(&second), "the same agents both times");
    assert_eq!(agents(&c).await.len(), 120, "never more than asked");
    c.assert_pools_match_registry("p", 10).await;

    // The same key with another body is refused and changes nothing.
    let other = c
        .master
        .http()
        .post(format!("{}/api/v1/pools/p/agents", c.master.url()))
        .header("Idempotency-Key", "bulk-1")
        .json(&json!({ "count": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 422);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    assert_eq!(agents(&c).await.len(), 120);
}

both_backends!(a_single_spawn_retried_with_its_key_answers_the_same_agent: single_key_redis, single_key_embedded);

async fn a_single_spawn_retried_with_its_key_answers_the_same_agent(backend: Backend) {
    let c = Cluster::start_on(backend, config(10, 4, ""), &[]).await;
    let post = || {
        c.master
            .http()
            .post(format!("{}/api/v1/agents", c.master.url()))
            .header("Idempotency-Key", "one")
            .json(&json!({"pool": "p", "name": "solo"}))
            .send()
    };
    // Concurrent retries too: one agent, the same answer.
    let (a, b) = tokio::join!(post(), post());
    let a: Value = a.unwrap().json().await.unwrap();
    let b: Value = b.unwrap().json().await.unwrap();
    assert_eq!(a["agent_id"], b["agent_id"], "{a} {b}");
    assert_eq!(agents(&c).await.len(), 1);
    let bad = c
        .master
        .http()
        .post(format!("{}/api/v1/agents", c.master.url()))
        .header("Idempotency-Key", "k".repeat(300))
        .json(&json!({"pool": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

both_backends!(drains_and_terminates_racing_never_strand_a_worker_or_404_an_agent: drain_race_redis, drain_race_embedded);

async fn drains_and_terminates_racing_never_strand_a_worker_or_404_an_agent(backend: Backend) {
    let c = Cluster::start_on(backend, config(5, 8, ""), &[]).await;
    for round in 0..4 {
        let (status, placed) = c
            .master
            .post("/api/v1/pools/p/agents", json!({"count": 5}))
            .await;
        assert_eq!(status, 201, "{placed}");
        let worker = placed[0]["process_id"].as_str().unwrap().to_owned();
        let victims: Vec<String> = agents(&c)
            .await
            .iter()
            .filter(|a| a["process_id"] == worker.as_str())
            .take(2)
            .map(|a| a["agent_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            victims.len(),
            2,
            "round {round}: the worker holds two agents at least"
        );
        let drain = format!("/api/v1/processes/{worker}");
        let master = &c.master;
        let terminate = |id: String| async move {
            master
                .delete(&format!("/api/v1/agents/{id}?graceful=false"))
                .await
        };
        let (d1, d2, t1, t2, t3) = tokio::join!(
            c.master.delete(&drain),
            c.master.delete(&drain),
            terminate(victims[0].clone()),
            terminate(victims[0].clone()),
            terminate(victims[1].clone()),
        );
        let drains = [d1.0, d2.0];
        assert!(
            drains.contains(&200) && drains.iter().all(|s| [200, 404, 409].contains(s)),
            "round {round}: drains answered {drains:?} ({} / {})",
            d1.1,
            d2.1
        );
        for (status, body) in [t1, t2, t3] {
            assert_eq!(status, 200, "round {round}: terminate answered {body}");
            assert_eq!(body["status"], "stopped", "{body}");
        }
        wait_until("the drained worker to be gone", WAIT, || async {
            !c.is_registered(&worker).await
        })
        .await;
        let live = agents(&c).await;
        for v in &victims {
            assert!(
                !live.iter().any(|a| a["agent_id"] == v.as_str()),
                "round {round}: terminated agent {v} came back"
            );
        }
        common::assignment(&c, "p").await;
        c.assert_pools_match_registry("p", 5).await;
    }
}

both_backends!(a_drain_that_cannot_move_its_agents_puts_the_worker_back: stuck_redis, stuck_embedded);

async fn a_drain_that_cannot_move_its_agents_puts_the_worker_back(backend: Backend) {
    // One worker at most: its agents have nowhere to go.
    let c = Cluster::start_on(backend, config(5, 1, ""), &[]).await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 3}))
        .await;
    assert_eq!(status, 201);
    let worker = placed[0]["process_id"].as_str().unwrap().to_owned();
    let (status, body) = c
        .master
        .delete(&format!("/api/v1/processes/{worker}"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "drain_incomplete", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("back in placement"),
        "{body}"
    );
    let (_, procs) = c.master.get("/api/v1/processes").await;
    assert_eq!(procs[0]["status"], "running", "{procs}");
    // It takes work again.
    let (status, next) = common::spawn(&c.master, "p").await;
    assert_eq!(
        (status, next["process_id"].as_str()),
        (201, Some(worker.as_str()))
    );
    c.assert_pools_match_registry("p", 5).await;
}

/// Redis only: the wipe is Redis's.
#[tokio::test]
async fn terminates_right_after_a_redis_wipe_answer_200_and_stop_the_agents() {
    let c = Cluster::start(config(10, 4, "")).await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 5}))
        .await;
    assert_eq!(status, 201);
    let mut r = c.conn().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut r).await.unwrap();
    let deletes = ids(&placed).into_iter().map(|id| {
        let master = &c.master;
        async move { master.delete(&format!("/api/v1/agents/{id}")).await }
    });
    for (status, body) in futures::future::join_all(deletes).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "stopped", "{body}");
    }
    // The worker puts back what it ran when it registers again; none of it stays.
    wait_until("no agent running after the wipe", WAIT, || async {
        let list = agents(&c).await;
        c.registered().await.len() == 1 && list.is_empty()
    })
    .await;
}

/// Refused spawns keep the request and its error, not agents that never existed.
#[tokio::test]
async fn refused_spawns_leave_no_agent_rows() {
    use sqlx::Connection;
    let c = Cluster::start_on(Backend::Embedded, config(2, 1, ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 2}))
        .await;
    assert_eq!(status, 201);
    for _ in 0..15 {
        let (status, body) = common::spawn(&c.master, "p").await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "pool_full", "{body}");
    }
    let url = format!("sqlite://{}?mode=ro", c.sqlite_path().display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let count = || sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM agents");
    let (agents,) = count().fetch_one(&mut db).await.unwrap();
    assert_eq!(agents, 2, "only the agents that run are rows");
    let failed =
        "SELECT count(*) FROM spawn_requests WHERE state = 'failed' AND error LIKE '%full%'";
    let (refused,) = sqlx::query_as::<_, (i64,)>(failed)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(refused, 15, "each refusal is on record with its error");
}

both_backends!(a_spawn_that_times_out_is_rolled_back: timeout_redis, timeout_embedded);

async fn a_spawn_that_times_out_is_rolled_back(backend: Backend) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let extra = "agent_start_timeout_ms = 1000\nheartbeat_timeout_ms = 60000";
    let c = Cluster::start_on(backend, config(10, 1, extra), &[]).await;
    let (status, first) = common::spawn(&c.master, "p").await;
    assert_eq!(status, 201, "{first}");
    let pid = Pid::from_raw(worker_pids(&c.control_url())[0]);
    kill(pid, Signal::SIGSTOP).unwrap();
    let (status, body) = common::spawn(&c.master, "p").await;
    kill(pid, Signal::SIGCONT).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back")
    );
    // The worker wakes and reconciles (two heartbeats) without the rolled-back agent.
    let (_, procs) = c.master.get("/api/v1/processes").await;
    let beat = procs[0]["last_heartbeat"].as_str().unwrap().to_owned();
    wait_for("two more heartbeats", WAIT, || async {
        let (_, p) = c.master.get("/api/v1/processes").await;
        (p[0]["last_heartbeat"].as_str() > Some(beat.as_str())).then_some(())
    })
    .await;
    let list = agents(&c).await;
    assert_eq!(
        ids(&json!(list)),
        ids(&json!([first])),
        "only the first agent remains"
    );
}

both_backends!(bulk_terminate_stops_the_oldest_first: bulk_terminate_redis, bulk_terminate_embedded);

async fn bulk_terminate_stops_the_oldest_first(backend: Backend) {
    let c = Cluster::start_on(backend, config(10, 4, ""), &[]).await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 12}))
        .await;
    assert_eq!(status, 201);
    let mut all: Vec<String> = ids(&placed).into_iter().collect();
    all.sort();
    let (status, gone) = c.master.delete("/api/v1/pools/p/agents?count=5").await;
    assert_eq!(status, 200, "{gone}");
    let mut gone_ids: Vec<String> = ids(&gone).into_iter().collect();
    gone_ids.sort();
    assert_eq!(gone_ids, all[..5].to_vec(), "the oldest five");
    for (query, code) in [("count=0", 422), ("", 422), ("count=3&all=true", 422)] {
        let (status, body) = c
            .master
            .delete(&format!("/api/v1/pools/p/agents?{query}"))
            .await;
        assert_eq!(status, code, "{query}: {body}");
    }
    let (status, rest) = c.master.delete("/api/v1/pools/p/agents?all=true").await;
    assert_eq!((status, ids(&rest).len()), (200, 7), "{rest}");
    assert!(agents(&c).await.is_empty());
    c.assert_pools_match_registry("p", 10).await;
}
