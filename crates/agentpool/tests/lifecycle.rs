//! Worker and agent lifecycles with real processes and signals: a worker that never registers,
//! an agent that panics, draining a worker, a crashed worker, and the master's shutdown.

mod common;

use agentpool_testkit::{wait_for, wait_until, worker_pids};
use common::{Cluster, WAIT, config, spawn};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;
use serde_json::json;

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Redis only: the fault injected is Redis refusing connections.
#[tokio::test]
async fn a_worker_that_does_not_register_in_time_is_killed_and_the_spawn_says_why() {
    let c = Cluster::start(config(10, 2, "worker_start_timeout_ms = 1500")).await;
    // Redis refuses every new connection: the worker cannot register, while the master keeps
    // the connections it already has.
    let before = c.snapshot().await;
    let mut r = c.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut r)
        .await
        .unwrap();
    let connected = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .to_owned();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(&connected)
        .query_async(&mut r)
        .await
        .unwrap();

    let (status, body) = spawn(&c.master, "p").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "worker_start_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not register"), "{message}");
    assert!(
        message.contains("registry unreachable"),
        "quotes the worker's log: {message}"
    );
    wait_until("the unregistered worker to be gone", WAIT, || async {
        worker_pids(&c.control_url()).is_empty()
    })
    .await;
    // Once Redis takes connections again, nothing was written, and the same spawn works.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(10_000)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(c.snapshot().await, before, "nothing was written");
    assert_eq!(spawn(&c.master, "p").await.0, 201);
}

both_backends!(a_panicking_agent_is_marked_failed_and_its_worker_lives_on: a_panicking_agent_is_marked_failed_and_its_worker_lives_on_redis, a_panicking_agent_is_marked_failed_and_its_worker_lives_on_embedded);

async fn a_panicking_agent_is_marked_failed_and_its_worker_lives_on(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(10, 2, ""), &[]).await;
    let (status, healthy) = spawn(&c.master, "p").await;
    assert_eq!(status, 201, "{healthy}");
    let pid = worker_pids(&c.control_url())[0];

    // `temporary`: no restart, so the panic leaves it `failed`.
    let body = json!({"pool": "p", "restart": "temporary", "config": {"fault": "panic"}});
    let (status, body) = c.master.post("/api/v1/agents", body).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "agent_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panicked")
    );

    let (_, failed) = c.master.get("/api/v1/agents?status=failed").await;
    let failed = &failed.as_array().unwrap()[0];
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("panicked on start"),
        "{failed}"
    );
    assert_eq!(failed["restarts"], 0);
    assert!(alive(pid), "the worker survived the panic");
    let path = format!("/api/v1/agents/{}", healthy["agent_id"].as_str().unwrap());
    assert_eq!(c.master.get(&path).await.1["status"], "idle");
    // The worker still takes new agents.
    let (status, next) = spawn(&c.master, "p").await;
    assert_eq!(
        (status, next["process_id"].clone()),
        (201, healthy["process_id"].clone())
    );
}

both_backends!(a_crash_looping_agent_is_quarantined_after_max_restarts_with_backoff: a_crash_looping_agent_is_quarantined_after_max_restarts_with_backoff_redis, a_crash_looping_agent_is_quarantined_after_max_restarts_with_backoff_embedded);

async fn a_crash_looping_agent_is_quarantined_after_max_restarts_with_backoff(
    backend: common::Backend,
) {
    let pool = "restart_backoff_ms = 50\nmax_restarts = 3\nrestart_period_secs = 60";
    let c = Cluster::start_on(backend, common::pool_config(10, 2, "", pool), &[]).await;
    let started = std::time::Instant::now();
    let body = json!({"pool": "p", "config": {"fault": "panic"}});
    let (status, body) = c.master.post("/api/v1/agents", body).await;
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panicked"),
        "{body}"
    );

    let (_, list) = c.master.get("/api/v1/agents?status=quarantined").await;
    let agent = &list.as_array().unwrap()[0];
    assert_eq!(agent["restarts"], 3, "{agent}");
    assert!(
        agent["error"]
            .as_str()
            .unwrap()
            .contains("panicked on start"),
        "{agent}"
    );
    // Three restarts backed off 50, 100 and 200 ms: it cannot have been quicker.
    assert!(
        took >= std::time::Duration::from_millis(350),
        "no backoff: {took:?}"
    );
    let log = common::worker_logs(&c);
    assert_eq!(log.matches("restarting it in place").count(), 3, "{log}");
    assert!(log.contains("quarantined"));
    // The history says the same, from the store.
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    let events = wait_for("the quarantine in the history", WAIT, || async {
        let (_, list) = c.master.get(&format!("/api/v1/agents/{id}/events")).await;
        let kinds: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["event"].as_str().unwrap_or("").to_owned())
            .collect();
        kinds.contains(&"quarantined".to_owned()).then_some(kinds)
    })
    .await;
    assert_eq!(
        events.iter().filter(|e| *e == "restarted").count(),
        3,
        "{events:?}"
    );
    // A quarantined agent stays put: the worker's reconcile does not start it again.
    assert_eq!(worker_pids(&c.control_url()).len(), 1);
}

both_backends!(draining_a_worker_moves_its_agents_then_stops_it: draining_a_worker_moves_its_agents_then_stops_it_redis, draining_a_worker_moves_its_agents_then_stops_it_embedded);

