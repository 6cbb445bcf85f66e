//! Benchmarks against a running master (`agentpool serve --config config/bench.toml`).
//! They print figures next to the design targets and assert nothing.

mod ops;
mod pools;
mod recovery;
mod report;
mod spawn;
mod stats;

use anyhow::Result;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Spawn latency: into a warm worker, with a new worker, and 1,000 agents at once.
    Spawn(spawn::SpawnBenchArgs),
    /// `GET /pools` latency and worker memory with many agents running.
    Pools(pools::PoolsBenchArgs),
    /// Recovery time after a worker is SIGKILLed or SIGSTOPped (the master must run here).
    Recovery(recovery::RecoveryArgs),
}

/// Runs one benchmark.
pub async fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Spawn(args) => spawn::run(args).await,
        Command::Pools(args) => pools::run(args).await,
        Command::Recovery(args) => recovery::run(args).await,
    }
}
