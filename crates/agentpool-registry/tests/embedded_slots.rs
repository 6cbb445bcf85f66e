//! Slots on every backend: `release` gives a slot back (also an orphan's, touching no worker),
//! `drain` takes a worker out of placement (`only_if_empty`), `undrain` puts it back, and `reap`
//! orphans or deletes a worker's agents and leaves a tombstone. Unknown ids change nothing.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::{Heartbeat, ReapMode, Reservation};
use agentpool_types::{AgentId, AgentState, Placement, ProcessId, ProcessState};
use common::{Env, agent_with_id, id_set, set};

async fn release(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    assert_eq!(env.score("dev", &w).await, Some(8));
    let released = env.reg.release(&a).await.unwrap().expect("known agent");
    assert_eq!(
        (&released.spec.agent_id, released.process_id.as_ref()),
        (&a, Some(&w))
    );
    assert_eq!(
        (released.status, released.spec.pool_name.as_str()),
        (AgentState::Pending, "dev")
    );
    assert_eq!(env.score("dev", &w).await, Some(9));
    assert_eq!(env.assert_slots("dev", &w, true).await, 1);
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert_eq!(env.pool_agents("dev").await, set(&[&b]));
    assert_eq!(env.assigned(&w).await, set(&[&b]));

    // Releasing it again, or an agent never known, changes nothing.
    let before = env.snapshot(&["dev"]).await;
    assert!(
        env.reg.release(&a).await.unwrap().is_none(),
        "released twice"
    );
    assert!(env.reg.release(&AgentId::new()).await.unwrap().is_none());
    assert_eq!(env.snapshot(&["dev"]).await, before);
    assert_eq!(env.score("dev", &w).await, Some(9));
}
both!(release_gives_the_slot_back, release);

async fn release_orphan(env: Env) {
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    let live = env.worker("dev", 10).await;
    assert!(env.reg.release(&a).await.unwrap().is_some());
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert!(env.pool_agents("dev").await.is_empty());
    assert_eq!(env.score("dev", &live).await, Some(10));
    assert_eq!(env.assert_slots("dev", &live, true).await, 0);
}
both!(
    release_of_an_orphan_removes_it_without_touching_any_worker,
    release_orphan
);

async fn drain(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let before = env.snapshot(&["dev"]).await;
    assert_eq!(
        env.reg.drain(&w, true).await.unwrap(),
        None,
        "busy worker drained"
    );
    assert_eq!(env.snapshot(&["dev"]).await, before);
    assert_eq!(env.score("dev", &w).await, Some(8));

    // `only_if_empty` drains an empty worker, and leaves the busy one alone.
    let idle = env.worker("dev", 10).await;
    assert_eq!(env.reg.drain(&idle, true).await.unwrap(), Some(vec![]));
    assert_eq!(env.score("dev", &idle).await, None);
    let p = env.reg.process(&idle).await.unwrap().unwrap();
    assert_eq!(p.status, ProcessState::Draining);
    assert_eq!(env.score("dev", &w).await, Some(8));

    let agents = env
        .reg
        .drain(&w, false)
        .await
        .unwrap()
        .expect("known worker");
    assert_eq!(id_set(&agents), set(&[&a, &b]));
    assert_eq!(env.score("dev", &w).await, None, "still in placement");
    let p = env.reg.process(&w).await.unwrap().unwrap();
    assert_eq!((p.status, p.agent_count), (ProcessState::Draining, 2));
    // It still holds its agents and its heartbeat is still watched.
    assert_eq!(env.watched().await, 2);
    assert_eq!(env.assigned(&w).await, set(&[&a, &b]));
    // No reserve lands on it.
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
    assert_eq!(env.reserve("dev", Placement::Spread).await.1, None);
    // A released agent frees the slot but does not put the worker back.
    env.reg.release(&a).await.unwrap().unwrap();
    assert_eq!(env.assert_slots("dev", &w, false).await, 1);
    // Draining again returns what is left.
    assert_eq!(
        env.reg.drain(&w, false).await.unwrap(),
        Some(vec![b.clone()])
    );

    // An unknown worker is not drained, in either mode, and nothing changes.
    let before = env.snapshot(&["dev"]).await;
    for only_if_empty in [false, true] {
        let got = env.reg.drain(&ProcessId::new(), only_if_empty).await;
        assert_eq!(got.unwrap(), None);
    }
    assert_eq!(env.snapshot(&["dev"]).await, before);
}
both!(drain_takes_a_worker_out_of_placement, drain);

