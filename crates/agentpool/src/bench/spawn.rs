//! `agentpool bench spawn`: spawn latency into a warm worker, with a new worker, and in bulk.

use super::ops::{self, MAX_BULK};
use super::report::Report;
use super::stats::{Summary, ms};
use crate::cli::{DEFAULT_URL, client::Client};
use agentpool_types::AgentId;
use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct SpawnBenchArgs {
    /// Base URL of the master.
    #[arg(long, env = "AGENTPOOL_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Pool to spawn into; use a dedicated one, since the bench fills its workers.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Timed spawns into a warm worker.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    warm: u64,
    /// Timed spawns that each need a new worker.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    cold: u64,
}

pub async fn run(args: SpawnBenchArgs) -> Result<()> {
    let api = Client::new(&args.url)?;
    let mut report = Report::default();
    let mut spawned = Vec::new();
    let outcome = single_spawns(&api, &args, &mut spawned, &mut report).await;
    eprintln!("cleaning up {} agents", spawned.len());
    let cleanup = ops::terminate_all(&api, &spawned).await;
    outcome?;
    cleanup?;
    bulk(&api, &args.pool, &mut report).await?;
    report.print();
    Ok(())
}

/// The warm and the new-worker measures; every agent left running is pushed to `spawned`.
async fn single_spawns(
    api: &Client,
    args: &SpawnBenchArgs,
    spawned: &mut Vec<AgentId>,
    report: &mut Report,
) -> Result<()> {
    warm(api, args, spawned, report)
        .await
        .context("warm spawn")?;
    cold(api, args, spawned, report)
        .await
        .context("new-worker spawn")
}

async fn warm(
    api: &Client,
    args: &SpawnBenchArgs,
    spawned: &mut Vec<AgentId>,
    report: &mut Report,
) -> Result<()> {
    eprintln!("warm spawn: {} spawns next to a kept agent", args.warm);
    // The kept agent holds its worker open, so every timed spawn finds a running worker.
    spawned.push(ops::spawn_one(api, &args.pool).await?.agent_id);
    let mut samples = Vec::new();
    for _ in 0..args.warm {
        let start = Instant::now();
        let agent = ops::spawn_one(api, &args.pool).await?;
        samples.push(start.elapsed());
        ops::terminate(api, &agent.agent_id).await?;
    }
    if let Some(s) = Summary::of(samples) {
        report.target("warm spawn p50", ms(s.p50), 2.0, "ms");
        report.target("warm spawn p99", ms(s.p99), 10.0, "ms");
        report.info("warm spawn max", format!("{:.2} ms", ms(s.max)));
    }
    Ok(())
}

async fn cold(
    api: &Client,
    args: &SpawnBenchArgs,
    spawned: &mut Vec<AgentId>,
    report: &mut Report,
) -> Result<()> {
    let stats = ops::pool_stats(api, &args.pool).await?;
    if stats.process_count == 0 {
        bail!(
            "pool {} shows no worker although it runs an agent",
            args.pool
        );
    }
    let per_worker = stats.total_capacity / stats.process_count;
    eprintln!(
        "new-worker spawn: {} runs, {per_worker} agents per worker",
        args.cold
    );
    let (mut samples, mut started) = (Vec::new(), 0);
    for _ in 0..args.cold {
        let before = fill(api, &args.pool, spawned).await?;
        let start = Instant::now();
        let agent = ops::spawn_one(api, &args.pool).await?;
        samples.push(start.elapsed());
        spawned.push(agent.agent_id);
        // A master that starts workers ahead of demand would make this spawn warm; count those.
        if ops::pool_stats(api, &args.pool).await?.process_count > before {
            started += 1;
        }
    }
    if let Some(s) = Summary::of(samples) {
        report.target("new-worker spawn p50", ms(s.p50), 50.0, "ms");
        report.info("new-worker spawn max", format!("{:.2} ms", ms(s.max)));
        report.info(
            "runs that started a worker",
            format!("{started}/{}", args.cold),
        );
    }
    Ok(())
}

/// Takes every free slot of the pool, so the next spawn needs a new worker.
/// Returns the worker count once full.
async fn fill(api: &Client, pool: &str, spawned: &mut Vec<AgentId>) -> Result<u64> {
    let mut free = ops::pool_stats(api, pool).await?.available_capacity;
    while free > 0 {
        let count = free.min(MAX_BULK);
        let agents = ops::spawn_many(api, pool, count).await?;
        spawned.extend(agents.into_iter().map(|a| a.agent_id));
        free -= count;
    }
    Ok(ops::pool_stats(api, pool).await?.process_count)
}

/// 1,000 agents in one request, then all terminated.
async fn bulk(api: &Client, pool: &str, report: &mut Report) -> Result<()> {
    eprintln!("bulk spawn: {MAX_BULK} agents in one request");
    let before = ops::pool_stats(api, pool).await?.process_count;
    let start = Instant::now();
    let agents = ops::spawn_many(api, pool, MAX_BULK)
        .await
        .context("bulk spawn (agents it placed may remain in the pool)")?;
    let took = start.elapsed().as_secs_f64();
    let after = ops::pool_stats(api, pool).await?.process_count;
    let workers = agents.iter().filter_map(|a| a.process_id.as_ref());
    let workers = workers.collect::<HashSet<_>>().len();
    let ids: Vec<AgentId> = agents.iter().map(|a| a.agent_id.clone()).collect();
    let stop = ops::terminate_all(api, &ids).await?;
    report.target("1,000 agents spawned", took, 2.0, "s");
    report.info(
        "1,000 agents rate",
        format!("{:.0} agents/s", MAX_BULK as f64 / took),
    );
    report.info(
        "1,000 agents workers",
        format!(
            "{workers} hosting, {} started",
            after.saturating_sub(before)
        ),
    );
    report.info(
        "1,000 agents terminated",
        format!("{:.2} s", stop.as_secs_f64()),
    );
    Ok(())
}
