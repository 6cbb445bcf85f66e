//! `reserve` against a real Redis: the placement rule (`pack` / `spread`), what the agent hash
//! holds, idempotent retries, and moving an agent off a draining worker in one step.

mod common;

use agentpool_registry::{Registry, Reservation};
use agentpool_types::{Agent, Candidate, Placement, ProcessId, choose};
use common::{Env, assert_near, parse_time, reservation, set};

/// The placement zset as `choose` candidates.
async fn candidates(env: &Env, pool: &str) -> Vec<Candidate> {
    env.zset(&format!("pool:{pool}:processes"))
        .await
        .into_iter()
        .map(|(id, score)| Candidate {
            process_id: ProcessId::parse(&id).unwrap(),
            free: score as u32,
        })
        .collect()
}

async fn fill_and_check(placement: Placement, first: usize) {
    let env = Env::start().await;
    let pool = placement.as_str();
    let workers = [
        env.worker(pool, 3).await,
        env.worker(pool, 5).await,
        env.worker(pool, 8).await,
    ];
    let mut placed = 0;
    loop {
        let expected = choose(&candidates(&env, pool).await, placement).cloned();
        if placed == 0 {
            assert_eq!(
                expected.as_ref(),
                Some(&workers[first]),
                "{pool} first pick"
            );
        }
        let (_, got) = env.reserve(pool, placement).await;
        assert_eq!(got, expected, "{pool} pick #{placed}");
        for w in &workers {
            env.assert_slots(pool, w, true).await;
        }
        if got.is_none() {
            break;
        }
        placed += 1;
    }
    assert_eq!(placed, 16, "every slot and no more");
    let agents = env.members(&format!("pool:{pool}:agents")).await;
    assert_eq!(agents.len(), 16);
    // Full: still None, and nothing changed.
    let before = env.snapshot().await;
    assert_eq!(env.reserve(pool, placement).await.1, None);
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn pack_takes_the_fullest_worker_with_a_free_slot() {
    fill_and_check(Placement::Pack, 0).await;
}

#[tokio::test]
async fn spread_takes_the_emptiest_worker() {
    fill_and_check(Placement::Spread, 2).await;
}

#[tokio::test]
async fn reserve_with_no_worker_returns_none() {
    let env = Env::start().await;
    assert_eq!(env.reserve("dev", Placement::Pack).await.1, None);
    assert_eq!(env.reserve("dev", Placement::Spread).await.1, None);
    assert!(
        env.snapshot().await.is_empty(),
        "a failed reserve wrote keys"
    );
}

#[tokio::test]
async fn reserve_writes_the_agent_hash() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    let r = reservation("dev", Placement::Pack);
    assert_eq!(env.reg.reserve(&r).await.unwrap(), Some(w.clone()));
    let now = env.redis_ms().await;

    let h = env.hash(&format!("agent:{}", r.agent_id)).await;
    assert_eq!(h["agent_id"], r.agent_id.as_str());
    assert_eq!(h["pool_name"], "dev");
    assert_eq!(h["role_type"], "echo");
    assert_eq!(h["name"], "tester");
    assert_eq!(h["process_id"], w.as_str());
    assert_eq!(h["status"], "pending");
    assert_eq!(h["restarts"], "0");
    assert_eq!(h["metadata"], r#"{"k":1}"#);
    assert_near(&h["registered_at"], now);
    assert_near(&h["updated_at"], now);

    let a: Agent = env.reg.agent(&r.agent_id).await.unwrap().unwrap();
    assert_eq!(a.process_id, Some(w.clone()));
    assert_eq!(a.metadata["k"], 1);
    assert_eq!(env.reg.agents(&["dev".into()]).await.unwrap(), vec![a]);
    assert_eq!(
        env.members(&format!("process:{w}:agents")).await,
        set(&[&r.agent_id])
    );
    assert_eq!(env.members("pool:dev:agents").await, set(&[&r.agent_id]));
    env.assert_slots("dev", &w, true).await;
}

#[tokio::test]
async fn a_retried_reserve_returns_the_same_worker_and_takes_no_second_slot() {
    let env = Env::start().await;
    let w1 = env.worker("dev", 10).await;
    let w2 = env.worker("dev", 10).await;
    let r = reservation("dev", Placement::Pack);
    let first = env.reg.reserve(&r).await.unwrap().unwrap();
    let registered_at = env
        .field(&format!("agent:{}", r.agent_id), "registered_at")
        .await;

    // The retry may even ask for another placement: the agent stays where it is.
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
    assert_eq!(
        env.members(&format!("process:{other}:agents")).await.len(),
        0
    );
    assert_eq!(env.members("pool:dev:agents").await, set(&[&r.agent_id]));
    env.assert_slots("dev", &w1, true).await;
    env.assert_slots("dev", &w2, true).await;
    let again = env
        .field(&format!("agent:{}", r.agent_id), "registered_at")
        .await;
    assert_eq!(again, registered_at);
}

#[tokio::test]
async fn reserve_moves_an_agent_off_a_draining_worker() {
    let env = Env::start().await;
    let old = env.worker("dev", 10).await;
    let (a, placed) = env.place("dev").await;
    assert_eq!(placed, old);
    let akey = format!("agent:{a}");
    let registered_at = env.field(&akey, "registered_at").await.unwrap();
    let new = env.worker("dev", 10).await;
    assert_eq!(
        env.reg.drain(&old, false).await.unwrap(),
        Some(vec![a.clone()])
    );

    let mv = Reservation {
        agent_id: a.clone(),
        move_from: Some(old.clone()),
        must_exist: false,
        restart: None,
        ..reservation("dev", Placement::Pack)
    };
    assert_eq!(env.reg.reserve(&mv).await.unwrap(), Some(new.clone()));

    assert!(
        env.members(&format!("process:{old}:agents"))
            .await
            .is_empty()
    );
    assert_eq!(
        env.members(&format!("process:{new}:agents")).await,
        set(&[&a])
    );
    assert_eq!(env.field(&akey, "process_id").await.unwrap(), new.as_str());
    assert_eq!(env.field(&akey, "status").await.unwrap(), "pending");
    assert_eq!(env.field(&akey, "restarts").await.unwrap(), "0");
    assert_eq!(
        env.field(&akey, "registered_at").await.unwrap(),
        registered_at
    );
    env.assert_slots("dev", &old, false).await;
    env.assert_slots("dev", &new, true).await;
    assert_eq!(env.score("dev", &new).await, Some(9));
    assert_eq!(env.members("pool:dev:agents").await, set(&[&a]));
    parse_time(&env.field(&akey, "updated_at").await.unwrap());

    // Retrying the move takes no second slot.
    assert_eq!(env.reg.reserve(&mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.score("dev", &new).await, Some(9));
    env.assert_slots("dev", &new, true).await;
}

#[tokio::test]
async fn moving_off_a_worker_still_in_placement_gives_its_slot_back() {
    let env = Env::start().await;
    let old = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let new = env.worker("dev", 10).await;
    let mv = Reservation {
        agent_id: a.clone(),
        move_from: Some(old.clone()),
        must_exist: false,
        restart: None,
        ..reservation("dev", Placement::Spread)
    };
    assert_eq!(env.reg.reserve(&mv).await.unwrap(), Some(new.clone()));
    assert_eq!(env.score("dev", &old).await, Some(10));
    assert_eq!(env.score("dev", &new).await, Some(9));
    env.assert_slots("dev", &old, true).await;
    env.assert_slots("dev", &new, true).await;
}
