//! `register` and `heartbeat` against a real Redis: what a worker's registration writes, what a
//! heartbeat stamps and hands back, and that a reaped worker is told so instead of resurrected.

mod common;

use agentpool_registry::{ControlPlane, Heartbeat, ReapMode, Registry};
use agentpool_types::{AgentState, Placement, ProcessState, WorkerProcess};
use chrono::Datelike;
use common::{Env, StatusExt, assert_near, parse_time, worker_process};
use std::collections::BTreeSet;

#[tokio::test]
async fn register_writes_the_process_hash_placement_and_heartbeat() {
    let env = Env::start().await;
    let p = worker_process("dev", 10);
    let before = env.redis_ms().await;
    env.cp.register(&p).await.unwrap();
    let after = env.redis_ms().await;
    let id = p.process_id.as_str();

    assert_eq!(env.zscore("pool:dev:processes", id).await, Some(10.0));
    let hb = env
        .zscore("processes:heartbeats", id)
        .await
        .expect("heartbeat member") as i64;
    assert!(
        (before..=after).contains(&hb),
        "{hb} not in {before}..={after}"
    );
    assert!(env.members("pools").await.contains("dev"));

    let h = env.hash(&format!("process:{id}")).await;
    let fields: BTreeSet<&str> = h.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "process_id",
        "pool_name",
        "pid",
        "host",
        "max_agents",
        "agent_count",
        "status",
        "started_at",
        "last_heartbeat",
        "rss_bytes",
        "cpu_percent",
    ]
    .into();
    assert!(expected.is_subset(&fields), "missing fields in {h:?}");
    assert_eq!(h["process_id"], id);
    assert_eq!(h["pool_name"], "dev");
    assert_eq!(h["pid"], "4242");
    assert_eq!(h["host"], "test-host");
    assert_eq!(h["max_agents"], "10");
    assert_eq!(h["agent_count"], "0");
    assert_eq!(h["status"], "running", "register marks the worker running");
    assert_eq!(h["started_at"], p.started_at);
    assert_eq!(h["rss_bytes"], "0");
    assert_eq!(h["cpu_percent"], "0.0");
    let stamp = parse_time(&h["last_heartbeat"]);
    assert_eq!(stamp.year(), chrono::Utc::now().year());
    assert_near(&h["last_heartbeat"], after);

    let read: WorkerProcess = env.reg.process(&p.process_id).await.unwrap().unwrap();
    assert_eq!(read.status, ProcessState::Running);
    assert_eq!(read.max_agents, 10);
    assert_eq!(env.reg.processes().await.unwrap(), vec![read]);
}

#[tokio::test]
async fn reregistration_keeps_the_slots_of_assigned_agents() {
    let env = Env::start().await;
    let p = worker_process("dev", 10);
    env.cp.register(&p).await.unwrap();
    env.place("dev").await;
    env.place("dev").await;
    env.cp.register(&p).await.unwrap();
    assert_eq!(env.score("dev", &p.process_id).await, Some(8));
    env.assert_slots("dev", &p.process_id, true).await;
}

#[tokio::test]
async fn heartbeat_stamps_redis_time_and_returns_agents_that_should_run() {
    let env = Env::start().await;
    let p = env.worker("dev", 10).await;
    let statuses = [
        (AgentState::Pending, true),
        (AgentState::Starting, true),
        (AgentState::Idle, true),
        (AgentState::Busy, true),
        (AgentState::Restarting, true),
        (AgentState::Stopping, false),
        (AgentState::Stopped, false),
        (AgentState::Failed, false),
        (AgentState::Quarantined, false),
    ];
    let mut wanted = BTreeSet::new();
    for (status, runs) in statuses {
        let (a, _) = env.place("dev").await;
        assert!(env.cp.set_status(&p, &a, status, None).await.unwrap());
        if runs {
            wanted.insert(a.to_string());
        }
    }

    let before = env.redis_ms().await;
    let hb = env.cp.heartbeat(&p, 123_456, 12.5).await.unwrap();
    let after = env.redis_ms().await;

    let Heartbeat::Alive { assigned } = hb else {
        panic!("registered worker answered {hb:?}");
    };
    let got: BTreeSet<String> = assigned.iter().map(|a| a.to_string()).collect();
    assert_eq!(got, wanted, "only agents that should run are handed back");
    assert_eq!(assigned.len(), wanted.len(), "no duplicates");

    let score = env
        .zscore("processes:heartbeats", p.as_str())
        .await
        .unwrap() as i64;
    assert!(
        (before..=after).contains(&score),
        "{score} not in {before}..={after}"
    );
    let h = env.hash(&format!("process:{p}")).await;
    assert_eq!(h["rss_bytes"], "123456");
    assert_eq!(h["cpu_percent"], "12.5");
    assert_near(&h["last_heartbeat"], after);
    let stamped = parse_time(&h["last_heartbeat"]).timestamp_millis();
    assert!((before..=after).contains(&stamped), "{stamped}");
    // A heartbeat does not change the slot bookkeeping.
    env.assert_slots("dev", &p, true).await;
}

#[tokio::test]
async fn heartbeat_of_a_reaped_worker_answers_reaped_and_does_not_resurrect_it() {
    let env = Env::start().await;
    let p = env.worker("dev", 10).await;
    env.place("dev").await;
    assert!(matches!(
        env.cp.heartbeat(&p, 1, 1.0).await.unwrap(),
        Heartbeat::Alive { .. }
    ));
    env.reg.reap(&p, ReapMode::Orphan).await.unwrap();
    let before = env.snapshot().await;

    assert_eq!(
        env.cp.heartbeat(&p, 1, 1.0).await.unwrap(),
        Heartbeat::Reaped
    );
    assert!(!env.exists(&format!("process:{p}")).await);
    assert_eq!(env.zscore("processes:heartbeats", p.as_str()).await, None);
    // Nor does a late status write from the fenced worker.
    env.cp
        .set_process_status(&p, ProcessState::Stopped)
        .await
        .unwrap();
    assert_eq!(
        env.snapshot().await,
        before,
        "a reaped worker wrote to Redis"
    );
    assert!(env.reg.process(&p).await.unwrap().is_none());

    // A reserve no longer finds the reaped worker.
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
}
