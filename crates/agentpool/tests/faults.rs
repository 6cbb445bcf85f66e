//! Faults with real processes and real signals: a stopped worker is reaped and fences itself,
//! the reaper pauses when most workers go stale at once, Redis restarts empty, idle workers
//! shrink the pool, and a chaos run of kills under traffic loses and duplicates nothing.

mod common;

use agentpool_testkit::{wait_for, wait_until, worker_pids};
use common::{Cluster, WAIT, assignment, pool_config, spawn, worker_logs};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Fast liveness so each fault resolves within a couple of seconds.
const FAST: &str = "heartbeat_interval_ms = 200\nheartbeat_timeout_ms = 1500";

fn signal(pid: i32, s: Signal) {
    kill(Pid::from_raw(pid), s).expect("signal");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

async fn agents(c: &Cluster) -> Vec<Value> {
    let (_, list) = c.master.get("/api/v1/agents?pool=p").await;
    list.as_array().cloned().unwrap_or_default()
}

/// The pid of the worker a spawned agent went to.
async fn pid_of(c: &Cluster, process_id: &str) -> i32 {
    let (_, procs) = c.master.get("/api/v1/processes").await;
    let p = procs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_id"] == process_id)
        .cloned();
    p.map(|p| p["pid"].as_i64().unwrap() as i32)
        .expect("worker listed")
}

both_backends!(a_stopped_worker_is_reaped_its_agents_move_and_it_fences_itself: a_stopped_worker_is_reaped_its_agents_move_and_it_fences_itself_redis, a_stopped_worker_is_reaped_its_agents_move_and_it_fences_itself_embedded);

async fn a_stopped_worker_is_reaped_its_agents_move_and_it_fences_itself(backend: common::Backend) {
    let c = Cluster::start_on(backend, pool_config(10, 4, FAST, ""), &[]).await;
    let (status, first) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 10}))
        .await;
    assert_eq!(status, 201);
    let old = first[0]["process_id"].as_str().unwrap().to_owned();
    let pid = pid_of(&c, &old).await;
    signal(pid, Signal::SIGSTOP);

    wait_until("all 10 agents to run in another worker", WAIT, || async {
        assignment(&c, "p").await; // never assigned twice, at any sample
        let list = agents(&c).await;
        list.len() == 10
            && list
                .iter()
                .all(|a| a["status"] == "idle" && a["process_id"] != old.as_str())
    })
    .await;
    assert!(
        !c.is_registered(&old).await,
        "the stopped worker was reaped"
    );

    signal(pid, Signal::SIGCONT);
    wait_until("the resumed worker to exit by itself", WAIT, || async {
        !alive(pid)
    })
    .await;
    assert!(
        worker_logs(&c).contains("fenced"),
        "it says it fenced itself"
    );
    assert_eq!(
        assignment(&c, "p").await.len(),
        10,
        "no agent lost or doubled"
    );
    assert!(agents(&c).await.iter().all(|a| a["restarts"] == 1));
    c.assert_pools_match_registry("p", 10).await;
}

both_backends!(the_reaper_pauses_when_most_workers_go_stale_at_once: the_reaper_pauses_when_most_workers_go_stale_at_once_redis, the_reaper_pauses_when_most_workers_go_stale_at_once_embedded);

const PAUSED: &str = "most workers went stale at once";
const RESUMED: &str = "reaper resumed";

