//! How attempts end: success (the agent's next task in the same call), failure retried after
//! a backoff until the attempts are spent, a broken agent, stale reports, expired leases.

use super::support::*;
use crate::both;
use crate::common::{Env, WAIT};
use agentpool_registry::{Heartbeat, Holding, Ready};
use agentpool_testkit::wait_for;
use agentpool_types::{AgentState, TaskOutcome, TaskRules, TaskState};

async fn success(env: Env) {
    init(&env, rules()).await;
    let mut events = env.reg.events().await.unwrap();
    let w = worker(&env, 1).await;
    let a = w.agent(0).clone();
    let (first, second) = (task(5), task(5));
    submit(&env, &[&first, &second]).await;
    let run = w.ready_run(&env, 0).await;
    assert_eq!(&run.task_id, first.id());

    // The report is taken and the agent's next task comes back in the same call.
    let done = w.succeed(&env, &run).await;
    assert!(done.accepted);
    let next = done.next.expect("the second task, at once");
    assert_eq!((&next.task_id, next.attempt), (second.id(), 1));
    let t = get(&env, first.id()).await;
    assert_eq!(t.status, TaskState::Succeeded);
    assert_eq!(
        t.output,
        Some(serde_json::json!({"done": first.id().to_string()}))
    );
    assert!(t.error.is_none() && t.finished_at.is_some());
    let (_, change) = announced(&mut events, first.id(), TaskState::Succeeded).await;
    assert_eq!(change.output, t.output);

    // Nothing else waits: the agent is idle.
    let done = w.succeed(&env, &next).await;
    assert!(done.accepted && done.next.is_none());
    let agent = env.reg.agent(&a).await.unwrap().unwrap();
    assert_eq!(
        (agent.status, agent.tasks_done, agent.tasks_failed),
        (AgentState::Idle, 2, 0)
    );
    assert_eq!(agent.current_task, None);
    assert_eq!(idle(&env).await, vec![a]);
    let c = counts(&env).await;
    assert_eq!((c.queued_tasks, c.running_tasks, c.busy_agents), (0, 0, 0));
}
both!(a_success_ends_the_task_and_hands_the_next, success);

async fn failure(env: Env) {
    init(&env, rules()).await;
    let mut events = env.reg.events().await.unwrap();
    let mut w = worker(&env, 1).await;
    let t = task_max(2);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;

    // The first failure schedules a retry after the backoff; the agent goes idle meanwhile.
    let done = w.fail(&env, &run).await;
    assert!(done.accepted && done.next.is_none());
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Queued, 1));
    assert_eq!(got.error.as_deref(), Some("boom"));
    assert_eq!(counts(&env).await.queued_tasks, 1);
    announced(&mut events, t.id(), TaskState::Queued).await;
    let agent = env.reg.agent(w.agent(0)).await.unwrap().unwrap();
    assert_eq!((agent.status, agent.tasks_failed), (AgentState::Idle, 1));

    // Once the backoff is over the idle agent gets it again, its worker told.
    tend_until(&env, t.id(), (TaskState::Running, 2)).await;
    let run = w.run().await;
    assert_eq!((&run.task_id, run.attempt), (t.id(), 2));

    // The last attempt fails: failed for good, in the dead set.
    assert!(w.fail(&env, &run).await.accepted);
    let got = get(&env, t.id()).await;
    assert_eq!((got.status, got.attempts), (TaskState::Failed, 2));
    assert!(got.finished_at.is_some());
    assert_eq!(dead(&env).await, vec![t.id().clone()]);
    announced(&mut events, t.id(), TaskState::Failed).await;
    let c = counts(&env).await;
    assert_eq!((c.queued_tasks, c.running_tasks), (0, 0));
}
both!(
    a_failure_is_retried_after_backoff_until_attempts_run_out,
    failure
);

async fn broken_agent(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    let (t, other) = (task(5), task(5));
    submit(&env, &[&t, &other]).await;
    let run = w.ready_run(&env, 0).await;
    // The agent restarts before it takes anything else.
    let done = w
        .finish(&env, &run, TaskOutcome::AgentFailed("child died".into()))
        .await;
    assert!(done.accepted && done.next.is_none());
    let agent = env.reg.agent(w.agent(0)).await.unwrap().unwrap();
    assert_eq!((agent.current_task, agent.tasks_failed), (None, 1));
    assert_eq!(status(&env, t.id()).await, (TaskState::Queued, 1));
    let run = w.ready_run(&env, 0).await;
    assert_eq!(&run.task_id, other.id(), "back up, it takes what waits");
}
both!(a_broken_agent_restarts_before_its_next_task, broken_agent);

