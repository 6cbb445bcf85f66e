//! An agent that leaves its worker takes its attempt with it: a reap (the worker died or
//! stopped), a release (the agent was terminated) and a move put the task back in line at once,
//! attempts counted; tasks that only a removed agent may run fail.

use super::support::*;
use crate::both;
use crate::common::Env;
use agentpool_registry::{ReapMode, Reservation};
use agentpool_types::{AgentState, Placement, TaskState};

async fn reap(env: Env) {
    init(&env, rules()).await;
    let dying = worker(&env, 2).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    let (a, spare) = (dying.agent(0).clone(), dying.agent(1).clone());
    dying.ready_run(&env, 0).await;
    dying.ready(&env, 1).await;
    assert_eq!(idle(&env).await, vec![spare.clone()]);
    let mut other = worker(&env, 1).await;
    other.ready(&env, 0).await;

    let mut reaped = env.reg.reap(&dying.pid, ReapMode::Orphan).await.unwrap();
    reaped.sort();
    let mut expected = vec![a.clone(), spare.clone()];
    expected.sort();
    assert_eq!(reaped, expected);
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Queued, 1));
    assert_eq!(got.error, Some(format!("its worker {} died", dying.pid)));
    let orphan = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (orphan.status, orphan.current_task),
        (AgentState::Orphaned, None)
    );
    assert_eq!(
        idle(&env).await,
        vec![other.agent(0).clone()],
        "its agents left the idle set"
    );

    // The next round hands it to the surviving worker's idle agent: attempt 2.
    tend(&env).await;
    let run = other.run().await;
    assert_eq!((&run.task_id, run.attempt), (t.id(), 2));
}
both!(a_reap_requeues_the_attempts_of_its_agents, reap);

async fn reap_stopped(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 2).await;
    let (t, for_b) = (task(5), targeted(w.agent(1)));
    submit(&env, &[&t, &for_b]).await;
    w.ready_run(&env, 0).await;
    env.reg.reap(&w.pid, ReapMode::Delete).await.unwrap();
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Queued, 1));
    assert_eq!(got.error, Some(format!("its worker {} was stopped", w.pid)));
    // Its agents are gone for good: what waits for one of them alone can never run.
    let got = get(&env, for_b.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Failed, 0));
    assert_eq!(dead(&env).await, vec![for_b.id().clone()]);
    assert_eq!(counts(&env).await.queued_tasks, 1);
}
both!(
    a_stopped_worker_fails_the_tasks_of_its_agents_alone,
    reap_stopped
);

async fn release(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 3).await;
    let (a, c) = (w.agent(0).clone(), w.agent(2).clone());
    let t = task(5);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    assert_eq!(&run.task_id, t.id());
    w.ready(&env, 1).await;
    let (waiting, backoff) = (targeted(&a), targeted(&c));
    submit(&env, &[&waiting, &backoff]).await;
    // C's own task fails once: it waits out its backoff for C alone.
    let run_c = w.ready_run(&env, 2).await;
    assert!(w.fail(&env, &run_c).await.accepted);

    let gone = env.reg.release(&a).await.unwrap().expect("known agent");
    assert_eq!(gone.current_task.as_ref(), Some(t.id()), "as it was before");
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Queued, 1));
    assert_eq!(got.error.as_deref(), Some("its agent was terminated"));
    let got = get(&env, waiting.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Failed, 0));
    assert_eq!(got.error, Some(format!("its agent {a} was terminated")));

    env.reg.release(&c).await.unwrap().expect("known agent");
    let got = get(&env, backoff.id()).await;
    assert_eq!(
        (got.status, got.attempts),
        (TaskState::Failed, 1),
        "retry for a gone agent"
    );
    let mut dead_ids = dead(&env).await;
    dead_ids.sort();
    let mut expected = vec![waiting.id().clone(), backoff.id().clone()];
    expected.sort();
    assert_eq!(dead_ids, expected);
    assert_eq!(counts(&env).await.queued_tasks, 1);

    tend(&env).await;
    let run = w.run().await;
    assert_eq!(
        (&run.task_id, &run.agent_id, run.attempt),
        (t.id(), w.agent(1), 2)
    );
}
both!(
    a_release_requeues_its_task_and_fails_those_for_it_alone,
    release
);

async fn moved(env: Env) {
    init(&env, rules()).await;
    let old = worker(&env, 1).await;
    let a = old.agent(0).clone();
    let t = task(5);
    submit(&env, &[&t]).await;
    old.ready_run(&env, 0).await;
    let new = env.worker(POOL, 1).await;
    env.reg.drain(&old.pid, false).await.unwrap();

    let spec = crate::common::agent_with_id(POOL, &a);
    let mv = Reservation {
        move_from: Some(&old.pid),
        must_exist: true,
        ..Reservation::new(&spec, Placement::Pack)
    };
    assert_eq!(env.reg.reserve(mv).await.unwrap(), Some(new.clone()));
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Queued, 1));
    assert_eq!(
        got.error,
        Some(format!("its agent moved off worker {}", old.pid))
    );
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.current_task),
        (AgentState::Pending, None)
    );

    // Up on its new worker, it runs the task again.
    let ready = env.cp.agent_ready(&new, &a, Some(2)).await.unwrap();
    let agentpool_registry::Ready::Run { epoch: 2, run } = ready else {
        panic!("expected the task on the new worker, got {ready:?}");
    };
    assert_eq!((&run.task_id, run.attempt), (t.id(), 2));
}
both!(a_move_requeues_the_task_of_the_agent, moved);