async fn the_reaper_pauses_when_most_workers_go_stale_at_once(backend: common::Backend) {
    let c = Cluster::start_on(backend, pool_config(2, 6, FAST, ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 6}))
        .await;
    assert_eq!(status, 201);
    let pids = worker_pids(&c.control_url());
    assert_eq!(pids.len(), 3);
    // A loaded machine can starve the workers into a pause of their own before this one, so
    // the test counts the log lines rather than looking for them.
    let seen = |line: &'static str| c.master.log().matches(line).count();
    let (paused, resumed) = (seen(PAUSED), seen(RESUMED));
    for pid in &pids {
        signal(*pid, Signal::SIGSTOP);
    }
    wait_until("the reaper to notice the mass staleness", WAIT, || async {
        seen(PAUSED) > paused
    })
    .await;
    let before = assignment(&c, "p").await;
    assert_eq!(before.len(), 6, "nothing was reaped or moved");

    // Crash detection by child exit still works while the reaper pauses.
    signal(pids[0], Signal::SIGKILL);
    wait_until(
        "the killed worker's agents to run elsewhere",
        WAIT,
        || async {
            let list = agents(&c).await;
            list.len() == 6 && list.iter().filter(|a| a["status"] == "idle").count() == 6
        },
    )
    .await;
    for pid in &pids[1..] {
        signal(*pid, Signal::SIGCONT);
    }
    // The survivors were never reaped: they keep heartbeating and keep their agents.
    wait_until("the survivors to heartbeat again", WAIT, || async {
        seen(RESUMED) > resumed
    })
    .await;
    for pid in &pids[1..] {
        assert!(
            alive(*pid),
            "worker {pid} was not fenced; master log:\n{}",
            c.master.log()
        );
    }
    let placed = assignment(&c, "p").await.len();
    assert_eq!(
        placed,
        6,
        "master log:\n{}\nworker logs:\n{}",
        c.master.log(),
        common::worker_logs(&c)
    );
    c.assert_pools_match_registry("p", 2).await;
}

/// Redis only: a Redis outage.
#[tokio::test]
async fn redis_restarting_empty_loses_nothing() {
    let mut c = Cluster::start(pool_config(10, 6, FAST, "")).await;
    let (status, spawned) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 30}))
        .await;
    assert_eq!(status, 201);
    let ids: HashSet<String> = spawned
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect();
    let pids = worker_pids(&c.control_url());

    c.redis_mut().stop();
    let (status, body) = spawn(&c.master, "p").await;
    assert_eq!(status, 503, "spawn during the outage: {body}");
    c.redis_mut().restart().await; // same port, empty

    wait_until("workers to re-register with every agent", WAIT, || async {
        let list = agents(&c).await;
        let back: HashSet<String> = list
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
            .collect();
        back == ids && list.iter().all(|a| a["status"] == "idle")
    })
    .await;
    assert_eq!(
        worker_pids(&c.control_url()),
        pids,
        "the same workers, never restarted"
    );
    assert_eq!(assignment(&c, "p").await.len(), 30);
    c.assert_pools_match_registry("p", 10).await;
    let row = c.pool_row("p").await;
    assert_eq!(
        (row["agent_count"].as_i64(), row["process_count"].as_i64()),
        (Some(30), Some(3))
    );
    // And the system takes new work.
    assert_eq!(spawn(&c.master, "p").await.0, 201);
}

both_backends!(idle_workers_are_drained_after_the_ttl_and_min_processes_holds: idle_workers_are_drained_after_the_ttl_and_min_processes_holds_redis, idle_workers_are_drained_after_the_ttl_and_min_processes_holds_embedded);

