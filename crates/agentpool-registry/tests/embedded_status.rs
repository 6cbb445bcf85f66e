//! Workers and status on every backend: what registering records, the heartbeat's answer and
//! filter, re-registration with hosted agents, status writes fenced by owner and epoch, and
//! `mark_agent` (`stopping` agents are never moved and only ended).

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::{Heartbeat, Hosted, ReapMode, Reservation, StatusWrite};
use agentpool_types::{AgentId, AgentState, Placement, ProcessState, WorkerProcess};
use chrono::DateTime;
use common::{Env, agent_with_id, id_set, worker_process};
use std::collections::BTreeSet;
use std::time::Duration;

async fn register(env: Env) {
    let p = worker_process("dev", 10);
    env.cp.register(&p).await.unwrap();
    let read = env
        .reg
        .process(&p.process_id)
        .await
        .unwrap()
        .expect("registered");
    // Running, with a first heartbeat; everything else as the worker sent it.
    let expected = WorkerProcess {
        status: ProcessState::Running,
        last_heartbeat: read.last_heartbeat.clone(),
        ..p.clone()
    };
    assert_eq!(read, expected);
    DateTime::parse_from_rfc3339(&read.last_heartbeat).expect("last_heartbeat is RFC 3339");
    assert_eq!(env.reg.processes().await.unwrap(), vec![read]);
    // In placement with every slot free, watched for heartbeats, and its pool recorded.
    assert_eq!(env.score("dev", &p.process_id).await, Some(10));
    assert_eq!(env.assert_slots("dev", &p.process_id, true).await, 0);
    let s = env.reg.stale(Duration::from_secs(60)).await.unwrap();
    assert_eq!((s.total, s.stale), (1, vec![]));
    let rules = agentpool_types::TaskRules {
        default_timeout_ms: 1_000,
        lease_grace_ms: 1_000,
        retry_backoff_ms: 1_000,
        retry_backoff_max_ms: 1_000,
        circuit_failures: 0,
        circuit_cooldown_ms: 1_000,
        final_ttl_ms: 1_000,
    };
    let pools = [("dev".into(), rules)];
    let missing = env.reg.init_pools(&pools).await.unwrap();
    assert_eq!(
        missing, 1,
        "a pool without its rules is missing: only the master sets them"
    );
    let missing = env.reg.init_pools(&pools).await.unwrap();
    assert_eq!(missing, 0, "then it is recorded");
}
both!(register_records_the_worker_in_placement, register);

async fn heartbeat(env: Env) {
    let p = env.worker("dev", 20).await;
    let mut wanted = BTreeSet::new();
    for s in AgentState::ALL
        .iter()
        .filter(|s| **s != AgentState::Orphaned)
    {
        let (a, _) = env.place("dev").await;
        assert!(env.status(&p, &a, *s).await.is_some());
        if !matches!(
            s,
            AgentState::Stopping
                | AgentState::Stopped
                | AgentState::Failed
                | AgentState::Quarantined
        ) {
            wanted.insert(a.to_string());
        }
    }
    let Heartbeat::Alive { assigned, .. } = env.cp.heartbeat(&p, 123_456, 12.5).await.unwrap()
    else {
        panic!("a registered worker is alive");
    };
    assert_eq!(id_set(&assigned), wanted);
    assert_eq!(assigned.len(), wanted.len(), "no duplicates");
    let w = env.reg.process(&p).await.unwrap().unwrap();
    assert_eq!((w.rss_bytes, w.cpu_percent), (123_456, 12.5));
    assert_eq!(w.status, ProcessState::Running);
    DateTime::parse_from_rfc3339(&w.last_heartbeat).expect("last_heartbeat is RFC 3339");
    env.assert_slots("dev", &p, true).await;
}
both!(heartbeat_hands_back_the_agents_that_should_run, heartbeat);

async fn register_with(env: Env) {
    let p = worker_process("dev", 10);
    env.cp.register(&p).await.unwrap();
    env.place("dev").await;
    // Registering again keeps the slots of assigned agents.
    env.cp.register(&p).await.unwrap();
    assert_eq!(env.score("dev", &p.process_id).await, Some(9));
    assert_eq!(env.assert_slots("dev", &p.process_id, true).await, 1);

    // After the registry lost a worker, it registers with what it runs; an agent that
    // meanwhile belongs to another worker stays there.
    let other = env.worker("dev", 1).await;
    let (taken, _) = env.place("dev").await;
    assert_eq!(
        env.reg.agent(&taken).await.unwrap().unwrap().process_id,
        Some(other.clone())
    );
    let q = worker_process("dev", 5);
    let hosted = |id: &AgentId| Hosted {
        agent: agentpool_types::AgentSpec {
            name: "kept".into(),
            metadata: serde_json::json!({"k": 2}),
            ..agent_with_id("dev", id)
        },
        status: AgentState::Idle,
    };
    let fresh = AgentId::new();
    env.cp
        .register_with(&q, &[hosted(&fresh), hosted(&taken)])
        .await
        .unwrap();
    let a = env.reg.agent(&fresh).await.unwrap().unwrap();
    assert_eq!(
        (a.process_id.as_ref(), a.status, a.epoch),
        (Some(&q.process_id), AgentState::Idle, 1)
    );
    assert_eq!(
        (a.spec.name.as_str(), a.spec.metadata["k"].as_i64()),
        ("kept", Some(2))
    );
    assert_eq!(
        env.reg.agent(&taken).await.unwrap().unwrap().process_id,
        Some(other)
    );
    assert_eq!(env.assert_slots("dev", &q.process_id, true).await, 1);
    assert!(env.pool_agents("dev").await.contains(fresh.as_str()));
    let Heartbeat::Alive { assigned, .. } = env.cp.heartbeat(&q.process_id, 0, 0.0).await.unwrap()
    else {
        panic!("registered");
    };
    assert_eq!(assigned, vec![fresh]);
}
both!(register_with_restores_hosted_agents, register_with);

