//! `reserve` on every backend: the placement rule (`pack` / `spread`, the one `choose` states),
//! a full or empty pool (which change nothing), what the agent record holds, idempotent
//! retries, `move_from` off a draining worker or one still in placement, `must_exist`, and
//! many reserves racing for few slots.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::{RegistryError, Reservation};
use agentpool_types::{AgentState, Candidate, Placement, ProcessId, choose};
use chrono::DateTime;
use common::{Env, agent, agent_with_id, set};
use std::collections::{BTreeMap, BTreeSet};

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
    // Full: still None, and nothing changed.
    let before = env.snapshot(&[pool]).await;
    assert_eq!(env.reserve(pool, placement).await.1, None, "full pool");
    assert_eq!(env.snapshot(&[pool]).await, before);
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
        env.snapshot(&["dev"]).await.is_empty(),
        "a failed reserve wrote"
    );
}
both!(reserve_with_no_worker_returns_none, no_worker);

async fn record_and_retry(env: Env) {
    let w1 = env.worker("dev", 10).await;
    let w2 = env.worker("dev", 10).await;
    let spec = agent("dev");
    let r = Reservation::new(&spec, Placement::Pack);
    let first = env.reg.reserve(r).await.unwrap().unwrap();
    let a = env.reg.agent(&spec.agent_id).await.unwrap().unwrap();
    assert_eq!(a.spec, spec);
    assert_eq!(
        (
            a.spec.pool_name.as_str(),
            a.spec.role_type.as_str(),
            a.spec.name.as_str()
        ),
        ("dev", "echo", "tester")
    );
    assert_eq!(
        (a.process_id.as_ref(), a.restarts, a.epoch),
        (Some(&first), 0, 1)
    );
    assert_eq!(a.spec.metadata["k"], 1);
    assert_eq!(a.status, AgentState::Pending);
    assert_eq!(
        env.reg.agents(&["dev".into()]).await.unwrap(),
        vec![a.clone()]
    );

    // A retry, even asking for another placement, stays put and takes no second slot.
    let other = if first == w1 { &w2 } else { &w1 };
    for placement in [Placement::Pack, Placement::Spread] {
        let retry = Reservation { placement, ..r };
        assert_eq!(env.reg.reserve(retry).await.unwrap(), Some(first.clone()));
    }
    assert_eq!(env.score("dev", &first).await, Some(9));
    assert_eq!(env.score("dev", other).await, Some(10));
    assert_eq!(env.assert_slots("dev", &first, true).await, 1);
    assert_eq!(env.assert_slots("dev", other, true).await, 0);
    let again = env.reg.agent(&spec.agent_id).await.unwrap().unwrap();
    assert_eq!((again.registered_at, again.epoch), (a.registered_at, 1));
    assert_eq!(env.pool_agents("dev").await, set(&[&spec.agent_id]));
}
both!(a_retried_reserve_takes_no_second_slot, record_and_retry);

async fn move_off_draining(env: Env) {
    let old = env.worker("dev", 10).await;
    let (a, placed) = env.place("dev").await;
    assert_eq!(placed, old);
    let before = env.reg.agent(&a).await.unwrap().unwrap();
    let new = env.worker("dev", 10).await;
    assert_eq!(
        env.reg.drain(&old, false).await.unwrap(),
        Some(vec![a.clone()])
    );
    let mv_spec = agent_with_id("dev", &a);
    let mv = Reservation {
        move_from: Some(&old),
        must_exist: true,
        ..Reservation::new(&mv_spec, Placement::Pack)
    };
    assert_eq!(env.reg.reserve(mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.assert_slots("dev", &old, false).await, 0);
    assert_eq!(env.assert_slots("dev", &new, true).await, 1);
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.process_id, agent.epoch, agent.restarts),
        (Some(new.clone()), 2, 0)
    );
    assert_eq!(agent.status, AgentState::Pending);
    assert_eq!(agent.registered_at, before.registered_at);
    DateTime::parse_from_rfc3339(&agent.updated_at).expect("updated_at is RFC 3339");
    assert_eq!(env.pool_agents("dev").await, set(&[&a]));
    // Retrying the move takes no second slot.
    assert_eq!(env.reg.reserve(mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.score("dev", &new).await, Some(9));
    assert_eq!(env.assert_slots("dev", &new, true).await, 1);

    // Once the agent is gone, a move or reschedule must not bring it back.
    env.reg.release(&a).await.unwrap().expect("known");
    let err = env.reg.reserve(mv).await.unwrap_err();
    assert!(matches!(err, RegistryError::AgentGone), "{err:?}");
    assert!(env.reg.agent(&a).await.unwrap().is_none());
    assert_eq!(env.score("dev", &new).await, Some(10));
}
both!(
    reserve_moves_an_agent_off_a_draining_worker,
    move_off_draining
);

async fn move_in_placement(env: Env) {
    let old = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let new = env.worker("dev", 10).await;
    let mv_spec = agent_with_id("dev", &a);
    let mv = Reservation {
        move_from: Some(&old),
        ..Reservation::new(&mv_spec, Placement::Spread)
    };
    assert_eq!(env.reg.reserve(mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.score("dev", &old).await, Some(10));
    assert_eq!(env.score("dev", &new).await, Some(9));
    assert_eq!(env.assert_slots("dev", &old, true).await, 0);
    assert_eq!(env.assert_slots("dev", &new, true).await, 1);
}
both!(
    moving_off_a_worker_still_in_placement_gives_its_slot_back,
    move_in_placement
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
                let r = agent("dev");
                let picked = reg
                    .reserve(Reservation::new(&r, placement))
                    .await
                    .expect("reserve");
                (r.agent_id, picked)
            })
        })
        .collect();
    let mut per_worker: BTreeMap<ProcessId, u32> = BTreeMap::new();
    let mut won = BTreeSet::new();
    for t in futures::future::join_all(tasks).await {
        let (a, picked) = t.expect("task");
        let agent = env.reg.agent(&a).await.unwrap();
        match picked {
            Some(p) => {
                won.insert(a.to_string());
                assert_eq!(agent.and_then(|a| a.process_id).as_ref(), Some(&p));
                *per_worker.entry(p).or_default() += 1;
            }
            None => assert!(agent.is_none(), "a loser left a record"),
        }
    }
    assert_eq!(
        won.len(),
        WORKERS * CAPACITY as usize,
        "successful reserves"
    );
    for w in &workers {
        assert_eq!(per_worker.get(w), Some(&CAPACITY), "agents of {w}");
        assert_eq!(env.assert_slots("dev", w, true).await, CAPACITY);
        assert_eq!(env.score("dev", w).await, Some(0));
    }
    assert_eq!(env.pool_agents("dev").await, won);
}
both!(multi concurrent_reserves_fill_every_slot_exactly_once, race);
