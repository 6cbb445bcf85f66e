//! `agentpool bench spawn`: spawn latency into a warm worker, with a new worker, and in bulk.

use super::ops::{self, MAX_BULK};
use super::report::{self, Report, count, thousands};
use super::stats::{Summary, ms};
use super::{CommonArgs, progress, tracked::Api};
use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct SpawnBenchArgs {
    /// Pool to spawn into; use a dedicated one, since the bench fills its workers.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Timed spawns into a warm worker.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    warm: u64,
    /// Timed spawns that each need a new worker.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    cold: u64,
    /// Agents in the one bulk request; the 2 s target is for the default 1,000.
    #[arg(long, default_value_t = MAX_BULK, value_parser = clap::value_parser!(u64).range(1..=MAX_BULK))]
    bulk: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: SpawnBenchArgs, api: Api) -> Result<Report> {
    let mut report = Report::default();
    single_spawns(&api, &args, &mut report).await?;
    let spawned = api.live();
    progress!("cleaning up {}", count(spawned.len() as u64, "agent"));
    ops::terminate_all(&api, &spawned).await?;
    bulk(&api, &args.pool, args.bulk, &mut report).await?;
    Ok(report)
}

/// The warm and the new-worker measures; they leave agents running for the caller to stop.
async fn single_spawns(api: &Api, args: &SpawnBenchArgs, report: &mut Report) -> Result<()> {
    warm(api, args, report).await.context("warm spawn")?;
    cold(api, args, report).await.context("new-worker spawn")
}

async fn warm(api: &Api, args: &SpawnBenchArgs, report: &mut Report) -> Result<()> {
    progress!(
        "warm spawn: {} next to a kept agent",
        count(args.warm, "spawn")
    );
    // The kept agent holds its worker open, so every timed spawn finds a running worker.
    ops::spawn_one(api, &args.pool).await?;
    let mut samples = Vec::new();
    for _ in 0..args.warm {
        let start = Instant::now();
        let agent = ops::spawn_one(api, &args.pool).await?;
        samples.push(start.elapsed());
        ops::terminate(api, &agent.spec.agent_id).await?;
    }
    if let Some(s) = Summary::of(samples) {
        report.target("warm spawn p50", ms(s.p50), 2.0, "ms");
        report.target("warm spawn p99", ms(s.p99), 10.0, "ms");
        report.info("warm spawn max", format!("{:.2} ms", ms(s.max)));
    }
    Ok(())
}

async fn cold(api: &Api, args: &SpawnBenchArgs, report: &mut Report) -> Result<()> {
    let stats = ops::pool_stats(api, &args.pool).await?;
    if stats.process_count == 0 {
        bail!(
            "pool {} shows no worker although it runs an agent",
            args.pool
        );
    }
    let per_worker = stats.total_capacity / stats.process_count;
    progress!(
        "new-worker spawn: {}, {} per worker",
        count(args.cold, "run"),
        count(per_worker, "agent")
    );
    let (mut samples, mut started) = (Vec::new(), 0);
    for _ in 0..args.cold {
        let before = fill(api, &args.pool).await?;
        let start = Instant::now();
        ops::spawn_one(api, &args.pool).await?;
        samples.push(start.elapsed());
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
async fn fill(api: &Api, pool: &str) -> Result<u64> {
    let mut free = ops::pool_stats(api, pool).await?.available_capacity;
    while free > 0 {
        let count = free.min(MAX_BULK);
        ops::spawn_many(api, pool, count).await?;
        free -= count;
    }
    Ok(ops::pool_stats(api, pool).await?.process_count)
}

/// `count` agents (1,000 by default) in one request, then all terminated.
async fn bulk(api: &Api, pool: &str, count: u64, report: &mut Report) -> Result<()> {
    progress!(
        "bulk spawn: {} in one request",
        report::count(count, "agent")
    );
    let before = ops::pool_stats(api, pool).await?.process_count;
    let start = Instant::now();
    let agents = ops::spawn_many(api, pool, count)
        .await
        .context("bulk spawn (agents it placed may remain in the pool)")?;
    let took = start.elapsed().as_secs_f64();
    let after = ops::pool_stats(api, pool).await?.process_count;
    let workers = agents.iter().filter_map(|a| a.process_id.as_ref());
    let workers = workers.collect::<HashSet<_>>().len();
    let ids: Vec<_> = agents.iter().map(|a| a.spec.agent_id.clone()).collect();
    let stop = ops::terminate_all(api, &ids).await?;
    let label = |what: &str| format!("{} agents {what}", thousands(count));
    if count == MAX_BULK {
        report.target(&label("spawned"), took, 2.0, "s");
    } else {
        report.info(&label("spawned"), format!("{took:.2} s"));
    }
    report.info(
        &label("rate"),
        format!("{:.0} agents/s", count as f64 / took),
    );
    let started = after.saturating_sub(before);
    report.info(
        &label("workers"),
        format!("{workers} hosting, {started} started"),
    );
    report.info(&label("terminated"), format!("{:.2} s", stop.as_secs_f64()));
    Ok(())
}
