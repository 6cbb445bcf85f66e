//! Benchmarks against a running master (`agentpool serve --config config/bench.toml`).
//! They print figures next to their targets and assert nothing.
//!
//! Every bench runs under [`exit::supervise`]: whatever ends it (success, an error, SIGINT,
//! SIGTERM, a panic or a closed pipe), the tasks it left unfinished are cancelled and the
//! agents it spawned are terminated before it exits.

mod autoscale;
mod exit;
mod flood;
mod ops;
mod pools;
mod recovery;
mod report;
mod spawn;
mod stats;
mod tasks;
mod tracked;

use crate::cli::connect::Connection;
use anyhow::Result;
use report::Report;
use tracked::Api;

/// Progress to stderr, never panicking on a closed pipe (unlike `eprintln!`).
macro_rules! progress {
    ($($arg:tt)*) => {
        crate::cli::write_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use progress;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Spawn latency: into a warm worker, with a new worker, and 1,000 agents at once.
    Spawn(spawn::SpawnBenchArgs),
    /// `GET /pools` latency and worker memory with many agents running.
    Pools(pools::PoolsBenchArgs),
    /// Recovery time after a worker is SIGKILLed or SIGSTOPped (the master must run here).
    Recovery(recovery::RecoveryArgs),
    /// Task round trip, throughput in batches, and tasks in flight on a SIGKILLed worker
    /// (the master must run here for that last one).
    Tasks(tasks::TasksBenchArgs),
    /// An autoscaled pool: a task's queue wait from an empty pool, and a burst to the maximum.
    Autoscale(autoscale::AutoscaleBenchArgs),
    /// `GET /pools` latency alone and while other clients flood the master with bad requests.
    Flood(flood::FloodBenchArgs),
}

/// Options every bench takes.
#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print the report as one JSON array of {measure, result, value, unit, target, bound, met};
    /// bound is "at_most" or "at_least" (the side of target that meets it).
    #[arg(long)]
    json: bool,
}

impl Command {
    fn common(&self) -> &CommonArgs {
        match self {
            Command::Spawn(a) => &a.common,
            Command::Pools(a) => &a.common,
            Command::Recovery(a) => &a.common,
            Command::Tasks(a) => &a.common,
            Command::Autoscale(a) => &a.common,
            Command::Flood(a) => &a.common,
        }
    }

    /// Whether a bench that completes leaves its agents running (`bench pools --keep`).
    fn keeps_agents(&self) -> bool {
        matches!(self, Command::Pools(a) if a.keep)
    }

    async fn run(self, api: Api) -> Result<Report> {
        match self {
            Command::Spawn(args) => spawn::run(args, api).await,
            Command::Pools(args) => pools::run(args, api).await,
            Command::Recovery(args) => recovery::run(args, api).await,
            Command::Tasks(args) => tasks::run(args, api).await,
            Command::Autoscale(args) => autoscale::run(args, api).await,
            Command::Flood(args) => flood::run(args, api).await,
        }
    }
}

/// Runs one benchmark, then prints its report.
pub async fn run(cmd: Command) -> Result<()> {
    let common = cmd.common().clone();
    let api = Api::new(common.connection.client()?);
    let keep = cmd.keeps_agents();
    let report = exit::supervise(api.clone(), keep, cmd.run(api)).await?;
    report.print(common.json);
    Ok(())
}