async fn idle_workers_are_drained_after_the_ttl_and_min_processes_holds(backend: common::Backend) {
    let pool = "min_processes = 1\nidle_worker_ttl_secs = 1";
    let c = Cluster::start_on(backend, pool_config(5, 6, FAST, pool), &[]).await;
    wait_until("min_processes workers at boot", WAIT, || async {
        worker_pids(&c.control_url()).len() == 1
    })
    .await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 15}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(worker_pids(&c.control_url()).len(), 3);
    for a in placed.as_array().unwrap() {
        let (status, _) = c
            .master
            .delete(&format!(
                "/api/v1/agents/{}?graceful=false",
                a["agent_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200);
    }
    wait_until(
        "idle workers to be stopped down to min_processes",
        WAIT,
        || async { worker_pids(&c.control_url()).len() == 1 && c.scores("p").await.len() == 1 },
    )
    .await;
    assert!(
        c.master.log().contains("idle for"),
        "the master says why it stopped them"
    );
    c.assert_pools_match_registry("p", 5).await;
}

both_backends!(chaos_kills_under_traffic_lose_and_duplicate_nothing: chaos_kills_under_traffic_lose_and_duplicate_nothing_redis, chaos_kills_under_traffic_lose_and_duplicate_nothing_embedded);

async fn chaos_kills_under_traffic_lose_and_duplicate_nothing(backend: common::Backend) {
    let pool = "max_restarts = 1000";
    let c = Cluster::start_on(backend, pool_config(5, 40, FAST, pool), &[]).await;
    let (status, seed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 20}))
        .await;
    assert_eq!(status, 201, "{seed}");
    let desired = std::sync::Mutex::new(
        seed.as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap().to_owned())
            .collect::<HashSet<_>>(),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);

    let traffic = async {
        let mut ops = 0u32;
        let mut round = 0u32;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            round += 1;
            let (status, body) = spawn(&c.master, "p").await;
            assert_eq!(status, 201, "spawn under chaos: {body}");
            desired
                .lock()
                .unwrap()
                .insert(body["agent_id"].as_str().unwrap().to_owned());
            if round.is_multiple_of(2) {
                let victim = desired.lock().unwrap().iter().next().cloned();
                if let Some(id) = victim {
                    let (status, body) = c
                        .master
                        .delete(&format!("/api/v1/agents/{id}?graceful=false"))
                        .await;
                    assert_eq!(status, 200, "terminate under chaos: {body}");
                    desired.lock().unwrap().remove(&id);
                }
            }
            ops += 1;
        }
        ops
    };
    let faults = async {
        let mut kills = 0u32;
        let mut seed = 0x9e37_79b9_u32;
        while kills < 20 {
            // Registered workers only: killing one mid-start fails the spawns waiting for it
            // with a 503, by design, which is not what this test is about.
            let (_, procs) = c.master.get("/api/v1/processes").await;
            let pids: Vec<i32> = procs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["pid"].as_i64())
                .map(|p| p as i32)
                .filter(|p| alive(*p))
                .collect();
            if pids.len() < 2 {
                tokio::task::yield_now().await;
                continue;
            }
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let victim = pids[seed as usize % pids.len()];
            signal(victim, Signal::SIGKILL);
            kills += 1;
            wait_until("the victim to be gone", WAIT, || async { !alive(victim) }).await;
            // Let the traffic and the rescheduling overlap with the next kill.
            wait_until("some recovery before the next kill", WAIT, || async {
                agents(&c)
                    .await
                    .iter()
                    .filter(|a| a["status"] == "orphaned")
                    .count()
                    < 5
            })
            .await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        kills
    };
    let (ops, kills) = tokio::join!(traffic, faults);

    let desired = desired.into_inner().unwrap();
    let settled = wait_for("the registry to equal the desired state", WAIT, || async {
        let list = agents(&c).await;
        let ids: HashSet<String> = list
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
            .collect();
        (ids == desired && list.iter().all(|a| a["status"] == "idle")).then_some(list)
    })
    .await;
    let owner = assignment(&c, "p").await;
    let assigned: HashSet<String> = owner.keys().cloned().collect();
    assert_eq!(
        assigned, desired,
        "every agent assigned exactly once, nothing else"
    );
    c.assert_pools_match_registry("p", 5).await;
    let registered = c.registered().await;
    assert_eq!(
        registered.len(),
        worker_pids(&c.control_url()).len(),
        "no dead worker left registered"
    );
    println!(
        "chaos: {kills} SIGKILLs injected under {ops} spawn/terminate rounds; checked {} agents: \
         registry == desired state, each assigned once, every score = capacity - assigned, \
         {} live workers all registered",
        settled.len(),
        registered.len()
    );
    assert!(kills >= 20);
}
