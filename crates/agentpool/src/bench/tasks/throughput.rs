//! Throughput: echo tasks submitted in batches, timed from the first batch until the pool's
//! queue is empty; then the store is read to count how they ended.

use super::TasksBenchArgs;
use crate::bench::ops::{self, MAX_BULK};
use crate::bench::progress;
use crate::bench::report::{Report, count, thousands};
use crate::bench::tracked::Api;
use agentpool_types::{Task, TaskBatch, TaskId, TaskList, TaskRequest, TaskState};
use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Batch requests in flight at once: the next batch is on its way while the master writes one.
const IN_FLIGHT: usize = 4;
/// Pause between two reads of the pool's queue.
const POLL: Duration = Duration::from_millis(5);
/// Longest wait for the queue to empty, and for the store to show every task finished.
const DEADLINE: Duration = Duration::from_secs(300);
/// The target's shape: 100 agents, batches of 1,000.
const TARGET_AGENTS: u64 = 100;
const TARGET: f64 = 6_500.0;

pub async fn run(api: &Api, args: &TasksBenchArgs, report: &mut Report) -> Result<()> {
    let (n, batch) = (args.tasks, args.batch);
    progress!(
        "throughput: {} over {} in batches of {batch}",
        count(n, "echo task"),
        count(args.agents, "agent")
    );
    let start = Instant::now();
    let ids = submit_all(api, &args.pool, n, batch).await?;
    let accepted = start.elapsed();
    drained(api, &args.pool, start).await?;
    let took = start.elapsed();
    let ended = ended(api, &args.pool, &ids).await?;
    api.finished(ids.iter());

    let label = format!(
        "{} tasks over {}",
        thousands(n),
        count(args.agents, "agent")
    );
    let rate = n as f64 / took.as_secs_f64();
    if args.agents == TARGET_AGENTS && batch == MAX_BULK {
        report.target_at_least(&label, rate, TARGET, "tasks/s");
    } else {
        report.info(&label, format!("{rate:.0} tasks/s"));
    }
    let batches = count(n.div_ceil(batch), "request");
    let secs = took.as_secs_f64();
    report.info(&format!("{label}: all done in"), format!("{secs:.2} s"));
    let secs = accepted.as_secs_f64();
    report.info(
        &format!("{label}: accepted in"),
        format!("{batches} in {secs:.2} s"),
    );
    report.info(&format!("{label}: succeeded"), ended.summary(n));
    Ok(())
}

/// Submits `n` tasks, `batch` per request, [`IN_FLIGHT`] requests at a time.
async fn submit_all(api: &Api, pool: &str, n: u64, batch: u64) -> Result<HashSet<TaskId>> {
    let batches = (0..n).step_by(batch as usize).map(|first| {
        let tasks = (first..n.min(first + batch))
            .map(|i| TaskRequest {
                input: json!({ "i": i }),
                ..TaskRequest::default()
            })
            .collect();
        TaskBatch { tasks }
    });
    let path = ["pools", pool, "tasks", "batch"];
    let lists: Vec<TaskList> = stream::iter(batches)
        .map(|b| async move { api.submit::<TaskList>(&path, None, &b).await })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    let ids: HashSet<TaskId> = lists
        .into_iter()
        .flat_map(|l| l.tasks)
        .map(|t| t.spec.task_id)
        .collect();
    if ids.len() as u64 != n {
        bail!("submitted {n} tasks, the master answered {} ids", ids.len());
    }
    Ok(ids)
}

/// Waits until the pool has no task queued or running (in the registry, which is live).
async fn drained(api: &Api, pool: &str, start: Instant) -> Result<()> {
    loop {
        let tasks = ops::pool_stats(api, pool).await?.tasks;
        if tasks.queued_tasks + tasks.running_tasks == 0 {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            bail!(
                "{} queued and {} running after {} s",
                tasks.queued_tasks,
                tasks.running_tasks,
                DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How the bench's tasks ended, as far as the listings (at most 1,000 a status) show.
#[derive(Default)]
struct Ended {
    failed: usize,
    cancelled: usize,
    unfinished: usize,
}

impl Ended {
    fn summary(&self, n: u64) -> String {
        let not = (self.failed + self.cancelled + self.unfinished) as u64;
        let mut out = format!("{}/{n}", n.saturating_sub(not));
        if not > 0 {
            let (f, c, u) = (self.failed, self.cancelled, self.unfinished);
            out.push_str(&format!(" ({f} failed, {c} cancelled, {u} unfinished)"));
        }
        out
    }
}

/// Reads the store's listings until none of `ids` is queued or running there (the store
/// learns of each change a moment after the registry), and counts those that failed or were
/// cancelled; the rest succeeded.
async fn ended(api: &Api, pool: &str, ids: &HashSet<TaskId>) -> Result<Ended> {
    let start = Instant::now();
    loop {
        let ours = |list: Vec<Task>| list.iter().filter(|t| ids.contains(t.id())).count();
        let unfinished = ours(listed(api, pool, TaskState::Queued).await?)
            + ours(listed(api, pool, TaskState::Running).await?);
        if unfinished == 0 || start.elapsed() > DEADLINE {
            return Ok(Ended {
                failed: ours(listed(api, pool, TaskState::Failed).await?),
                cancelled: ours(listed(api, pool, TaskState::Cancelled).await?),
                unfinished,
            });
        }
        tokio::time::sleep(POLL * 20).await;
    }
}

async fn listed(api: &Api, pool: &str, status: TaskState) -> Result<Vec<Task>> {
    let query = [
        ("pool", pool),
        ("status", status.as_str()),
        ("limit", "1000"),
    ];
    api.get(&["tasks"], &query).await
}
