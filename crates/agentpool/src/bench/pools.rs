//! `agentpool bench pools`: `GET /pools` latency and worker memory with many agents running.

use super::ops::{self, MAX_BULK};
use super::report::{Report, count};
use super::stats::{Summary, ms};
use super::{CommonArgs, progress, tracked::Api};
use agentpool_types::{AgentId, PoolStats, ProcessState, WorkerProcess};
use anyhow::Result;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct PoolsBenchArgs {
    /// Pool to grow; use a dedicated one, since the bench may fill it.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Agents to spawn before measuring, in bulk batches of 1,000.
    #[arg(long, default_value_t = 10_000)]
    agents: u64,
    /// Sequential `GET /api/v1/pools` requests to time.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Leave the spawned agents running once the bench completes (a failed or interrupted
    /// bench still terminates them).
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: PoolsBenchArgs, api: Api) -> Result<Report> {
    let mut report = Report::default();
    let spawned = grow(&api, &args.pool, args.agents).await;
    measure(&api, &args, spawned.len(), &mut report).await?;
    if !args.keep {
        progress!("terminating {}", count(spawned.len() as u64, "agent"));
        let took = ops::terminate_all(&api, &spawned).await?;
        let n = count(spawned.len() as u64, "agent");
        let result = format!("{n} in {:.2} s", took.as_secs_f64());
        report.info("terminate all", result);
    }
    Ok(report)
}

/// Spawns up to `target` agents; a failed batch (pool full, out of resources) ends the growth,
/// since how far the pool got is itself a result.
async fn grow(api: &Api, pool: &str, target: u64) -> Vec<AgentId> {
    let mut spawned = Vec::new();
    while (spawned.len() as u64) < target {
        let batch = (target - spawned.len() as u64).min(MAX_BULK);
        match ops::spawn_many(api, pool, batch).await {
            Ok(agents) => spawned.extend(agents.into_iter().map(|a| a.spec.agent_id)),
            Err(e) => {
                let n = count(spawned.len() as u64, "agent");
                progress!("batch failed, stopping at {n}: {e:#}");
                break;
            }
        }
        progress!("{}/{target} agents running", spawned.len());
    }
    spawned
}

async fn measure(
    api: &Api,
    args: &PoolsBenchArgs,
    reached: usize,
    report: &mut Report,
) -> Result<()> {
    let stats = ops::pool_stats(api, &args.pool).await?;
    report.info("agents reached", format!("{reached}/{}", args.agents));
    report.info("workers reached", stats.process_count.to_string());
    progress!(
        "timing {}",
        count(args.requests, "GET /api/v1/pools request")
    );
    let mut samples = Vec::new();
    for _ in 0..args.requests {
        let start = Instant::now();
        api.get::<Vec<PoolStats>>(&["pools"], &[]).await?;
        samples.push(start.elapsed());
    }
    if let Some(s) = Summary::of(samples) {
        report.info("GET /pools p50", format!("{:.2} ms", ms(s.p50)));
        report.target("GET /pools p99", ms(s.p99), 5.0, "ms");
        report.info("GET /pools max", format!("{:.2} ms", ms(s.max)));
    }
    worker_rss(api, &args.pool, report).await
}

/// Mean RSS of the pool's running workers; their agents are idle, as the target assumes.
async fn worker_rss(api: &Api, pool: &str, report: &mut Report) -> Result<()> {
    let processes: Vec<WorkerProcess> = api.get(&["processes"], &[("pool", pool)]).await?;
    let rss: Vec<u64> = processes
        .iter()
        .filter(|p| p.status == ProcessState::Running)
        .map(|p| p.rss_bytes)
        .collect();
    if rss.is_empty() {
        report.info("mean worker RSS", "no running worker".to_owned());
        return Ok(());
    }
    let mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / (1024.0 * 1024.0);
    report.target("mean worker RSS", mean, 10.0, "MiB");
    Ok(())
}
