//! `agentpool worker`: one worker process. The master starts it; its settings come as JSON in
//! the environment (`AGENTPOOL_WORKER_CONFIG`), so no secret shows on its command line. The
//! flags only name it for `ps` and for adoption checks.

use crate::telemetry;
use agentpool_types::{WORKER_CONFIG_ENV, WorkerConfig};
use agentpool_worker::Exit;
use anyhow::{Context, Result, bail};
use std::process::ExitCode;

/// Exit code of a worker that was fenced (reaped while alive).
const EXIT_FENCED: u8 = 3;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The pool, as in the settings (shown by `ps`).
    #[arg(long)]
    pool: String,
    /// The worker's id, as in the settings (shown by `ps`; adoption checks it).
    #[arg(long)]
    process_id: String,
    /// The master passes its own log format on.
    #[arg(long, value_enum)]
    log_format: Option<telemetry::LogFormat>,
}

pub fn run(a: WorkerArgs) -> Result<ExitCode> {
    telemetry::init(crate::config::log_format(a.log_format)?);
    let raw = std::env::var(WORKER_CONFIG_ENV).with_context(|| {
        format!("{WORKER_CONFIG_ENV} is not set: workers are started by `agentpool serve`")
    })?;
    let config: WorkerConfig = serde_json::from_str(&raw)
        .with_context(|| format!("{WORKER_CONFIG_ENV} is not a valid worker configuration"))?;
    if config.pool.name != a.pool || config.process_id.as_str() != a.process_id {
        bail!(
            "--pool/--process-id ({}/{}) do not match {WORKER_CONFIG_ENV} ({}/{})",
            a.pool,
            a.process_id,
            config.pool.name,
            config.process_id
        );
    }
    match agentpool_worker::run(config).context("worker failed")? {
        Exit::Shutdown => Ok(ExitCode::SUCCESS),
        Exit::Fenced => Ok(ExitCode::from(EXIT_FENCED)),
    }
}
