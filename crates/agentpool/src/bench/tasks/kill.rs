//! SIGKILL with tasks in flight: each agent of a worker runs a slow task (asked of it), the
//! worker is SIGKILLed, and the bench times until every task runs again and until every one
//! has succeeded. The agents' success counts tell whether any task finished twice.

use crate::bench::recovery::fleet::{AGENTS_PER_RUN, Bench, RECOVERY_DEADLINE, Victim};
use crate::bench::recovery::master_pid;
use crate::bench::report::{Report, count};
use crate::bench::stats::{Summary, ms};
use crate::bench::{progress, tracked::Api};
use agentpool_types::{Agent, AgentId, Task, TaskId, TaskRequest, TaskState};
use anyhow::{Result, bail};
use futures::future::try_join_all;
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

/// Pause between two reads of the run's tasks.
const POLL: Duration = Duration::from_millis(2);

/// The SIGKILL runs; returns how many agents they spawned.
pub async fn runs(
    api: &Api,
    pool: &str,
    runs: u32,
    slow_ms: u64,
    report: &mut Report,
) -> Result<usize> {
    progress!(
        "SIGKILL with tasks in flight: {}, {} of {slow_ms} ms each",
        count(runs, "run"),
        count(AGENTS_PER_RUN, "task")
    );
    let mut bench = Bench::new(api.clone(), pool.to_owned(), master_pid(api).await?);
    let mut outcomes = Vec::new();
    for run in 1..=runs {
        let victim = bench.prepare().await?;
        let outcome = one_run(api, &victim, slow_ms).await?;
        progress!("SIGKILL run {run}/{runs}: pid {}: {outcome}", victim.pid);
        outcomes.push(outcome);
        bench.retire(&victim).await?;
    }
    summarize(&outcomes, runs, report);
    Ok(bench.spawned)
}

/// How one run ended.
struct Outcome {
    /// From SIGKILL until every task ran again (a second attempt).
    rerun: Option<Duration>,
    /// From SIGKILL until every task had succeeded.
    succeeded: Option<Duration>,
    /// Tasks that did not succeed: failed, cancelled, or unfinished at the deadline.
    lost: usize,
    /// Successes the agents counted beyond one per task.
    twice: u64,
    /// Tasks that ran more than once (their attempt on the killed worker, then again).
    reran: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} ms", ms(d)));
        write!(
            f,
            "running again after {}, all succeeded after {}; {} lost, {} finished twice",
            at(self.rerun),
            at(self.succeeded),
            self.lost,
            self.twice
        )
    }
}

async fn one_run(api: &Api, victim: &Victim, slow_ms: u64) -> Result<Outcome> {
    let agents: Vec<AgentId> = victim.agents().cloned().collect();
    let done_before = tasks_done(api, &agents).await?;
    let ids = try_join_all(agents.iter().map(|a| ask(api, a, slow_ms))).await?;
    wait_running(api, &ids).await?;
    let start = Instant::now();
    victim.signal(Signal::SIGKILL)?;
    let deadline = RECOVERY_DEADLINE + Duration::from_millis(slow_ms);
    let (rerun, succeeded, tasks) = follow(api, &ids, start, deadline).await?;
    api.finished(ids.iter());
    let done = tasks_done(api, &agents).await? - done_before;
    let ok = tasks
        .iter()
        .filter(|t| t.status == TaskState::Succeeded)
        .count();
    Ok(Outcome {
        rerun,
        succeeded,
        lost: tasks.len() - ok,
        twice: done.saturating_sub(ok as u64),
        reran: tasks.iter().filter(|t| t.attempts >= 2).count(),
    })
}

/// A slow echo task asked of `agent`, so it runs on the worker about to be killed.
async fn ask(api: &Api, agent: &AgentId, slow_ms: u64) -> Result<TaskId> {
    let body = TaskRequest {
        input: json!({ "sleep_ms": slow_ms }),
        ..TaskRequest::default()
    };
    let task: Task = api
        .submit(&["agents", agent.as_str(), "tasks"], None, &body)
        .await?;
    Ok(task.spec.task_id)
}

async fn read(api: &Api, ids: &[TaskId]) -> Result<Vec<Task>> {
    let read = ids
        .iter()
        .map(|id| async move { api.get::<Task>(&["tasks", id.as_str()], &[]).await });
    try_join_all(read).await
}

/// Waits until every task runs on the victim's agents, so each is in flight at the kill.
async fn wait_running(api: &Api, ids: &[TaskId]) -> Result<()> {
    let start = Instant::now();
    loop {
        let tasks = read(api, ids).await?;
        if tasks.iter().all(|t| t.status == TaskState::Running) {
            return Ok(());
        }
        if start.elapsed() > RECOVERY_DEADLINE {
            let running = tasks.iter().filter(|t| t.status == TaskState::Running);
            bail!("only {}/{} tasks started", running.count(), ids.len());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads the tasks until all succeeded, one ended otherwise, or `deadline` passed; returns
/// when all ran again and when all succeeded, and the tasks as they ended.
async fn follow(
    api: &Api,
    ids: &[TaskId],
    start: Instant,
    deadline: Duration,
) -> Result<(Option<Duration>, Option<Duration>, Vec<Task>)> {
    let mut rerun = None;
    loop {
        let tasks = read(api, ids).await?;
        let seen = start.elapsed();
        let again = |t: &Task| t.attempts >= 2 && t.status != TaskState::Queued;
        if rerun.is_none() && tasks.iter().all(again) {
            rerun = Some(seen);
        }
        if tasks.iter().all(|t| t.status == TaskState::Succeeded) {
            return Ok((rerun, Some(seen), tasks));
        }
        let ended_badly = tasks
            .iter()
            .any(|t| t.status.is_final() && t.status != TaskState::Succeeded);
        if ended_badly || seen > deadline {
            return Ok((rerun, None, tasks));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The agents' count of tasks run to success: the registry adds one per success it accepts.
async fn tasks_done(api: &Api, agents: &[AgentId]) -> Result<u64> {
    let read = agents
        .iter()
        .map(|a| async move { api.get::<Agent>(&["agents", a.as_str()], &[]).await });
    Ok(try_join_all(read).await?.iter().map(|a| a.tasks_done).sum())
}

fn summarize(outcomes: &[Outcome], runs: u32, report: &mut Report) {
    let times = |f: fn(&Outcome) -> Option<Duration>| -> Vec<Duration> {
        outcomes.iter().filter_map(f).collect()
    };
    for (what, samples) in [
        ("running again", times(|o| o.rerun)),
        ("succeeded", times(|o| o.succeeded)),
    ] {
        let measure = format!("SIGKILL, tasks in flight {what}");
        match Summary::of(samples) {
            Some(s) => report.info(
                &measure,
                format!("p50 {:.1} ms, max {:.1} ms", ms(s.p50), ms(s.max)),
            ),
            None => report.info(&measure, "never".to_owned()),
        }
    }
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let tasks = u64::from(runs) * AGENTS_PER_RUN;
    report.info(
        "SIGKILL, tasks lost / finished twice",
        format!(
            "{} / {} of {tasks}",
            sum(|o| o.lost as u64),
            sum(|o| o.twice)
        ),
    );
    report.info(
        "SIGKILL, tasks run again",
        format!("{}/{tasks}", sum(|o| o.reran as u64)),
    );
}
