//! `reserve` on every backend: the placement rule (`pack` / `spread`, the one `choose` states),
//! a full pool, what the agent record holds, idempotent retries, `move_from`, `must_exist`,
//! and many reserves racing for few slots.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::{RegistryError, Reservation};
use agentpool_types::{Candidate, Placement, ProcessId, choose};
use common::{Env, reservation, set};
use std::collections::BTreeMap;

async fn candidates(env: &Env, pool: &str, workers: &[ProcessId]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for w in workers {
        if let Some(free) = env.score(pool, w).await {
            let free = u32::try_from(free).unwrap_or(0);
            out.push(Candidate {
                process_id: w.clone(),
                free,
            });
        }
    }
    out
}

async fn fill(env: Env, placement: Placement, first: usize) {
    let pool = placement.as_str();
    let workers = [
        env.worker(pool, 3).await,
        env.worker(pool, 5).await,
        env.worker(pool, 8).await,
    ];
    let mut placed = 0;
    loop {
        let expected = choose(&candidates(&env, pool, &workers).await, placement).cloned();
        if placed == 0 {
            assert_eq!(expected.as_ref(), Some(&workers[first]), "first pick");
        }
        let (_, got) = env.reserve(pool, placement).await;
        assert_eq!(got, expected, "pick #{placed}");
        for w in &workers {
            env.assert_slots(pool, w, true).await;
        }
        if got.is_none() {
            break;
        }
        placed += 1;
    }
    assert_eq!(placed, 16, "every slot and no more");
    assert_eq!(env.pool_agents(pool).await.len(), 16);
    assert_eq!(env.reserve(pool, placement).await.1, None, "full pool");
}

async fn pack(env: Env) {
    fill(env, Placement::Pack, 0).await;
}
async fn spread(env: Env) {
    fill(env, Placement::Spread, 2).await;
}
both!(pack_takes_the_fullest_worker_with_a_free_slot, pack);
both!(spread_takes_the_emptiest_worker, spread);

async fn no_worker(env: Env) {
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
    assert_eq!(env.reserve("dev", Placement::Spread).await.1, None);
    assert!(
        env.pool_agents("dev").await.is_empty(),
        "a failed reserve wrote"
    );
}
both!(reserve_with_no_worker_returns_none, no_worker);

async fn record_and_retry(env: Env) {
    let w1 = env.worker("dev", 10).await;
    let w2 = env.worker("dev", 10).await;
    let r = reservation("dev", Placement::Pack);
    let first = env.reg.reserve(&r).await.unwrap().unwrap();
    let a = env.reg.agent(&r.agent_id).await.unwrap().unwrap();
    assert_eq!(
        (a.pool_name.as_str(), a.role_type.as_str(), a.name.as_str()),
        ("dev", "echo", "tester")
    );
    assert_eq!(
        (a.process_id.as_ref(), a.restarts, a.epoch),
        (Some(&first), 0, 1)
    );
    assert_eq!(a.metadata["k"], 1);
    assert_eq!(a.status, agentpool_types::AgentState::Pending);

    // A retry, even asking for another placement, stays put and takes no second slot.
    let other = if first == w1 { &w2 } else { &w1 };
    for placement in [Placement::Pack, Placement::Spread] {
        let retry = Reservation {
            placement,
            ..r.clone()
        };
        assert_eq!(env.reg.reserve(&retry).await.unwrap(), Some(first.clone()));
    }
    assert_eq!(env.score("dev", &first).await, Some(9));
    assert_eq!(env.score("dev", other).await, Some(10));
    let again = env.reg.agent(&r.agent_id).await.unwrap().unwrap();
    assert_eq!((again.registered_at, again.epoch), (a.registered_at, 1));
    assert_eq!(env.pool_agents("dev").await, set(&[&r.agent_id]));
}
both!(a_retried_reserve_takes_no_second_slot, record_and_retry);

async fn move_off_draining(env: Env) {
    let old = env.worker("dev", 10).await;
    let (a, placed) = env.place("dev").await;
    assert_eq!(placed, old);
    let new = env.worker("dev", 10).await;
    assert_eq!(
        env.reg.drain(&old, false).await.unwrap(),
        Some(vec![a.clone()])
    );
    let mv = Reservation {
        agent_id: a.clone(),
        move_from: Some(old.clone()),
        must_exist: true,
        ..reservation("dev", Placement::Pack)
    };
    assert_eq!(env.reg.reserve(&mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.assert_slots("dev", &old, false).await, 0);
    assert_eq!(env.assert_slots("dev", &new, true).await, 1);
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.process_id, agent.epoch, agent.restarts),
        (Some(new.clone()), 2, 0)
    );
    // Retrying the move takes no second slot.
    assert_eq!(env.reg.reserve(&mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.score("dev", &new).await, Some(9));

    // Once the agent is gone, a move or reschedule must not bring it back.
    env.reg.release(&a).await.unwrap().expect("known");
    let err = env.reg.reserve(&mv).await.unwrap_err();
    assert!(matches!(err, RegistryError::AgentGone), "{err:?}");
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert_eq!(env.score("dev", &new).await, Some(10));
}
both!(
    reserve_moves_an_agent_off_a_draining_worker,
    move_off_draining
);

const WORKERS: usize = 3;
const CAPACITY: u32 = 10;
const ATTEMPTS: usize = 200;

async fn race(env: Env) {
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(env.worker("dev", CAPACITY).await);
    }
    let tasks: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let reg = env.reg.clone();
            let placement = [Placement::Pack, Placement::Spread][i % 2];
            tokio::spawn(async move {
                let r = reservation("dev", placement);
                let picked = reg.reserve(&r).await.expect("reserve");
                (r.agent_id, picked)
            })
        })
        .collect();
    let mut per_worker: BTreeMap<ProcessId, u32> = BTreeMap::new();
    let mut won = 0;
    for t in futures::future::join_all(tasks).await {
        let (a, picked) = t.expect("task");
        let agent = env.reg.agent(&a).await.unwrap();
        match picked {
            Some(p) => {
                won += 1;
                assert_eq!(agent.and_then(|a| a.process_id).as_ref(), Some(&p));
                *per_worker.entry(p).or_default() += 1;
            }
            None => assert!(agent.is_none(), "a loser left a record"),
        }
    }
    assert_eq!(won, WORKERS * CAPACITY as usize, "successful reserves");
    for w in &workers {
        assert_eq!(per_worker.get(w), Some(&CAPACITY), "agents of {w}");
        assert_eq!(env.assert_slots("dev", w, true).await, CAPACITY);
        assert_eq!(env.score("dev", w).await, Some(0));
    }
    assert_eq!(env.pool_agents("dev").await.len(), won);
}
both!(multi concurrent_reserves_fill_every_slot_exactly_once, race);
