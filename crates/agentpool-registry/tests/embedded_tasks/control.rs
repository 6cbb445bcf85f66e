//! The master's hand on the queue: cancel (queued, running), retry of a failed task, the
//! circuit breaker; and what workers and `/pools` read back: held attempts and the counts.

use super::support::*;
use crate::both;
use crate::common::Env;
use agentpool_registry::{Heartbeat, Holding, Ready};
use agentpool_types::{
    AgentState, CircuitState, CommandKind, TaskCounts, TaskId, TaskOutcome, TaskRules, TaskState,
};

async fn cancel_queued(env: Env) {
    init(&env, rules()).await;
    let mut events = env.reg.events().await.unwrap();
    let w = worker(&env, 1).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    assert_eq!(
        env.reg.cancel_task(t.id()).await.unwrap(),
        Some(TaskState::Cancelled)
    );
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Cancelled, 0));
    assert!(got.finished_at.is_some());
    announced(&mut events, t.id(), TaskState::Cancelled).await;
    assert_eq!(counts(&env).await.queued_tasks, 0);
    // It never runs, and cancelling again changes nothing.
    assert_eq!(w.ready(&env, 0).await, Ready::Idle { epoch: 1 });
    assert_eq!(
        env.reg.cancel_task(t.id()).await.unwrap(),
        Some(TaskState::Cancelled)
    );
    assert_eq!(env.reg.cancel_task(&TaskId::new()).await.unwrap(), None);
}
both!(a_queued_task_is_cancelled_at_once, cancel_queued);

async fn cancel_running(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 1).await;
    let (t, next) = (task(5), task(5));
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    assert_eq!(
        env.reg.cancel_task(t.id()).await.unwrap(),
        Some(TaskState::Running)
    );
    let cmd = w.command().await;
    assert_eq!(cmd.id, format!("{}:cancel", t.id()));
    let CommandKind::CancelTask { task_id, agent_id } = cmd.kind else {
        panic!("expected cancel_task, got {cmd:?}");
    };
    assert_eq!((&task_id, &agent_id), (t.id(), w.agent(0)));
    assert_eq!(
        status(&env, t.id()).await,
        (TaskState::Running, 1),
        "until its worker says"
    );

    // The worker stops it and says so; the agent goes on.
    submit(&env, &[&next]).await;
    let done = w.finish(&env, &run, TaskOutcome::Cancelled).await;
    assert!(done.accepted);
    assert_eq!(done.next.map(|r| r.task_id), Some(next.id().clone()));
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Cancelled, 1));
    let agent = env.reg.agent(w.agent(0)).await.unwrap().unwrap();
    assert_eq!((agent.tasks_done, agent.tasks_failed), (0, 0));
}
both!(a_running_task_is_cancelled_by_its_worker, cancel_running);

async fn cancel_beats_retry(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 1).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    env.reg.cancel_task(t.id()).await.unwrap();
    w.command().await;
    // Stopping made the attempt fail: it is not retried.
    assert!(w.fail(&env, &run).await.accepted);
    assert_eq!(status(&env, t.id()).await, (TaskState::Cancelled, 1));
}
both!(
    a_cancelled_task_that_fails_is_not_retried,
    cancel_beats_retry
);

async fn retry(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 1).await;
    let t = task_max(1);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    w.fail(&env, &run).await;
    assert_eq!(status(&env, t.id()).await, (TaskState::Failed, 1));
    assert_eq!(dead(&env).await, vec![t.id().clone()]);

    // Back in line with its attempts reset, and at once to the idle agent.
    assert_eq!(
        env.reg.retry_task(t.id()).await.unwrap(),
        Some(TaskState::Queued)
    );
    assert!(dead(&env).await.is_empty());
    let run = w.run().await;
    // Its attempts start over; the run's own number does not, so the worker cannot take it
    // for the first run delivered twice, nor a late report of that run for this one.
    assert_eq!((&run.task_id, run.attempt), (t.id(), 2));
    let got = get(&env, t.id()).await;
    assert_eq!(
        (got.status, got.error, got.finished_at, got.attempts),
        (TaskState::Running, None, None, 1)
    );
    // Only a failed task is retried.
    assert_eq!(
        env.reg.retry_task(t.id()).await.unwrap(),
        Some(TaskState::Running)
    );
    assert_eq!(env.reg.retry_task(&TaskId::new()).await.unwrap(), None);
}
both!(a_failed_task_is_retried_on_request, retry);

