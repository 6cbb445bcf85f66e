//! The master's bookkeeping reads on every backend: `init_pools`, `pool_counts` (for several
//! pools, as reserves and releases move slots, and over many workers at every fill level, each
//! time equal to what the registry lists worker by worker), `empty_workers`, listings, `stale`
//! and `try_lock`.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_testkit::{wait_for, wait_until};
use agentpool_types::{Placement, PoolCounts, TaskRules};
use common::{Env, WAIT};
use std::time::Duration;

/// Pools as `init_pools` takes them; the task rules do not matter here.
fn pools(names: &[&str]) -> Vec<(String, TaskRules)> {
    let rules = TaskRules {
        default_timeout_ms: 1_000,
        lease_grace_ms: 1_000,
        retry_backoff_ms: 1_000,
        retry_backoff_max_ms: 1_000,
        circuit_failures: 0,
        circuit_cooldown_ms: 1_000,
        final_ttl_ms: 1_000,
    };
    names.iter().map(|n| ((*n).to_owned(), rules)).collect()
}

/// The counts of one pool, added up from what the registry lists: its workers in placement,
/// their capacity and free slots, the pool's agents, the workers in placement holding one.
async fn tally(env: &Env, pool: &str) -> PoolCounts {
    let mut counts = PoolCounts {
        pool: pool.to_owned(),
        process_count: 0,
        total_capacity: 0,
        available_capacity: 0,
        agent_count: env.pool_agents(pool).await.len() as u64,
        active_worker_processes: 0,
        tasks: Default::default(),
    };
    for w in env.reg.processes().await.unwrap() {
        let Some(free) = env.score(pool, &w.process_id).await else {
            continue;
        };
        let held = env.assert_slots(pool, &w.process_id, true).await;
        counts.process_count += 1;
        counts.total_capacity += u64::from(w.max_agents);
        counts.available_capacity += u64::try_from(free).expect("free slots");
        if held > 0 {
            counts.active_worker_processes += 1;
        }
    }
    counts
}

async fn counts(env: Env) {
    assert_eq!(env.reg.init_pools(&pools(&["a", "b"])).await.unwrap(), 2);
    assert_eq!(env.reg.init_pools(&pools(&["a", "c"])).await.unwrap(), 1);
    // Pool "a": a draining worker holding an agent, one with three agents, an empty one.
    let draining = env.worker("a", 10).await;
    assert_eq!(env.place("a").await.1, draining);
    env.reg.drain(&draining, false).await.unwrap().unwrap();
    let w1 = env.worker("a", 10).await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        let (a, p) = env.place("a").await;
        assert_eq!(p, w1);
        agents.push(a);
    }
    let idle_a = env.worker("a", 10).await;
    let idle_b = env.worker("b", 4).await;
    let pools: Vec<(String, u32)> = vec![("a".into(), 10), ("b".into(), 4), ("empty".into(), 3)];
    // Only workers in placement with every slot free: not the draining one, not w1.
    assert_eq!(
        env.reg.empty_workers(&pools).await.unwrap(),
        vec![
            ("a".to_owned(), idle_a.clone()),
            ("b".to_owned(), idle_b.clone())
        ]
    );
    let row = |pool: &str, n, total, free, agents, active| PoolCounts {
        pool: pool.into(),
        process_count: n,
        total_capacity: total,
        available_capacity: free,
        agent_count: agents,
        active_worker_processes: active,
        tasks: Default::default(),
    };
    let got = env.reg.pool_counts(&pools).await.unwrap();
    assert_eq!(
        got,
        vec![
            row("a", 2, 20, 17, 4, 1),
            row("b", 1, 4, 4, 0, 0),
            row("empty", 0, 0, 0, 0, 0)
        ]
    );
    for (counts, (pool, _)) in got.iter().zip(&pools) {
        assert_eq!(counts, &tally(&env, pool).await);
    }
    for a in &agents {
        env.reg.release(a).await.unwrap().unwrap();
    }
    let got = env.reg.pool_counts(&pools[..1]).await.unwrap();
    assert_eq!(got, vec![row("a", 2, 20, 20, 1, 0)]);
    assert!(env.reg.pool_counts(&[]).await.unwrap().is_empty());

    let procs = env.reg.processes().await.unwrap();
    assert_eq!(procs.len(), 4);
    assert!(procs.windows(2).all(|w| w[0].process_id < w[1].process_id));
    assert_eq!(
        env.reg
            .agents(&["a".into(), "b".into()])
            .await
            .unwrap()
            .len(),
        1
    );
}
both!(pool_counts_add_up_the_registry, counts);

