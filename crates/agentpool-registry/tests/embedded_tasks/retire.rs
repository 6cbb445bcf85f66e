//! The autoscaler's scale-down step, `retire_idle`: only idle autoscaled agents go, longest
//! idle first, the pool keeps what it must, and nothing goes while tasks wait.

use super::support::*;
use crate::both;
use crate::common::Env;
use agentpool_registry::{Ready, Retirement};
use agentpool_types::{AgentId, AgentState, TaskRules, TaskState};
use std::time::Duration;

/// A worker with `auto` agents started by the autoscaler, then `manual` spawned by hand;
/// every one came up idle, in that order.
async fn pool_of(env: &Env, auto: u32, manual: u32) -> Worker {
    let pid = env.worker(POOL, manual + auto).await;
    let commands = env.cp.commands(POOL, &pid).await.unwrap();
    let mut agents = Vec::new();
    for i in 0..manual + auto {
        let (a, p) = match i < auto {
            true => env.place_autoscaled(POOL).await,
            false => env.place(POOL).await,
        };
        assert_eq!(p, pid);
        agents.push(a);
    }
    let w = Worker {
        pid,
        agents,
        commands,
    };
    for i in 0..w.agents.len() {
        assert!(matches!(w.ready(env, i).await, Ready::Idle { .. }));
    }
    w
}

async fn retire(env: &Env, keep: u64, idle_for: Duration, most: u64) -> Vec<AgentId> {
    let r = Retirement {
        pool: POOL,
        keep,
        idle_for,
        most,
    };
    env.reg.retire_idle(r).await.unwrap()
}

async fn status_of(env: &Env, a: &AgentId) -> AgentState {
    env.reg.agent(a).await.unwrap().expect("known agent").status
}

async fn only_idle_autoscaled(env: Env) {
    init(&env, rules()).await;
    let w = pool_of(&env, 3, 1).await;
    // One autoscaled agent is busy.
    let t = task(5);
    submit(&env, &[&t]).await;
    assert_eq!(status(&env, t.id()).await, (TaskState::Running, 1));
    let busy = get(&env, t.id()).await.agent_id.expect("its agent");
    assert_eq!(&busy, w.agent(0), "the longest idle agent took it");

    assert!(
        retire(&env, 0, Duration::from_secs(3600), 10)
            .await
            .is_empty(),
        "none idle for an hour"
    );
    let gone = retire(&env, 0, Duration::ZERO, 10).await;
    assert_eq!(gone, [w.agent(1).clone(), w.agent(2).clone()]);
    for a in &gone {
        assert_eq!(status_of(&env, a).await, AgentState::Stopping);
    }
    assert_eq!(
        status_of(&env, w.agent(3)).await,
        AgentState::Idle,
        "spawned by hand"
    );
    assert_eq!(status_of(&env, &busy).await, AgentState::Busy);
    assert_eq!(idle(&env).await, [w.agent(3).clone()]);

    // A retired agent is handed nothing: the next task goes to the one left idle.
    let next = task(5);
    submit(&env, &[&next]).await;
    assert_eq!(
        get(&env, next.id()).await.agent_id.as_ref(),
        Some(w.agent(3))
    );
}
both!(
    only_idle_autoscaled_agents_are_retired,
    only_idle_autoscaled
);

async fn keeps_what_it_must(env: Env) {
    init(&env, rules()).await;
    let w = pool_of(&env, 5, 0).await;
    let gone = retire(&env, 3, Duration::ZERO, 10).await;
    assert_eq!(
        gone,
        [w.agent(0).clone(), w.agent(1).clone()],
        "longest idle first"
    );
    // Those already stopping do not count as kept.
    assert!(retire(&env, 3, Duration::ZERO, 10).await.is_empty());
    let gone = retire(&env, 0, Duration::ZERO, 1).await;
    assert_eq!(gone, [w.agent(2).clone()], "at most `most` a step");
}
both!(the_pool_keeps_what_it_must, keeps_what_it_must);

/// One failed attempt opens the circuit for an hour: queued tasks then wait with agents idle.
fn breaker() -> TaskRules {
    TaskRules {
        circuit_failures: 1,
        circuit_cooldown_ms: 3_600_000,
        ..rules()
    }
}

async fn none_while_tasks_wait(env: Env) {
    init(&env, breaker()).await;
    let w = pool_of(&env, 2, 0).await;
    let (first, second) = (task_max(1), task_max(1));
    submit(&env, &[&first]).await;
    let run = current_run(&env, w.agent(0)).await;
    assert!(w.fail(&env, &run).await.next.is_none());
    submit(&env, &[&second]).await;
    assert_eq!(status(&env, second.id()).await, (TaskState::Queued, 0));
    assert!(
        retire(&env, 0, Duration::ZERO, 10).await.is_empty(),
        "a waiting task is for the idle agents"
    );
    assert_eq!(idle(&env).await.len(), 2);
}
both!(no_agent_is_retired_while_tasks_wait, none_while_tasks_wait);