async fn epochs(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let stranger = env.worker("dev", 10).await;
    assert_eq!(env.status(&w, &a, AgentState::Starting).await, Some(1));
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!((agent.status, agent.error), (AgentState::Starting, None));

    // Another worker's write, or one for an agent that does not exist, changes nothing.
    let before = env.snapshot(&["dev"]).await;
    assert_eq!(env.status(&stranger, &a, AgentState::Idle).await, None);
    let failed = StatusWrite {
        error: Some("x"),
        ..StatusWrite::new(&a, AgentState::Failed)
    };
    let fenced = env.cp.set_agent_status(&stranger, failed).await.unwrap();
    assert_eq!(fenced, None, "another worker wrote the status");
    let missing = AgentId::new();
    assert_eq!(env.status(&w, &missing, AgentState::Idle).await, None);
    assert!(env.reg.agent(&missing).await.unwrap().is_none(), "created");
    assert_eq!(env.snapshot(&["dev"]).await, before);

    env.reg.reap(&w, ReapMode::Orphan).await.unwrap();
    let again_spec = agent_with_id("dev", &a);
    let again = Reservation {
        ..Reservation::new(&again_spec, Placement::Pack)
    };
    let w2 = env.reg.reserve(again).await.unwrap().unwrap();
    let stale = StatusWrite {
        epoch: Some(1),
        ..StatusWrite::new(&a, AgentState::Idle)
    };
    assert_eq!(
        env.cp.set_agent_status(&w2, stale).await.unwrap(),
        None,
        "old epoch"
    );
    let fresh = StatusWrite {
        epoch: Some(2),
        restarted: true,
        error: Some("boom"),
        ..StatusWrite::new(&a, AgentState::Failed)
    };
    assert_eq!(env.cp.set_agent_status(&w2, fresh).await.unwrap(), Some(2));
    let agent = env.cp.agent(&a).await.unwrap().unwrap();
    assert_eq!((agent.epoch, agent.restarts), (2, 2));
    assert_eq!(
        (agent.status, agent.error.as_deref()),
        (AgentState::Failed, Some("boom"))
    );

    let before = env.reg.agent(&a).await.unwrap();
    let marked = env
        .reg
        .mark_agent(&a, AgentState::Quarantined, Some("loop"))
        .await
        .unwrap();
    assert_eq!(marked, before, "the agent as it was");
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.error.as_deref()),
        (AgentState::Quarantined, Some("loop"))
    );
    assert!(
        env.reg
            .mark_agent(&AgentId::new(), AgentState::Stopped, None)
            .await
            .unwrap()
            .is_none()
    );
}
both!(status_writes_are_fenced_by_owner_and_epoch, epochs);

async fn stopping(env: Env) {
    let old = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let marked = env.reg.mark_agent(&a, AgentState::Stopping, None).await;
    assert_eq!(
        marked.unwrap().expect("known agent").status,
        AgentState::Pending
    );
    assert_eq!(
        env.reg.agent(&a).await.unwrap().unwrap().status,
        AgentState::Stopping
    );
    assert!(
        env.reg
            .mark_agent(&AgentId::new(), AgentState::Stopping, None)
            .await
            .unwrap()
            .is_none(),
        "an unknown agent is not created"
    );

    // A move racing the terminate gives up instead of placing the agent again.
    let new = env.worker("dev", 10).await;
    let spec = agent_with_id("dev", &a);
    let mv = Reservation {
        move_from: Some(&old),
        must_exist: true,
        ..Reservation::new(&spec, Placement::Spread)
    };
    let err = env.reg.reserve(mv).await.unwrap_err();
    assert!(
        matches!(err, agentpool_registry::RegistryError::AgentGone),
        "{err:?}"
    );
    assert_eq!(env.score("dev", &new).await, Some(10), "no slot taken");

    // Its worker may only end it: a late `idle` is fenced, `stopped` is written.
    assert_eq!(env.status(&old, &a, AgentState::Idle).await, None);
    assert_eq!(env.status(&old, &a, AgentState::Stopped).await, Some(1));
    let hb = env.cp.heartbeat(&old, 0, 0.0).await.unwrap();
    assert_eq!(
        hb,
        Heartbeat::Alive {
            assigned: vec![],
            holding: vec![]
        }
    );
}
both!(a_stopping_agent_is_never_moved_and_only_ended, stopping);
