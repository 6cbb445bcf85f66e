//! Slots and status on every backend: release, drain (`only_if_empty`), reap (orphan, delete)
//! with its tombstone, the heartbeat's answer and filter, epoch fencing, re-registration with
//! hosted agents, and `mark_agent`.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::{Heartbeat, HostedAgent, ReapMode, Reservation, StatusWrite};
use agentpool_types::{AgentId, AgentState, Placement, ProcessId, ProcessState};
use common::{Env, id_set, reservation, set, worker_process};
use std::collections::BTreeSet;

async fn status(env: &Env, p: &ProcessId, a: &AgentId, s: AgentState) -> Option<u64> {
    env.cp
        .set_agent_status(p, StatusWrite::new(a, s))
        .await
        .unwrap()
}

async fn release(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let released = env.reg.release(&a).await.unwrap().expect("known agent");
    assert_eq!(
        (released.agent_id, released.process_id),
        (a.clone(), Some(w.clone()))
    );
    assert_eq!(env.score("dev", &w).await, Some(9));
    assert_eq!(env.assert_slots("dev", &w, true).await, 1);
    assert_eq!(env.pool_agents("dev").await, set(&[&b]));
    assert!(
        env.reg.release(&a).await.unwrap().is_none(),
        "released twice"
    );
    assert!(env.reg.release(&AgentId::new()).await.unwrap().is_none());
    assert_eq!(env.score("dev", &w).await, Some(9));
}
both!(release_gives_the_slot_back, release);

async fn drain(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    assert_eq!(
        env.reg.drain(&w, true).await.unwrap(),
        None,
        "busy worker drained"
    );
    assert_eq!(env.score("dev", &w).await, Some(8));

    let agents = env
        .reg
        .drain(&w, false)
        .await
        .unwrap()
        .expect("known worker");
    assert_eq!(id_set(&agents), set(&[&a, &b]));
    let p = env.reg.process(&w).await.unwrap().unwrap();
    assert_eq!((p.status, p.agent_count), (ProcessState::Draining, 2));
    assert_eq!(env.reserve("dev", Placement::Spread).await.1, None);
    // A released agent frees the slot but does not put the worker back.
    env.reg.release(&a).await.unwrap().unwrap();
    assert_eq!(env.assert_slots("dev", &w, false).await, 1);

    let idle = env.worker("dev", 10).await;
    assert_eq!(env.reg.drain(&idle, true).await.unwrap(), Some(vec![]));
    assert_eq!(env.score("dev", &idle).await, None);
    assert_eq!(env.reg.drain(&ProcessId::new(), false).await.unwrap(), None);
}
both!(drain_takes_a_worker_out_of_placement, drain);

async fn reap(env: Env) {
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let reaped = env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    assert_eq!(id_set(&reaped), set(&[&a, &b]));
    assert!(env.reg.process(&dead).await.unwrap().is_none());
    assert_eq!(env.score("dev", &dead).await, None);
    for id in [&a, &b] {
        let agent = env.reg.agent(id).await.unwrap().unwrap();
        assert_eq!(
            (agent.status, agent.process_id),
            (AgentState::Orphaned, None)
        );
    }
    // The tombstone: the reaped worker is told so; one never registered is not.
    assert_eq!(
        env.cp.heartbeat(&dead, 1, 1.0).await.unwrap(),
        Heartbeat::Reaped
    );
    let unknown = ProcessId::new();
    assert_eq!(
        env.cp.heartbeat(&unknown, 1, 1.0).await.unwrap(),
        Heartbeat::Unregistered
    );
    // Nor does a late write resurrect it or touch its former agents.
    env.cp
        .set_process_status(&dead, ProcessState::Stopped)
        .await
        .unwrap();
    assert!(env.reg.process(&dead).await.unwrap().is_none());
    assert_eq!(status(&env, &dead, &a, AgentState::Idle).await, None);

    // Placing an orphan again counts a restart; a retry does not.
    let new = env.worker("dev", 10).await;
    let again = Reservation {
        agent_id: a.clone(),
        must_exist: true,
        ..reservation("dev", Placement::Pack)
    };
    for _ in 0..2 {
        assert_eq!(env.reg.reserve(&again).await.unwrap(), Some(new.clone()));
        let agent = env.reg.agent(&a).await.unwrap().unwrap();
        assert_eq!((agent.restarts, agent.epoch), (1, 2));
    }

    // An orderly stop deletes the agents and leaves no tombstone.
    let reaped = env.reg.reap(&new, ReapMode::Delete).await.unwrap();
    assert_eq!(reaped, vec![a.clone()]);
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert_eq!(env.pool_agents("dev").await, set(&[&b]));
    assert_eq!(
        env.cp.heartbeat(&new, 1, 1.0).await.unwrap(),
        Heartbeat::Unregistered
    );
    assert!(
        env.reg
            .reap(&ProcessId::new(), ReapMode::Orphan)
            .await
            .unwrap()
            .is_empty()
    );
}
both!(reap_orphans_or_deletes_and_leaves_a_tombstone, reap);

