//! `agentpool bench autoscale`: a pool with `[pools.autoscale]` (config/bench.toml's
//! `autoscaled`, `0..100`) from nothing to its burst and back.
//!
//! - Cold start: with no agent and no worker, one task is submitted; its queue wait is the
//!   time from its creation to its start, by the master's clock (the task's own timestamps).
//! - Burst: `--burst` tasks at once: the time until the pool runs `max_agents` agents, and
//!   until every task is done.
//!
//! Between runs the bench waits for the pool to give its agents and workers back, which takes
//! the pool's `scale_down_idle_secs` and `idle_worker_ttl_secs`.

use super::report::{Report, count};
use super::stats::{Summary, ms};
use super::{CommonArgs, ops, progress, tracked::Api};
use agentpool_types::{PoolStats, Task, TaskBatch, TaskList, TaskRequest};
use anyhow::{Context, Result, bail};
use chrono::DateTime;
use serde_json::json;
use std::time::{Duration, Instant};

/// Pause between two reads of `/pools`.
const POLL: Duration = Duration::from_millis(2);
/// Longest wait for the pool to empty, to grow, or to finish its burst.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long the master holds the cold start's request for its task.
const WAIT: Duration = Duration::from_secs(30);
/// Cold-start queue wait target, p50.
const COLD_TARGET_MS: f64 = 50.0;

#[derive(clap::Args, Debug)]
pub struct AutoscaleBenchArgs {
    /// An autoscaled pool with the echo handler (config/bench.toml's `autoscaled`).
    #[arg(long, default_value = "autoscaled")]
    pool: String,
    /// Cold starts timed, each from an empty pool; 0 skips them.
    #[arg(long, default_value_t = 5)]
    cold_runs: u32,
    /// Tasks of the burst (the target is for 1,000 into `0..100`); 0 skips it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=1000))]
    burst: u64,
    /// How long each burst task takes, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    task_ms: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: AutoscaleBenchArgs, api: Api) -> Result<Report> {
    let mut report = Report::default();
    let rule = ops::pool_stats(&api, &args.pool)
        .await?
        .autoscale
        .with_context(|| format!("pool {:?} has no [pools.autoscale]", args.pool))?;
    if args.cold_runs > 0 {
        cold_starts(&api, &args, &mut report).await?;
    }
    if args.burst > 0 {
        burst(&api, &args, u64::from(rule.max), &mut report).await?;
    }
    Ok(report)
}

async fn cold_starts(api: &Api, args: &AutoscaleBenchArgs, report: &mut Report) -> Result<()> {
    let mut waits = Vec::new();
    for run in 1..=args.cold_runs {
        progress!(
            "cold start {run}/{}: waiting for an empty pool",
            args.cold_runs
        );
        empty(api, &args.pool).await?;
        let body = TaskRequest {
            input: json!({ "cold": run }),
            ..TaskRequest::default()
        };
        let task: Task = api
            .submit(&["pools", &args.pool, "tasks"], Some(WAIT), &body)
            .await?;
        waits.push(queue_wait(&task)?);
    }
    if let Some(s) = Summary::of(waits) {
        report.target(
            "cold start: queue wait p50",
            ms(s.p50),
            COLD_TARGET_MS,
            "ms",
        );
        report.info("cold start: queue wait max", format!("{:.1} ms", ms(s.max)));
    }
    Ok(())
}

async fn burst(api: &Api, args: &AutoscaleBenchArgs, max: u64, report: &mut Report) -> Result<()> {
    progress!("burst: waiting for an empty pool");
    empty(api, &args.pool).await?;
    progress!(
        "burst: {} of {} ms",
        count(args.burst, "task"),
        args.task_ms
    );
    let tasks = (0..args.burst)
        .map(|i| TaskRequest {
            input: json!({ "i": i, "sleep_ms": args.task_ms }),
            ..TaskRequest::default()
        })
        .collect();
    let start = Instant::now();
    let list: TaskList = api
        .submit(
            &["pools", &args.pool, "tasks", "batch"],
            None,
            &TaskBatch { tasks },
        )
        .await?;
    let grown = watch(api, &args.pool, start, |s| s.agent_count >= max).await?;
    let done = watch(api, &args.pool, start, |s| {
        s.tasks.queued_tasks + s.tasks.running_tasks == 0
    })
    .await?;
    api.finished(list.tasks.iter().map(|t| &t.spec.task_id));
    let label = format!("burst of {}", count(args.burst, "task"));
    report.info(
        &format!("{label}: {max} agents running"),
        format!("{:.0} ms", ms(grown)),
    );
    report.info(
        &format!("{label}: all done"),
        format!("{:.2} s", grown.max(done).as_secs_f64()),
    );
    Ok(())
}

/// Time from a task's creation to its start, by the master's timestamps.
fn queue_wait(task: &Task) -> Result<Duration> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).context("a task timestamp");
    let started = task
        .started_at
        .as_deref()
        .context("the cold-start task never started")?;
    let waited = parse(started)? - parse(&task.created_at)?;
    Ok(waited.to_std().unwrap_or_default())
}

/// Waits until the pool has no agent and no worker.
async fn empty(api: &Api, pool: &str) -> Result<()> {
    watch(api, pool, Instant::now(), |s| {
        s.agent_count == 0 && s.process_count == 0
    })
    .await
    .map(|_| ())
}

/// Polls the pool's row until `done` holds; the time since `start` when it did.
async fn watch(
    api: &Api,
    pool: &str,
    start: Instant,
    done: impl Fn(&PoolStats) -> bool,
) -> Result<Duration> {
    loop {
        let stats = ops::pool_stats(api, pool).await?;
        if done(&stats) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > DEADLINE {
            bail!(
                "pool {pool}: still {} agents, {} workers, {} tasks queued after {} s",
                stats.agent_count,
                stats.process_count,
                stats.tasks.queued_tasks,
                DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
