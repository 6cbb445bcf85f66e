//! `reserve` under contention against a real Redis: many reservations racing over several
//! connections never overbook a worker, never lose a slot and never place an agent twice, as
//! the keys show. The same race over one handle runs on every backend in
//! `embedded_placement.rs`.

mod common;

use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{Registry, Reservation};
use agentpool_types::{Placement, ProcessId};
use common::{Env, agent};
use std::collections::{BTreeMap, BTreeSet};

const WORKERS: usize = 3;
const CAPACITY: u32 = 10;
const ATTEMPTS: usize = 200;
const CONNECTIONS: usize = 4;

/// Redis-only: the scripts' atomicity across separate connections, read back from the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reserves_over_many_connections_fill_every_slot_exactly_once() {
    let env = Env::start().await;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(env.worker("dev", CAPACITY).await);
    }
    let mut regs = Vec::new();
    for _ in 0..CONNECTIONS {
        regs.push(RedisRegistry::connect(&env.redis.url(), "").await.unwrap());
    }

    let tasks: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let reg = regs[i % CONNECTIONS].clone();
            let placement = if i % 2 == 0 {
                Placement::Pack
            } else {
                Placement::Spread
            };
            tokio::spawn(async move {
                let r = agent("dev");
                let picked = reg
                    .reserve(Reservation::new(&r, placement))
                    .await
                    .expect("reserve");
                (r.agent_id, picked)
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.expect("task"))
        .collect();

    let placed: Vec<_> = results
        .iter()
        .filter_map(|(a, p)| p.as_ref().map(|p| (a.to_string(), p.clone())))
        .collect();
    assert_eq!(
        placed.len(),
        WORKERS * CAPACITY as usize,
        "successful reserves"
    );

    // Every agent is in exactly one worker's set: the one its reserve returned.
    let mut owner: BTreeMap<String, ProcessId> = BTreeMap::new();
    for w in &workers {
        let members = env.members(&format!("process:{w}:agents")).await;
        assert_eq!(members.len(), CAPACITY as usize, "agents of {w}");
        for a in members {
            assert!(owner.insert(a.clone(), w.clone()).is_none(), "{a} twice");
        }
        assert_eq!(env.score("dev", w).await, Some(0), "score of {w}");
        env.assert_slots("dev", w, true).await;
    }
    for (a, p) in &placed {
        assert_eq!(owner.get(a), Some(p), "set membership of {a}");
        let h = env.hash(&format!("agent:{a}")).await;
        assert_eq!(&h["process_id"], p.as_str());
    }

    let pool_agents = env.members("pool:dev:agents").await;
    let placed_ids: BTreeSet<String> = placed.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(pool_agents, placed_ids);

    // The losers left nothing behind.
    for (a, p) in &results {
        if p.is_none() {
            assert!(!env.exists(&format!("agent:{a}")).await, "{a} has a hash");
        }
    }
}
