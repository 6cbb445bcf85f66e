//! `reap` and the fenced `set_agent_status` against a real Redis: a dead worker's agents become
//! orphans to place again (or vanish on orderly shutdown), and only an agent's current worker
//! may write its status.

mod common;

use agentpool_registry::{ControlPlane, ReapMode, Registry, Reservation};
use agentpool_types::{AgentId, AgentState, Placement, ProcessId};
use common::{Env, StatusExt, assert_near, id_set, reservation, set};

#[tokio::test]
async fn reap_orphan_removes_the_worker_and_orphans_its_agents() {
    let env = Env::start().await;
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let other = env.worker("other", 10).await;
    let (c, _) = env.place("other").await;

    let reaped = env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    let now = env.redis_ms().await;
    assert_eq!(id_set(&reaped), set(&[&a, &b]));

    assert!(!env.exists(&format!("process:{dead}")).await);
    assert!(!env.exists(&format!("process:{dead}:agents")).await);
    assert_eq!(env.score("dev", &dead).await, None);
    assert_eq!(
        env.zscore("processes:heartbeats", dead.as_str()).await,
        None
    );
    for id in [&a, &b] {
        let h = env.hash(&format!("agent:{id}")).await;
        assert_eq!(h["status"], "orphaned", "{id}");
        assert_eq!(h["process_id"], "", "{id}");
        assert_near(&h["updated_at"], now);
        let agent = env.reg.agent(id).await.unwrap().unwrap();
        assert_eq!(
            (agent.status, agent.process_id),
            (AgentState::Orphaned, None)
        );
    }
    assert_eq!(env.members("pool:dev:agents").await, set(&[&a, &b]));

    // Other workers and their agents are untouched.
    assert_eq!(env.members("pool:other:agents").await, set(&[&c]));
    assert_eq!(
        env.field(&format!("agent:{c}"), "status").await.unwrap(),
        "pending"
    );
    env.assert_slots("other", &other, true).await;
    assert!(
        env.zscore("processes:heartbeats", other.as_str())
            .await
            .is_some()
    );
}

#[tokio::test]
async fn placing_an_orphan_again_counts_a_restart() {
    let env = Env::start().await;
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let akey = format!("agent:{a}");
    let registered_at = env.field(&akey, "registered_at").await.unwrap();
    env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();

    // No worker yet: the orphan waits, unchanged.
    let again = Reservation {
        agent_id: a.clone(),
        ..reservation("dev", Placement::Pack)
    };
    let before = env.snapshot().await;
    assert_eq!(env.reg.reserve(&again).await.unwrap(), None);
    assert_eq!(env.snapshot().await, before);

    let new = env.worker("dev", 10).await;
    assert_eq!(env.reg.reserve(&again).await.unwrap(), Some(new.clone()));
    let h = env.hash(&akey).await;
    assert_eq!(h["restarts"], "1");
    assert_eq!(h["status"], "pending");
    assert_eq!(h["process_id"], new.as_str());
    assert_eq!(h["registered_at"], registered_at);
    env.assert_slots("dev", &new, true).await;
    assert_eq!(env.members("pool:dev:agents").await, set(&[&a]));

    // A retry of that placement is not another restart.
    assert_eq!(env.reg.reserve(&again).await.unwrap(), Some(new.clone()));
    assert_eq!(env.field(&akey, "restarts").await.unwrap(), "1");
}

#[tokio::test]
async fn reap_delete_removes_the_agents_too() {
    let env = Env::start().await;
    let keep = env.worker("dev", 1).await;
    let (kept, _) = env.place("dev").await;
    let gone = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;

    let reaped = env.reg.reap(&gone, ReapMode::Delete).await.unwrap();
    assert_eq!(id_set(&reaped), set(&[&a, &b]));
    for id in [&a, &b] {
        assert!(!env.exists(&format!("agent:{id}")).await, "{id}");
    }
    assert_eq!(env.members("pool:dev:agents").await, set(&[&kept]));
    assert!(!env.exists(&format!("process:{gone}")).await);
    assert!(!env.exists(&format!("process:{gone}:agents")).await);
    assert_eq!(env.score("dev", &gone).await, None);
    assert_eq!(
        env.zscore("processes:heartbeats", gone.as_str()).await,
        None
    );
    env.assert_slots("dev", &keep, true).await;
}

