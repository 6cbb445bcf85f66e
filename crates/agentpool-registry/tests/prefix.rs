//! A key prefix against a real Redis: every key the scripts touch (including the ones they build
//! from ids they read) carries it, and two prefixes sharing one Redis never see each other.

mod common;

use agentpool_registry::redis::{RedisControlPlane, RedisRegistry};
use agentpool_registry::{ControlPlane, Heartbeat, ReapMode, Registry, Reservation, StatusWrite};
use agentpool_types::{AgentState, Placement, TaskRules};
use common::{Env, agent, worker_process};
use redis::AsyncCommands;

/// The pool's task rules, which `init_pools` writes under the prefix too.
const RULES: TaskRules = TaskRules {
    default_timeout_ms: 300_000,
    lease_grace_ms: 5_000,
    retry_backoff_ms: 1_000,
    retry_backoff_max_ms: 60_000,
    circuit_failures: 0,
    circuit_cooldown_ms: 30_000,
    final_ttl_ms: 3_600_000,
};

/// Redis-only: key prefixes exist only in Redis, where several registries share one server.
#[tokio::test]
async fn every_key_carries_the_prefix_and_prefixes_are_isolated() {
    let env = Env::start().await;
    let url = env.redis.url();
    let reg = RedisRegistry::connect(&url, "t1:").await.unwrap();
    let cp = RedisControlPlane::connect(&url, "t1:").await.unwrap();
    let other = RedisRegistry::connect(&url, "t2:").await.unwrap();

    let w = worker_process("dev", 3);
    cp.register(&w).await.unwrap();
    reg.init_pools(&[("dev".to_owned(), RULES)]).await.unwrap();
    let r = agent("dev");
    let placed = reg.reserve(Reservation::new(&r, Placement::Pack)).await;
    assert_eq!(placed.unwrap(), Some(w.process_id.clone()));
    let r2 = agent("dev");
    reg.reserve(Reservation::new(&r2, Placement::Spread))
        .await
        .unwrap()
        .unwrap();
    let stopping = StatusWrite::new(&r.agent_id, AgentState::Stopping);
    let set = cp.set_agent_status(&w.process_id, stopping).await.unwrap();
    assert!(set.is_some());
    let hb = cp.heartbeat(&w.process_id, 1, 1.0).await.unwrap();
    assert_eq!(
        hb,
        Heartbeat::Alive {
            assigned: vec![r2.agent_id.clone()],
            holding: vec![]
        }
    );

    // The other prefix sees nothing and cannot place anything.
    assert_eq!(
        other
            .reserve(Reservation::new(&agent("dev"), Placement::Pack))
            .await
            .unwrap(),
        None
    );
    assert!(other.processes().await.unwrap().is_empty());
    assert!(other.agent(&r.agent_id).await.unwrap().is_none());
    assert!(other.release(&r.agent_id).await.unwrap().is_none());
    assert_eq!(other.drain(&w.process_id, false).await.unwrap(), None);
    let counts = other.pool_counts(&[("dev".to_owned(), 3)]).await.unwrap();
    assert_eq!((counts[0].process_count, counts[0].agent_count), (0, 0));

    let counts = reg.pool_counts(&[("dev".to_owned(), 3)]).await.unwrap();
    assert_eq!(counts[0].process_count, 1);
    assert_eq!(counts[0].total_capacity, 3);
    assert_eq!(counts[0].available_capacity, 1);
    assert_eq!(counts[0].agent_count, 2);
    assert_eq!(reg.processes().await.unwrap().len(), 1);

    let keys: Vec<String> = env.conn.clone().keys("*").await.unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with("t1:")),
        "unprefixed keys: {keys:?}"
    );

    // Release, drain, move and reap build keys from ids they read: still prefixed.
    reg.release(&r.agent_id).await.unwrap().unwrap();
    let w2 = worker_process("dev", 3);
    cp.register(&w2).await.unwrap();
    assert_eq!(
        reg.drain(&w.process_id, false).await.unwrap(),
        Some(vec![r2.agent_id.clone()])
    );
    let mv = Reservation {
        move_from: Some(&w.process_id),
        ..Reservation::new(&r2, Placement::Spread)
    };
    assert_eq!(reg.reserve(mv).await.unwrap(), Some(w2.process_id.clone()));
    assert!(
        reg.reap(&w.process_id, ReapMode::Delete)
            .await
            .unwrap()
            .is_empty()
    );
    let orphans = reg.reap(&w2.process_id, ReapMode::Orphan).await.unwrap();
    assert_eq!(orphans, vec![r2.agent_id.clone()]);
    let agent = reg.agent(&r2.agent_id).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.process_id),
        (AgentState::Orphaned, None)
    );

    let keys: Vec<String> = env.conn.clone().keys("*").await.unwrap();
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    // A worker reaped as dead leaves a prefixed tombstone for its fencing.
    let tombstones = keys.iter().filter(|k| k.starts_with("t1:reaped:")).count();
    assert_eq!(tombstones, 1);
    keys.retain(|k| !k.starts_with("t1:reaped:"));
    let agent_key = format!("t1:agent:{}", r2.agent_id);
    assert_eq!(
        keys,
        vec![
            agent_key.as_str(),
            "t1:pool:dev:agents",
            "t1:pool:dev:rules",
            "t1:pools"
        ]
    );
}