async fn heartbeat(env: Env) {
    let p = env.worker("dev", 20).await;
    let mut wanted = BTreeSet::new();
    for s in AgentState::ALL
        .iter()
        .filter(|s| **s != AgentState::Orphaned)
    {
        let (a, _) = env.place("dev").await;
        assert!(status(&env, &p, &a, *s).await.is_some());
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
    let Heartbeat::Alive { assigned } = env.cp.heartbeat(&p, 123_456, 12.5).await.unwrap() else {
        panic!("a registered worker is alive");
    };
    assert_eq!(id_set(&assigned), wanted);
    let w = env.reg.process(&p).await.unwrap().unwrap();
    assert_eq!((w.rss_bytes, w.cpu_percent), (123_456, 12.5));
    assert_eq!(w.status, ProcessState::Running);
    assert!(!w.last_heartbeat.is_empty());
    env.assert_slots("dev", &p, true).await;
}
both!(heartbeat_hands_back_the_agents_that_should_run, heartbeat);

async fn epochs(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let stranger = env.worker("dev", 10).await;
    assert_eq!(status(&env, &w, &a, AgentState::Starting).await, Some(1));
    assert_eq!(status(&env, &stranger, &a, AgentState::Idle).await, None);
    assert_eq!(
        status(&env, &w, &AgentId::new(), AgentState::Idle).await,
        None
    );

    env.reg.reap(&w, ReapMode::Orphan).await.unwrap();
    let again = Reservation {
        agent_id: a.clone(),
        ..reservation("dev", Placement::Pack)
    };
    let w2 = env.reg.reserve(&again).await.unwrap().unwrap();
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

    assert!(
        env.reg
            .mark_agent(&a, AgentState::Quarantined, Some("loop"))
            .await
            .unwrap()
    );
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.error.as_deref()),
        (AgentState::Quarantined, Some("loop"))
    );
    assert!(
        !env.reg
            .mark_agent(&AgentId::new(), AgentState::Stopped, None)
            .await
            .unwrap()
    );
}
both!(status_writes_are_fenced_by_owner_and_epoch, epochs);

async fn register_with(env: Env) {
    let p = worker_process("dev", 10);
    env.cp.register(&p).await.unwrap();
    env.place("dev").await;
    // Registering again keeps the slots of assigned agents.
    env.cp.register(&p).await.unwrap();
    assert_eq!(env.score("dev", &p.process_id).await, Some(9));

    // After the registry lost a worker, it registers with what it runs; an agent that
    // meanwhile belongs to another worker stays there.
    let other = env.worker("dev", 1).await;
    let (taken, _) = env.place("dev").await;
    assert_eq!(
        env.reg.agent(&taken).await.unwrap().unwrap().process_id,
        Some(other.clone())
    );
    let q = worker_process("dev", 5);
    let hosted = |id: &AgentId| HostedAgent {
        agent_id: id.clone(),
        role: "echo".into(),
        name: "kept".into(),
        metadata: r#"{"k":2}"#.into(),
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
        (a.name.as_str(), a.metadata["k"].as_i64()),
        ("kept", Some(2))
    );
    assert_eq!(
        env.reg.agent(&taken).await.unwrap().unwrap().process_id,
        Some(other)
    );
    assert_eq!(env.assert_slots("dev", &q.process_id, true).await, 1);
    assert!(env.pool_agents("dev").await.contains(fresh.as_str()));
    let Heartbeat::Alive { assigned } = env.cp.heartbeat(&q.process_id, 0, 0.0).await.unwrap()
    else {
        panic!("registered");
    };
    assert_eq!(assigned, vec![fresh]);
}
both!(register_with_restores_hosted_agents, register_with);