async fn undrain(env: Env) {
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    assert!(
        !env.reg.undrain(&w).await.unwrap(),
        "a running worker is not draining"
    );
    env.reg
        .drain(&w, false)
        .await
        .unwrap()
        .expect("known worker");
    assert_eq!(env.score("dev", &w).await, None, "out of placement");
    assert!(env.reg.undrain(&w).await.unwrap());
    let p = env.reg.process(&w).await.unwrap().unwrap();
    assert_eq!(p.status, ProcessState::Running);
    assert_eq!(
        env.score("dev", &w).await,
        Some(9),
        "back with its free slots"
    );
    assert_eq!(env.assert_slots("dev", &w, true).await, 1);
    assert!(env.reg.release(&a).await.unwrap().is_some());
    assert!(!env.reg.undrain(&ProcessId::new()).await.unwrap());
}
both!(undrain_puts_a_worker_back_in_placement, undrain);

async fn reap(env: Env) {
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let registered_at = env.reg.agent(&a).await.unwrap().unwrap().registered_at;
    let other = env.worker("other", 10).await;
    let (c, _) = env.place("other").await;
    let hb = env.cp.heartbeat(&dead, 1, 1.0).await.unwrap();
    assert!(matches!(hb, Heartbeat::Alive { .. }), "{hb:?}");

    let reaped = env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    assert_eq!(id_set(&reaped), set(&[&a, &b]));
    assert!(env.reg.process(&dead).await.unwrap().is_none());
    assert_eq!(env.score("dev", &dead).await, None);
    assert_eq!(env.watched().await, 1, "the reaped worker's heartbeat");
    for id in [&a, &b] {
        let agent = env.reg.agent(id).await.unwrap().unwrap();
        assert_eq!(
            (agent.status, agent.process_id),
            (AgentState::Orphaned, None)
        );
    }
    // The orphans stay in their pool; other workers and their agents are untouched.
    assert_eq!(env.pool_agents("dev").await, set(&[&a, &b]));
    assert_eq!(env.pool_agents("other").await, set(&[&c]));
    let kept = env.reg.agent(&c).await.unwrap().unwrap();
    assert_eq!(
        (kept.status, kept.process_id.as_ref()),
        (AgentState::Pending, Some(&other))
    );
    assert_eq!(env.assert_slots("other", &other, true).await, 1);

    // The tombstone: the reaped worker is told so; one never registered is not.
    let before = env.snapshot(&["dev", "other"]).await;
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
    assert_eq!(env.status(&dead, &a, AgentState::Idle).await, None);
    // With no worker left in the pool, a new agent and the orphan both wait.
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
    let again_spec = agent_with_id("dev", &a);
    let again = Reservation {
        must_exist: true,
        ..Reservation::new(&again_spec, Placement::Pack)
    };
    assert_eq!(env.reg.reserve(again).await.unwrap(), None);
    assert_eq!(env.snapshot(&["dev", "other"]).await, before);

    // Placing an orphan again counts a restart; a retry does not.
    let new = env.worker("dev", 10).await;
    for _ in 0..2 {
        assert_eq!(env.reg.reserve(again).await.unwrap(), Some(new.clone()));
        let agent = env.reg.agent(&a).await.unwrap().unwrap();
        assert_eq!((agent.restarts, agent.epoch), (1, 2));
        assert_eq!(
            (agent.status, agent.process_id.as_ref()),
            (AgentState::Pending, Some(&new))
        );
        assert_eq!(agent.registered_at, registered_at);
    }
    assert_eq!(env.assert_slots("dev", &new, true).await, 1);
    // Now only its new worker writes its status.
    assert_eq!(env.status(&dead, &a, AgentState::Stopped).await, None);
    assert_eq!(env.status(&new, &a, AgentState::Idle).await, Some(2));
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(agent.status, AgentState::Idle);

    // An orderly stop deletes the agents and leaves no tombstone.
    let reaped = env.reg.reap(&new, ReapMode::Delete).await.unwrap();
    assert_eq!(reaped, vec![a.clone()]);
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert!(env.reg.process(&new).await.unwrap().is_none());
    assert_eq!(env.score("dev", &new).await, None);
    assert_eq!(env.watched().await, 1, "the deleted worker's heartbeat");
    assert_eq!(env.pool_agents("dev").await, set(&[&b]));
    assert_eq!(
        env.cp.heartbeat(&new, 1, 1.0).await.unwrap(),
        Heartbeat::Unregistered
    );
    assert_eq!(env.assert_slots("other", &other, true).await, 1);

    // An unknown worker holds nothing to reap, in either mode, and nothing changes.
    let before = env.snapshot(&["dev", "other"]).await;
    for mode in [ReapMode::Orphan, ReapMode::Delete] {
        let reaped = env.reg.reap(&ProcessId::new(), mode).await.unwrap();
        assert!(reaped.is_empty());
    }
    assert_eq!(env.snapshot(&["dev", "other"]).await, before);
}
both!(reap_orphans_or_deletes_and_leaves_a_tombstone, reap);