async fn draining_a_worker_moves_its_agents_then_stops_it(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(10, 4, ""), &[]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 15}))
        .await;
    assert_eq!(status, 201);
    let scores = c.scores("p").await;
    let (victim, _) = scores
        .iter()
        .find(|(_, free)| *free == 5)
        .expect("the half-full worker")
        .clone();
    let (_, info) = c.master.get("/api/v1/processes").await;
    let victim_pid = info
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_id"] == victim.as_str())
        .map(|p| p["pid"].as_i64().unwrap() as i32)
        .unwrap();

    let (status, body) = c
        .master
        .delete(&format!("/api/v1/processes/{victim}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["moved_agents"], 5);
    wait_until("the drained worker to exit", WAIT, || async {
        !alive(victim_pid)
    })
    .await;
    c.wait_all_running("p", 15).await;
    let (_, agents) = c.master.get("/api/v1/agents?pool=p").await;
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["process_id"] != victim.as_str())
    );
    assert!(c.assigned(&victim).await.is_empty());
    assert!(
        !c.is_registered(&victim).await,
        "the drained worker left the registry"
    );
    c.assert_pools_match_registry("p", 10).await;
}

both_backends!(a_crashed_worker_is_reaped_at_once_and_its_agents_run_elsewhere: a_crashed_worker_is_reaped_at_once_and_its_agents_run_elsewhere_redis, a_crashed_worker_is_reaped_at_once_and_its_agents_run_elsewhere_embedded);

async fn a_crashed_worker_is_reaped_at_once_and_its_agents_run_elsewhere(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(10, 4, ""), &[]).await;
    let (status, placed) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 10}))
        .await;
    assert_eq!(status, 201);
    let old = placed[0]["process_id"].as_str().unwrap().to_owned();
    let pid = worker_pids(&c.control_url())[0];
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    let agents = wait_for("all 10 agents running in another worker", WAIT, || async {
        let (_, list) = c.master.get("/api/v1/agents?pool=p").await;
        let list = list.as_array().cloned().unwrap_or_default();
        let moved = list.len() == 10
            && list
                .iter()
                .all(|a| a["status"] == "idle" && a["process_id"] != old.as_str());
        moved.then_some(list)
    })
    .await;
    assert!(
        agents.iter().all(|a| a["restarts"] == 1),
        "restarts counted once"
    );
    assert!(
        !c.is_registered(&old).await,
        "the dead worker's keys are gone"
    );
    c.assert_pools_match_registry("p", 10).await;
}

/// Redis only: without `--stop-workers` Redis-mode workers outlive the master by design;
/// embedded workers always stop with it (see embedded.rs).
#[tokio::test]
async fn sigterm_with_stop_workers_stops_them_and_cleans_the_registry() {
    let mut c = Cluster::start_with(config(10, 4, ""), &["--stop-workers"]).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 12}))
        .await;
    assert_eq!(status, 201);
    let pids = worker_pids(&c.control_url());
    assert_eq!(pids.len(), 2);

    let exit = c.master.terminate().await;
    assert!(exit.success(), "master exit: {exit:?}");
    for pid in pids {
        assert!(!alive(pid), "worker {pid} stopped with the master");
    }
    let mut r = c.conn().await;
    let mut left: Vec<String> = r.keys("*").await.unwrap();
    // The reaper lock expires by itself.
    left.retain(|k| k != "lock:reaper");
    left.sort();
    // The pool list and each pool's task rules are configuration, written again at start.
    assert_eq!(left, ["pool:p:rules", "pools"], "only configuration stays");
}

/// Redis only: workers left running for the next master do not hold up the shutdown (their
/// watchers end with the master instead of waiting out the grace period for an exit).
#[tokio::test]
async fn sigterm_leaves_workers_running_without_waiting_out_the_grace_period() {
    let mut c = Cluster::start(config(5, 4, "shutdown_grace_ms = 3000")).await;
    let (status, _) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 12}))
        .await;
    assert_eq!(status, 201);
    let pids = worker_pids(&c.control_url());
    assert_eq!(pids.len(), 3);
    let exit = c.master.terminate().await;
    assert!(exit.success(), "master exit: {exit:?}");
    let log = c.master.log();
    assert!(
        !log.contains("still running after the grace period"),
        "the shutdown waited for nothing: {log}"
    );
    assert!(log.contains("leaving workers running"), "{log}");
    for pid in pids {
        assert!(alive(pid), "worker {pid} left running for the next master");
    }
}

/// Redis only: the reap is done from outside the master, which needs a shared registry;
/// embedded workers are fenced the same way by the master itself (see faults.rs).
#[tokio::test]
async fn a_worker_whose_registration_is_reaped_fences_itself_and_exits() {
    use agentpool_registry::redis::RedisRegistry;
    use agentpool_registry::{ReapMode, Registry};
    use agentpool_types::ProcessId;

    let c = Cluster::start(config(10, 2, "")).await;
    let (status, agent) = spawn(&c.master, "p").await;
    assert_eq!(status, 201);
    let pid = worker_pids(&c.control_url())[0];
    let process = ProcessId::parse(agent["process_id"].as_str().unwrap()).unwrap();

    let registry = RedisRegistry::connect(&c.redis().url(), "").await.unwrap();
    registry.reap(&process, ReapMode::Orphan).await.unwrap();
    wait_until("the fenced worker to exit on its own", WAIT, || async {
        !alive(pid)
    })
    .await;
    let log = std::fs::read_to_string(
        c.data_dir()
            .join("logs")
            .join(format!("worker-p-{process}.log")),
    )
    .unwrap();
    assert!(log.contains("fenced"), "the worker says why it left: {log}");
    assert!(
        !c.is_registered(process.as_str()).await,
        "a fenced worker never registers again"
    );
}
