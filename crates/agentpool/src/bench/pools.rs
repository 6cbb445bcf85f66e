//! `agentpool bench pools`: `GET /pools` latency and worker memory with many agents running.

use super::ops::{self, MAX_BULK};
use super::report::Report;
use super::stats::{Summary, ms};
use crate::cli::{DEFAULT_URL, client::Client};
use agentpool_types::{AgentId, PoolStats, ProcessState, WorkerProcess};
use anyhow::Result;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct PoolsBenchArgs {
    /// Base URL of the master.
    #[arg(long, env = "AGENTPOOL_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Pool to grow; use a dedicated one, since the bench may fill it.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Agents to spawn before measuring, in bulk batches of 1,000.
    #[arg(long, default_value_t = 10_000)]
    agents: u64,
    /// Sequential `GET /api/v1/pools` requests to time.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Leave the spawned agents running.
    #[arg(long)]
    keep: bool,
}

pub async fn run(args: PoolsBenchArgs) -> Result<()> {
    let api = Client::new(&args.url)?;
    let mut report = Report::default();
    let spawned = grow(&api, &args.pool, args.agents).await;
    let outcome = measure(&api, &args, spawned.len(), &mut report).await;
    if !args.keep {
        eprintln!("terminating {} agents", spawned.len());
        let took = ops::terminate_all(&api, &spawned).await?;
        let result = format!("{} agents in {:.2} s", spawned.len(), took.as_secs_f64());
        report.info("terminate all", result);
    }
    outcome?;
    report.print();
    Ok(())
}

/// Spawns up to `target` agents; a failed batch (pool full, out of resources) ends the growth,
/// since how far the pool got is itself a result.
async fn grow(api: &Client, pool: &str, target: u64) -> Vec<AgentId> {
    let mut spawned = Vec::new();
    while (spawned.len() as u64) < target {
        let count = (target - spawned.len() as u64).min(MAX_BULK);
        match ops::spawn_many(api, pool, count).await {
            Ok(agents) => spawned.extend(agents.into_iter().map(|a| a.agent_id)),
            Err(e) => {
                eprintln!("batch failed, stopping at {} agents: {e:#}", spawned.len());
                break;
            }
        }
        eprintln!("{}/{target} agents running", spawned.len());
    }
    spawned
}

async fn measure(
    api: &Client,
    args: &PoolsBenchArgs,
    reached: usize,
    report: &mut Report,
) -> Result<()> {
    let stats = ops::pool_stats(api, &args.pool).await?;
    report.info("agents reached", format!("{reached}/{}", args.agents));
    report.info("workers reached", stats.process_count.to_string());
    eprintln!("timing {} GET /api/v1/pools", args.requests);
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
async fn worker_rss(api: &Client, pool: &str, report: &mut Report) -> Result<()> {
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
