//! `agentpool bench tasks`: echo tasks through a pool's agents. It times the round trip of one
//! task submitted with `?wait=`, the throughput of many submitted in batches until all have
//! succeeded, and how tasks in flight on a SIGKILLed worker run again and succeed once.
//!
//! - `round_trip`: one task at a time, each submitted with `?wait=`.
//! - `throughput`: batches of tasks, timed until the pool's queue is empty.
//! - `kill`: a slow task on each agent of a worker, then SIGKILL to the worker.

mod kill;
mod round_trip;
mod throughput;

use super::ops::{self, MAX_BULK};
use super::report::{Report, count};
use super::{CommonArgs, progress, tracked::Api};
use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct TasksBenchArgs {
    /// Pool to run in; use a dedicated one with the echo handler and 10 agents per worker
    /// (config/bench.toml's).
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Agents that run the round trips and the throughput tasks; the 6,500 tasks/s target is
    /// for 100 agents and batches of 1,000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    agents: u64,
    /// Timed round trips, one task at a time; 0 skips them.
    #[arg(long, default_value_t = 1000)]
    round_trips: u64,
    /// Tasks of the throughput measure; 0 skips it.
    #[arg(long, default_value_t = 20_000)]
    tasks: u64,
    /// Tasks per batch request.
    #[arg(long, default_value_t = MAX_BULK, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// Runs that SIGKILL a worker while each of its 10 agents runs a slow task; 0 skips them.
    /// The bench signals the worker's pid, so the master must run on this machine.
    #[arg(long, default_value_t = 1)]
    kill_runs: u32,
    /// How long each slow task of a SIGKILL run takes, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    slow_ms: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: TasksBenchArgs, api: Api) -> Result<Report> {
    let mut report = Report::default();
    let mut spawned = 0;
    if args.round_trips > 0 || args.tasks > 0 {
        progress!("spawning {}", count(args.agents, "agent"));
        let agents = ops::spawn_batches(&api, &args.pool, args.agents).await?;
        spawned += agents.len();
        if args.round_trips > 0 {
            round_trip::run(&api, &args.pool, args.round_trips, &mut report)
                .await
                .context("round trips")?;
        }
        if args.tasks > 0 {
            throughput::run(&api, &args, &mut report)
                .await
                .context("throughput")?;
        }
        // The SIGKILL runs want workers holding only their own agents.
        ops::terminate_all(&api, &agents).await?;
    }
    if args.kill_runs > 0 {
        spawned += kill::runs(&api, &args.pool, args.kill_runs, args.slow_ms, &mut report)
            .await
            .context("SIGKILL runs")?;
    }
    let left = api.live();
    progress!("cleaning up {}", count(left.len() as u64, "agent"));
    ops::terminate_all(&api, &left).await?;
    report.info("agents spawned", format!("{spawned}, all terminated"));
    Ok(report)
}
