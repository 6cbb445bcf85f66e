//! `agentpool bench recovery`: how fast the agents of a killed or frozen worker run again.
//!
//! It sends signals to worker pids read from the API, so the master must run on this machine.
//! Before each signal it checks, in `/proc`, that the pid is a child of the master whose pid
//! `/health` gives; a remote master is refused instead of hitting an unrelated local process.
//!
//! - `fleet`: the bench's agents and the worker each run signals.
//! - `kill`: the SIGKILL runs.
//! - `stop`: the SIGSTOP runs.
//! - `procfs`: the `/proc` checks that a pid is the master's child worker.
//! - `tally`: how the runs ended, for the report.

pub(super) mod fleet;
mod kill;
mod procfs;
mod stop;
mod tally;

use super::report::{self, Report};
use super::{CommonArgs, ops, progress, tracked::Api};
use agentpool_master::config::DEFAULT_HEARTBEAT_TIMEOUT;
use anyhow::{Context, Result};
use fleet::Bench;
use std::time::Duration;

/// A frozen worker is noticed after the heartbeat timeout; its agents get this much more.
const STOP_MARGIN: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct RecoveryArgs {
    /// Pool to spawn into; use a dedicated one, since the bench kills its workers.
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Runs that SIGKILL a full worker; 0 skips them.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Runs that SIGSTOP a full worker, each lasting about the heartbeat timeout; 0 skips them.
    #[arg(long, default_value_t = 2)]
    stop_runs: u32,
    /// The master's `heartbeat_timeout_ms`; the SIGSTOP target is this plus 1 s.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_TIMEOUT.as_millis() as u64)]
    heartbeat_timeout_ms: u64,
    // The master must run on this machine, since the bench signals its workers.
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: RecoveryArgs, api: Api) -> Result<Report> {
    let master_pid = master_pid(&api).await?;
    let mut bench = Bench::new(api.clone(), args.pool.clone(), master_pid);
    let mut report = Report::default();
    phases(&mut bench, &args, &mut report).await?;
    // Agents spawned for a run that never used them.
    let left = api.live();
    progress!("cleaning up {}", report::count(left.len() as u64, "agent"));
    ops::terminate_all(&api, &left).await?;
    report.info(
        "agents spawned",
        format!("{}, all terminated", bench.spawned),
    );
    Ok(report)
}

async fn phases(bench: &mut Bench, args: &RecoveryArgs, report: &mut Report) -> Result<()> {
    if args.runs > 0 {
        kill::runs(bench, args.runs, report)
            .await
            .context("SIGKILL runs")?;
    }
    if args.stop_runs > 0 {
        let target = Duration::from_millis(args.heartbeat_timeout_ms) + STOP_MARGIN;
        stop::runs(bench, args.stop_runs, target, report)
            .await
            .context("SIGSTOP runs")?;
    }
    Ok(())
}

/// The master's pid, from `GET /health`.
pub(super) async fn master_pid(api: &Api) -> Result<u32> {
    let health = api.client().health().await?;
    health["master"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .context("GET /health names no master pid")
}