async fn stale(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    let mut wrong = run.clone();
    wrong.attempt = 2;
    let done = w.succeed(&env, &wrong).await;
    assert!(!done.accepted && done.next.is_none());
    let mut other = run.clone();
    other.agent_id = agentpool_types::AgentId::new();
    assert!(!w.fail(&env, &other).await.accepted);
    assert_eq!(status(&env, t.id()).await, (TaskState::Running, 1));
    assert!(w.succeed(&env, &run).await.accepted);
    assert!(!w.succeed(&env, &run).await.accepted, "one result only");
    assert_eq!(status(&env, t.id()).await, (TaskState::Succeeded, 1));
}
both!(a_report_for_another_attempt_is_dropped, stale);

/// Leases that run out a moment after they start.
fn short_leases() -> TaskRules {
    TaskRules {
        default_timeout_ms: 50,
        lease_grace_ms: 50,
        ..rules()
    }
}

async fn lease(env: Env) {
    init(&env, short_leases()).await;
    let w = worker(&env, 1).await;
    let a = w.agent(0).clone();
    let t = task(5);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    assert_eq!(run.timeout_ms, 50);
    let holding = |attempt| Holding {
        agent_id: a.clone(),
        task_id: t.id().clone(),
        attempt,
    };
    let beat = env.cp.heartbeat(&w.pid, 0, 0.0).await.unwrap();
    assert_eq!(beat, alive(&a, vec![holding(1)]));

    // The worker never reports: the lease runs out and the task is back in line at once.
    tend_until(&env, t.id(), (TaskState::Queued, 1)).await;
    let got = get(&env, t.id()).await;
    assert!(got.error.unwrap().starts_with("lease expired"));
    assert_eq!(
        env.cp.heartbeat(&w.pid, 0, 0.0).await.unwrap(),
        alive(&a, vec![])
    );

    // Its late report is dropped, and the agent goes on with the retry.
    let done = w.succeed(&env, &run).await;
    assert!(!done.accepted);
    let next = done.next.expect("the retried attempt");
    assert_eq!((&next.task_id, next.attempt), (t.id(), 2));
    let beat = env.cp.heartbeat(&w.pid, 0, 0.0).await.unwrap();
    assert_eq!(beat, alive(&a, vec![holding(2)]));
}
both!(an_expired_lease_retries_the_task, lease);

fn alive(a: &agentpool_types::AgentId, holding: Vec<Holding>) -> Heartbeat {
    Heartbeat::Alive {
        assigned: vec![a.clone()],
        holding,
    }
}

async fn ready_again(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    assert_eq!(w.ready(&env, 0).await, Ready::Idle { epoch: 1 });
    assert_eq!(w.ready(&env, 0).await, Ready::Idle { epoch: 1 });
    assert_eq!(idle(&env).await.len(), 1, "idle once");
}
both!(ready_twice_is_idle_once, ready_again);

async fn expiry(env: Env) {
    let brief = TaskRules {
        final_ttl_ms: 100,
        ..rules()
    };
    init(&env, brief).await;
    let w = worker(&env, 1).await;
    let (done, kept) = (task(5), task(5));
    submit(&env, &[&done, &kept]).await;
    let run = w.ready_run(&env, 0).await;
    w.succeed(&env, &run).await;
    assert_eq!(status(&env, done.id()).await, (TaskState::Succeeded, 1));
    // A finished task stays a while for readers, then goes; one still running stays.
    wait_for("the finished task to expire", WAIT, || async {
        env.reg
            .task(done.id())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(status(&env, kept.id()).await, (TaskState::Running, 1));
}
both!(a_finished_task_expires_after_the_final_ttl, expiry);

async fn dead_expiry(env: Env) {
    let brief = TaskRules {
        final_ttl_ms: 100,
        ..rules()
    };
    init(&env, brief).await;
    let w = worker(&env, 1).await;
    let t = task_max(1);
    submit(&env, &[&t]).await;
    let run = w.ready_run(&env, 0).await;
    assert!(w.fail(&env, &run).await.accepted);
    assert_eq!(dead(&env).await, vec![t.id().clone()]);
    // The dead set forgets a failed task with its hash (the store keeps both), or it would
    // grow with every failure for as long as the pool lives.
    wait_for("the failed task to leave the dead set", WAIT, || async {
        tend(&env).await;
        let gone = env.reg.task(t.id()).await.unwrap().is_none();
        (gone && dead(&env).await.is_empty()).then_some(())
    })
    .await;
}
both!(a_failed_task_leaves_the_dead_set_with_its_hash, dead_expiry);

async fn restarted(env: Env) {
    init(&env, rules()).await;
    let w = worker(&env, 1).await;
    let t = task(5);
    submit(&env, &[&t]).await;
    w.ready_run(&env, 0).await;
    // Restarted in place without a report: the attempt died with it and is run again at once,
    // not left to its lease.
    let run = w.ready_run(&env, 0).await;
    assert_eq!((&run.task_id, run.attempt), (t.id(), 2));
    let got = get(&env, t.id()).await;
    assert_eq!(got.error.as_deref(), Some("its agent restarted"));
    assert_eq!(counts(&env).await.running_tasks, 1);
}
both!(an_agent_up_again_ends_the_attempt_it_held, restarted);
