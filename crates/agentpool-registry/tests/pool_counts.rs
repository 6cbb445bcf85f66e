//! `pool_counts` against a real Redis: one call counts several pools (each given with its
//! capacity per worker, which is what its workers register with), and every number matches what
//! the registry keys say: workers in placement, their capacity and free slots, the pool's agents,
//! and the workers in placement that hold at least one agent.

mod common;

use agentpool_registry::{PoolCounts, Registry};
use agentpool_types::Placement;
use common::Env;

/// The counts of one pool, recomputed from the raw keys.
async fn from_keys(env: &Env, pool: &str) -> PoolCounts {
    let mut counts = PoolCounts {
        pool: pool.to_owned(),
        process_count: 0,
        total_capacity: 0,
        available_capacity: 0,
        agent_count: env.members(&format!("pool:{pool}:agents")).await.len() as u64,
        active_worker_processes: 0,
    };
    for (id, score) in env.zset(&format!("pool:{pool}:processes")).await {
        let max: u64 = env
            .field(&format!("process:{id}"), "max_agents")
            .await
            .unwrap()
            .parse()
            .unwrap();
        counts.process_count += 1;
        counts.total_capacity += max;
        counts.available_capacity += score as u64;
        if !env
            .members(&format!("process:{id}:agents"))
            .await
            .is_empty()
        {
            counts.active_worker_processes += 1;
        }
    }
    counts
}

#[tokio::test]
async fn pool_counts_match_the_registry_for_several_pools() {
    let env = Env::start().await;
    // Pool "a" (10 per worker): a draining worker holding an agent, a worker with three agents
    // and an empty one.
    let draining = env.worker("a", 10).await;
    assert_eq!(env.place("a").await.1, draining);
    env.reg.drain(&draining, false).await.unwrap().unwrap();
    let w1 = env.worker("a", 10).await;
    for _ in 0..3 {
        assert_eq!(env.place("a").await.1, w1);
    }
    env.worker("a", 10).await;
    // Pool "b" (4 per worker): one idle worker. Pool "empty": none at all.
    env.worker("b", 4).await;

    let pools: Vec<(String, u32)> = vec![("a".into(), 10), ("b".into(), 4), ("empty".into(), 3)];
    let got = env.reg.pool_counts(&pools).await.unwrap();

    let mut expected = Vec::new();
    for (p, _) in &pools {
        expected.push(from_keys(&env, p).await);
    }
    assert_eq!(got, expected);
    assert_eq!(
        got,
        vec![
            PoolCounts {
                pool: "a".into(),
                process_count: 2,
                total_capacity: 20,
                available_capacity: 17,
                agent_count: 4,
                active_worker_processes: 1,
            },
            PoolCounts {
                pool: "b".into(),
                process_count: 1,
                total_capacity: 4,
                available_capacity: 4,
                agent_count: 0,
                active_worker_processes: 0,
            },
            PoolCounts {
                pool: "empty".into(),
                process_count: 0,
                total_capacity: 0,
                available_capacity: 0,
                agent_count: 0,
                active_worker_processes: 0,
            },
        ]
    );
}

#[tokio::test]
async fn pool_counts_follow_reserve_and_release() {
    let env = Env::start().await;
    env.worker("dev", 3).await;
    env.worker("dev", 3).await;
    let pools = vec![("dev".to_owned(), 3)];
    let mut agents = Vec::new();
    for used in 1..=6u64 {
        agents.push(env.place("dev").await.0);
        let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
        assert_eq!(c, &from_keys(&env, "dev").await);
        assert_eq!((c.available_capacity, c.agent_count), (6 - used, used));
    }
    for a in &agents {
        env.reg.release(a).await.unwrap().unwrap();
        let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
        assert_eq!(c, &from_keys(&env, "dev").await);
    }
    let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
    assert_eq!((c.available_capacity, c.active_worker_processes), (6, 0));
    assert!(env.reg.pool_counts(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn pool_counts_match_the_registry_with_many_workers_at_every_fill_level() {
    let env = Env::start().await;
    const CAP: u32 = 7;
    for _ in 0..30 {
        env.worker("big", CAP).await;
    }
    let mut agents = Vec::new();
    for i in 0..150 {
        let placement = if i % 3 == 0 {
            Placement::Spread
        } else {
            Placement::Pack
        };
        let (a, p) = env.reserve("big", placement).await;
        p.expect("a free slot");
        agents.push(a);
    }
    // Release every fifth agent so fill levels vary.
    for a in agents.iter().step_by(5) {
        env.reg.release(a).await.unwrap().unwrap();
    }
    let pools = vec![("big".to_owned(), CAP)];
    let got = env.reg.pool_counts(&pools).await.unwrap();
    assert_eq!(got, vec![from_keys(&env, "big").await]);
    assert_eq!(got[0].total_capacity, 30 * u64::from(CAP));
    assert_eq!(got[0].agent_count, 120);
    assert_eq!(got[0].available_capacity, 30 * u64::from(CAP) - 120);
}
