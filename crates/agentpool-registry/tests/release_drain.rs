//! `release` and `drain` against a real Redis: a released slot comes back (except on a draining
//! worker), unknown ids change nothing, and draining takes a worker out of placement.

mod common;

use agentpool_registry::Registry;
use agentpool_types::{AgentId, AgentState, Placement, ProcessId};
use common::{Env, id_set, set};

#[tokio::test]
async fn release_gives_the_slot_back_and_removes_the_agent() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    assert_eq!(env.score("dev", &w).await, Some(8));

    let released = env.reg.release(&a).await.unwrap().expect("known agent");
    assert_eq!(released.agent_id, a);
    assert_eq!(released.process_id, Some(w.clone()));
    assert_eq!(released.status, AgentState::Pending);
    assert_eq!(released.pool_name, "dev");

    assert_eq!(env.score("dev", &w).await, Some(9));
    assert_eq!(
        env.field(&format!("process:{w}"), "agent_count")
            .await
            .unwrap(),
        "1"
    );
    assert!(!env.exists(&format!("agent:{a}")).await);
    assert_eq!(env.members("pool:dev:agents").await, set(&[&b]));
    assert_eq!(
        env.members(&format!("process:{w}:agents")).await,
        set(&[&b])
    );
    env.assert_slots("dev", &w, true).await;
    assert!(env.reg.agent(&a).await.unwrap().is_none());

    // Releasing it again is a no-op.
    let before = env.snapshot().await;
    assert!(env.reg.release(&a).await.unwrap().is_none());
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn release_of_an_unknown_agent_changes_nothing() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    env.place("dev").await;
    let before = env.snapshot().await;
    assert!(env.reg.release(&AgentId::new()).await.unwrap().is_none());
    assert_eq!(env.snapshot().await, before);
    env.assert_slots("dev", &w, true).await;
}

#[tokio::test]
async fn release_of_an_orphan_removes_it_without_touching_any_worker() {
    let env = Env::start().await;
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    env.reg
        .reap(&dead, agentpool_registry::ReapMode::Orphan)
        .await
        .unwrap();
    let live = env.worker("dev", 10).await;
    assert!(env.reg.release(&a).await.unwrap().is_some());
    assert!(!env.exists(&format!("agent:{a}")).await);
    assert!(env.members("pool:dev:agents").await.is_empty());
    assert_eq!(env.score("dev", &live).await, Some(10));
    env.assert_slots("dev", &live, true).await;
}

#[tokio::test]
async fn drain_takes_the_worker_out_of_placement_and_returns_its_agents() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;

    let agents = env
        .reg
        .drain(&w, false)
        .await
        .unwrap()
        .expect("known worker");
    assert_eq!(id_set(&agents), set(&[&a, &b]));
    assert_eq!(env.score("dev", &w).await, None, "still in placement");
    assert_eq!(
        env.field(&format!("process:{w}"), "status").await.unwrap(),
        "draining"
    );
    // It still holds its agents and stays registered.
    assert_eq!(
        env.members(&format!("process:{w}:agents")).await,
        set(&[&a, &b])
    );
    assert!(
        env.zscore("processes:heartbeats", w.as_str())
            .await
            .is_some()
    );

    // No reserve lands on it.
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
    assert_eq!(env.reserve("dev", Placement::Spread).await.1, None);

    // A released agent frees the slot but does not put the worker back.
    assert!(env.reg.release(&a).await.unwrap().is_some());
    assert_eq!(
        env.score("dev", &w).await,
        None,
        "release re-added a draining worker"
    );
    env.assert_slots("dev", &w, false).await;
    assert_eq!(
        env.members(&format!("process:{w}:agents")).await,
        set(&[&b])
    );

    // Draining again returns what is left.
    assert_eq!(
        env.reg.drain(&w, false).await.unwrap(),
        Some(vec![b.clone()])
    );
}

#[tokio::test]
async fn drain_only_if_empty_leaves_a_busy_worker_alone() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    env.place("dev").await;
    let before = env.snapshot().await;
    assert_eq!(env.reg.drain(&w, true).await.unwrap(), None);
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.score("dev", &w).await, Some(9));
}

#[tokio::test]
async fn drain_only_if_empty_drains_an_empty_worker() {
    let env = Env::start().await;
    let busy = env.worker("dev", 10).await;
    env.place("dev").await;
    let idle = env.worker("dev", 10).await;
    assert_eq!(env.reg.drain(&idle, true).await.unwrap(), Some(vec![]));
    assert_eq!(env.score("dev", &idle).await, None);
    assert_eq!(
        env.field(&format!("process:{idle}"), "status")
            .await
            .unwrap(),
        "draining"
    );
    assert_eq!(env.score("dev", &busy).await, Some(9));
}

#[tokio::test]
async fn drain_of_an_unknown_worker_changes_nothing() {
    let env = Env::start().await;
    env.worker("dev", 10).await;
    env.place("dev").await;
    let before = env.snapshot().await;
    for only_if_empty in [false, true] {
        let got = env
            .reg
            .drain(&ProcessId::new(), only_if_empty)
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(env.snapshot().await, before);
}