async fn follow(env: Env) {
    env.worker("dev", 3).await;
    env.worker("dev", 3).await;
    let pools = vec![("dev".to_owned(), 3)];
    let mut agents = Vec::new();
    for used in 1..=6u64 {
        agents.push(env.place("dev").await.0);
        let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
        assert_eq!(c, &tally(&env, "dev").await);
        assert_eq!((c.available_capacity, c.agent_count), (6 - used, used));
    }
    for a in &agents {
        env.reg.release(a).await.unwrap().unwrap();
        let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
        assert_eq!(c, &tally(&env, "dev").await);
    }
    let c = &env.reg.pool_counts(&pools).await.unwrap()[0];
    assert_eq!((c.available_capacity, c.active_worker_processes), (6, 0));
}
both!(pool_counts_follow_reserve_and_release, follow);

async fn many(env: Env) {
    const CAP: u32 = 7;
    for _ in 0..30 {
        env.worker("big", CAP).await;
    }
    let mut agents = Vec::new();
    for i in 0..150 {
        let placement = [Placement::Spread, Placement::Pack, Placement::Pack][i % 3];
        let (a, p) = env.reserve("big", placement).await;
        p.expect("a free slot");
        agents.push(a);
    }
    // Release every fifth agent so fill levels vary.
    for a in agents.iter().step_by(5) {
        env.reg.release(a).await.unwrap().unwrap();
    }
    let got = env
        .reg
        .pool_counts(&[("big".to_owned(), CAP)])
        .await
        .unwrap();
    assert_eq!(got, vec![tally(&env, "big").await]);
    assert_eq!(got[0].total_capacity, 30 * u64::from(CAP));
    assert_eq!(got[0].agent_count, 120);
    assert_eq!(got[0].available_capacity, 30 * u64::from(CAP) - 120);
}
both!(
    pool_counts_match_the_registry_with_many_workers_at_every_fill_level,
    many
);

async fn stale(env: Env) {
    let p = env.worker("dev", 10).await;
    let q = env.worker("dev", 10).await;
    let fresh = env.reg.stale(Duration::from_secs(60)).await.unwrap();
    assert_eq!((fresh.total, fresh.stale), (2, vec![]));
    let timeout = Duration::from_millis(50);
    wait_until("both workers stale", WAIT, || async {
        env.reg.stale(timeout).await.unwrap().stale.len() == 2
    })
    .await;
    env.cp.heartbeat(&p, 0, 0.0).await.unwrap();
    let s = env.reg.stale(Duration::from_secs(30)).await.unwrap();
    assert!(s.stale.is_empty(), "{s:?}");
    // Oldest first: q, whose last heartbeat is older, leads whether or not p is stale yet.
    let s = wait_for("q stale again", WAIT, || async {
        let s = env.reg.stale(timeout).await.unwrap();
        s.stale.contains(&q).then_some(s)
    })
    .await;
    assert_eq!((s.total, s.stale.first()), (2, Some(&q)));
}
both!(stale_lists_workers_without_a_recent_heartbeat, stale);

async fn locks(env: Env) {
    let long = Duration::from_secs(60);
    assert!(env.reg.try_lock("reaper", "m1", long).await.unwrap());
    assert!(!env.reg.try_lock("reaper", "m2", long).await.unwrap());
    assert!(
        env.reg.try_lock("reaper", "m1", long).await.unwrap(),
        "renewal"
    );
    assert!(env.reg.try_lock("other", "m2", long).await.unwrap());
    // A short lease lapses, and then another holder takes it.
    assert!(
        env.reg
            .try_lock("short", "m1", Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert!(!env.reg.try_lock("short", "m2", long).await.unwrap());
    wait_until("the lease to lapse", WAIT, || async {
        env.reg.try_lock("short", "m2", long).await.unwrap()
    })
    .await;
    assert!(!env.reg.try_lock("short", "m1", long).await.unwrap());
    assert!(env.reg.ping().await.unwrap() < Duration::from_secs(2));
}
both!(try_lock_takes_renews_and_expires, locks);