#[tokio::test]
async fn reap_of_an_unknown_worker_changes_nothing() {
    let env = Env::start().await;
    env.worker("dev", 10).await;
    env.place("dev").await;
    let before = env.snapshot().await;
    for mode in [ReapMode::Orphan, ReapMode::Delete] {
        assert!(
            env.reg
                .reap(&ProcessId::new(), mode)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn set_agent_status_writes_only_for_the_assigned_worker() {
    let env = Env::start().await;
    let owner = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let stranger = env.worker("dev", 10).await;
    let akey = format!("agent:{a}");

    assert!(
        env.cp
            .set_status(&owner, &a, AgentState::Idle, None)
            .await
            .unwrap()
    );
    assert_eq!(env.field(&akey, "status").await.unwrap(), "idle");
    assert_near(
        &env.field(&akey, "updated_at").await.unwrap(),
        env.redis_ms().await,
    );
    assert_eq!(env.field(&akey, "error").await, None);

    let before = env.snapshot().await;
    let fenced = env
        .cp
        .set_status(&stranger, &a, AgentState::Failed, Some("x"));
    assert!(!fenced.await.unwrap(), "another worker wrote the status");
    assert_eq!(env.snapshot().await, before);

    let missing = AgentId::new();
    let wrote = env.cp.set_status(&owner, &missing, AgentState::Idle, None);
    assert!(!wrote.await.unwrap());
    assert!(
        !env.exists(&format!("agent:{missing}")).await,
        "hash created"
    );
    assert_eq!(env.snapshot().await, before);

    let failed = env
        .cp
        .set_status(&owner, &a, AgentState::Failed, Some("boom"));
    assert!(failed.await.unwrap());
    let agent = env.cp.agent(&a).await.unwrap().unwrap();
    assert_eq!(agent.status, AgentState::Failed);
    assert_eq!(agent.error.as_deref(), Some("boom"));
}

#[tokio::test]
async fn a_reaped_worker_can_no_longer_write_its_former_agents() {
    let env = Env::start().await;
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    let before = env.snapshot().await;
    let late = env.cp.set_status(&dead, &a, AgentState::Idle, None);
    assert!(!late.await.unwrap());
    assert_eq!(env.snapshot().await, before);

    // Once placed elsewhere, only the new worker writes.
    let new = env.worker("dev", 10).await;
    let again = Reservation {
        agent_id: a.clone(),
        ..reservation("dev", Placement::Pack)
    };
    assert_eq!(env.reg.reserve(&again).await.unwrap(), Some(new.clone()));
    assert!(
        !env.cp
            .set_status(&dead, &a, AgentState::Stopped, None)
            .await
            .unwrap()
    );
    assert!(
        env.cp
            .set_status(&new, &a, AgentState::Idle, None)
            .await
            .unwrap()
    );
    assert_eq!(
        env.field(&format!("agent:{a}"), "status").await.unwrap(),
        "idle"
    );
}

#[tokio::test]
async fn a_write_under_an_older_placement_epoch_is_fenced() {
    use agentpool_registry::StatusWrite;
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let first = env
        .cp
        .set_agent_status(&w, StatusWrite::new(&a, AgentState::Starting))
        .await
        .unwrap()
        .expect("written");
    assert_eq!(first, 1, "the first placement is epoch 1");

    // The agent is placed again on the same worker (released and re-reserved under its id).
    env.reg.reap(&w, ReapMode::Orphan).await.unwrap();
    let w2 = env.worker("dev", 10).await;
    let again = Reservation {
        agent_id: a.clone(),
        ..reservation("dev", Placement::Pack)
    };
    assert_eq!(env.reg.reserve(&again).await.unwrap(), Some(w2.clone()));
    let stale = StatusWrite {
        epoch: Some(first),
        ..StatusWrite::new(&a, AgentState::Idle)
    };
    assert_eq!(
        env.cp.set_agent_status(&w2, stale).await.unwrap(),
        None,
        "old epoch fenced"
    );
    let fresh = StatusWrite {
        epoch: Some(2),
        restarted: true,
        ..StatusWrite::new(&a, AgentState::Idle)
    };
    assert_eq!(env.cp.set_agent_status(&w2, fresh).await.unwrap(), Some(2));
    let agent = env.cp.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.epoch, agent.restarts),
        (2, 2),
        "orphan placement + restart in place"
    );
}
