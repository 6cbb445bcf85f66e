//! Handing tasks out: an idle agent takes a submitted task at once (its worker told, the
//! change announced), a ready agent takes what waits, priority then age, targeted tasks.

use super::support::*;
use crate::both;
use crate::common::Env;
use agentpool_registry::Ready;
use agentpool_types::{AgentState, TaskOutcome, TaskState};

async fn submit_to_an_idle_agent(env: Env) {
    init(&env, rules()).await;
    let mut events = env.reg.events().await.unwrap();
    let mut w = worker(&env, 1).await;
    let a = w.agent(0).clone();
    assert_eq!(w.ready(&env, 0).await, Ready::Idle { epoch: 1 });
    assert_eq!(
        env.reg.agent(&a).await.unwrap().unwrap().status,
        AgentState::Idle
    );
    assert_eq!(idle(&env).await, vec![a.clone()]);

    let t = task(5);
    assert_eq!(submit(&env, &[&t]).await, 1);
    assert_eq!(
        submit(&env, &[&t]).await,
        0,
        "a known task is left as it is"
    );
    let run = w.run().await;
    assert_eq!((&run.task_id, &run.agent_id, run.attempt), (t.id(), &a, 1));
    assert_eq!((run.timeout_ms, &run.input), (60_000, &t.spec.input));

    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Running, 1));
    assert_eq!(got.agent_id.as_ref(), Some(&a));
    assert!(got.started_at.is_some() && got.finished_at.is_none());
    assert_eq!(
        (got.spec, got.created_at),
        (t.spec.clone(), t.created_at.clone())
    );
    // The worker reads the same task.
    let seen = env.cp.task(t.id()).await.unwrap().expect("worker sees it");
    assert_eq!(seen.status, TaskState::Running);

    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.current_task.as_ref()),
        (AgentState::Busy, Some(t.id()))
    );
    assert!(idle(&env).await.is_empty());
    let (id, change) = announced(&mut events, t.id(), TaskState::Running).await;
    assert_eq!(id, format!("{}:running:1", t.id()));
    assert_eq!(
        (change.pool_name.as_str(), change.agent_id.as_ref()),
        (POOL, Some(&a))
    );
    let c = counts(&env).await;
    assert_eq!((c.queued_tasks, c.running_tasks, c.busy_agents), (0, 1, 1));
}
both!(
    an_idle_agent_takes_a_submitted_task_at_once,
    submit_to_an_idle_agent
);

async fn ready_takes_what_waits(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    assert_eq!(status(&env, t.id()).await, (TaskState::Queued, 0));
    assert_eq!(counts(&env).await.queued_tasks, 1);
    let Ready::Run { epoch, run } = w.ready(&env, 0).await else {
        panic!("the waiting task was not handed out");
    };
    assert_eq!((epoch, &run.task_id, run.attempt), (1, t.id(), 1));
    assert_eq!(status(&env, t.id()).await, (TaskState::Running, 1));
    // Fenced like a status write: another worker, or a stale epoch.
    let other = env.worker(POOL, 1).await;
    let fenced = env.cp.agent_ready(&other, w.agent(0), None).await.unwrap();
    assert_eq!(fenced, Ready::Fenced);
    let stale = env
        .cp
        .agent_ready(&w.pid, w.agent(0), Some(7))
        .await
        .unwrap();
    assert_eq!(stale, Ready::Fenced);
}
both!(
    a_ready_agent_takes_the_task_that_waits,
    ready_takes_what_waits
);

async fn priority_then_age(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    let tasks = [task(5), task(5), task(9), task(1), task(9), task(5)];
    for t in &tasks {
        submit(&env, &[t]).await;
    }
    let mut order = vec![w.ready_run(&env, 0).await];
    while let Some(next) = w.succeed(&env, order.last().unwrap()).await.next {
        order.push(next);
    }
    let order: Vec<_> = order.iter().map(|r| r.task_id.clone()).collect();
    let expected: Vec<_> = [2, 4, 0, 1, 5, 3]
        .iter()
        .map(|&i| tasks[i].id().clone())
        .collect();
    assert_eq!(
        order, expected,
        "9s first, then 5s, then the 1, each oldest first"
    );
}
both!(tasks_go_by_priority_then_age, priority_then_age);

async fn targeted(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 2).await;
    let (a, b) = (w.agent(0).clone(), w.agent(1).clone());
    let for_b = super::support::targeted(&b);
    let any = task(1);
    submit(&env, &[&for_b, &any]).await;
    let waiting = get(&env, for_b.id()).await;
    assert_eq!(
        waiting.agent_id.as_ref(),
        Some(&b),
        "a waiting task names its target"
    );
    assert_eq!(counts(&env).await.queued_tasks, 2);

    // A takes the lower-priority task of the pool, never B's.
    let run = w.ready_run(&env, 0).await;
    assert_eq!(&run.task_id, any.id());
    assert_eq!(w.succeed(&env, &run).await.next, None);
    assert_eq!(status(&env, for_b.id()).await, (TaskState::Queued, 0));
    let run = w.ready_run(&env, 1).await;
    assert_eq!((&run.task_id, &run.agent_id), (for_b.id(), &b));
    assert_eq!(w.succeed(&env, &run).await.next, None);

    // Submitted while its target is idle: it runs at once, on its target alone.
    let again = super::support::targeted(&b);
    submit(&env, &[&again]).await;
    let run = w.run().await;
    assert_eq!((&run.task_id, &run.agent_id), (again.id(), &b));
    assert_eq!(idle(&env).await, vec![a]);
}
both!(a_targeted_task_waits_for_its_agent, targeted);

async fn large(env: Env) {
    init(&env, rules()).await;
    let mut w = worker(&env, 1).await;
    w.ready(&env, 0).await;
    // As large as the API takes (1 MiB of input), and an output as large.
    let big = serde_json::Value::String("x".repeat(1024 * 1024));
    let mut t = task(5);
    t.spec.input = serde_json::json!({ "blob": big });
    submit(&env, &[&t]).await;
    let run = w.run().await;
    assert_eq!(run.input, t.spec.input);
    let output = TaskOutcome::Succeeded(t.spec.input.clone());
    assert!(w.finish(&env, &run, output).await.accepted);
    assert_eq!(get(&env, t.id()).await.output, Some(t.spec.input.clone()));
}
both!(a_task_as_large_as_the_api_takes_reaches_its_worker, large);