/// Two failed attempts in a row open the circuit for 100 ms.
fn breaker() -> TaskRules {
    TaskRules {
        circuit_failures: 2,
        circuit_cooldown_ms: 100,
        ..rules()
    }
}

async fn circuit(env: Env) {
    init(&env, breaker()).await;
    let w = worker(&env, 2).await;
    let tasks = [task_max(1), task_max(1), task_max(1), task_max(1)];
    submit(&env, &tasks.iter().collect::<Vec<_>>()).await;
    let run = w.ready_run(&env, 0).await;
    let run = w
        .fail(&env, &run)
        .await
        .next
        .expect("closed after one failure");
    assert!(
        w.fail(&env, &run).await.next.is_none(),
        "open: nothing handed out"
    );
    assert_eq!(w.ready(&env, 1).await, Ready::Idle { epoch: 1 });
    let c = counts(&env).await;
    assert_eq!(
        (c.queued_tasks, c.running_tasks, c.circuit),
        (2, 0, CircuitState::Open)
    );

    // After the cooldown one trial runs; the other task waits though an agent is idle.
    let trial = tasks[2].id();
    tend_until(&env, trial, (TaskState::Running, 1)).await;
    assert_eq!(tend(&env).await.due, 0);
    assert_eq!(status(&env, tasks[3].id()).await, (TaskState::Queued, 0));
    let c = counts(&env).await;
    assert_eq!(
        (c.queued_tasks, c.running_tasks, c.circuit),
        (1, 1, CircuitState::HalfOpen)
    );

    // Its success closes the circuit, and its agent takes the last task in the same call.
    let on = get(&env, trial).await.agent_id.expect("trial's agent");
    let run = current_run(&env, &on).await;
    let next = w.succeed(&env, &run).await.next.expect("the last task");
    assert_eq!(&next.task_id, tasks[3].id());
    assert_eq!(counts(&env).await.circuit, CircuitState::Closed);
}
both!(failures_open_the_circuit_and_a_trial_closes_it, circuit);

async fn holding(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 2).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    w.ready_run(&env, 0).await;
    w.ready(&env, 1).await;
    let Heartbeat::Alive {
        mut assigned,
        holding,
    } = env.cp.heartbeat(&w.pid, 0, 0.0).await.unwrap()
    else {
        panic!("registered worker");
    };
    assigned.sort();
    let mut agents = w.agents.clone();
    agents.sort();
    assert_eq!(assigned, agents);
    let held = Holding {
        agent_id: w.agent(0).clone(),
        task_id: t.id().clone(),
        attempt: 1,
    };
    assert_eq!(holding, vec![held]);
}
both!(the_heartbeat_hands_back_the_attempts_agents_hold, holding);

async fn pool_counts(env: Env) {
    init(
        &env,
        TaskRules {
            retry_backoff_ms: 60_000,
            ..rules()
        },
    )
    .await;
    let w = worker(&env, 3).await;
    w.ready(&env, 0).await;
    w.ready(&env, 1).await;
    let (t1, t2, t3, t4) = (task(9), task(9), task(5), task(5));
    let for_c = targeted(w.agent(2));
    submit(&env, &[&t1, &t2, &t3, &t4, &for_c]).await;
    // A's attempt fails and waits out its backoff; A takes the next one.
    let run = current_run(&env, w.agent(0)).await;
    let next = w.fail(&env, &run).await.next.expect("a takes another");
    assert_eq!(&next.task_id, t3.id());
    let c = counts(&env).await;
    let expected = TaskCounts {
        queued_tasks: 3, // t4 in the pool's queue, C's own task, t1's retry
        running_tasks: 2,
        busy_agents: 2,
        circuit: CircuitState::Closed,
    };
    assert_eq!(c, expected);
    let b = env.reg.agent(w.agent(1)).await.unwrap().unwrap();
    assert_eq!(b.status, AgentState::Busy);
}
both!(pool_counts_show_the_queue, pool_counts);
