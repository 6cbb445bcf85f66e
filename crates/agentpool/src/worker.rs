//! `agentpool worker`: one worker process. The master starts it with these flags.

use crate::telemetry;
use agentpool_types::restart::RestartLimits;
use agentpool_types::{ProcessId, RestartPolicy, pool};
use agentpool_worker::{Exit, WorkerConfig};
use anyhow::{Context, Result};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of a worker that was fenced (reaped while alive).
const EXIT_FENCED: u8 = 3;

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pool: String,
    #[arg(long)]
    process_id: String,
    /// The registry: a redis:// URL.
    #[arg(long)]
    control: String,
    #[arg(long, default_value = "")]
    key_prefix: String,
    #[arg(long, default_value_t = 10)]
    max_agents: u32,
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    grace_ms: u64,
    /// Restart policy of the pool's agents: permanent, transient or temporary.
    #[arg(long, default_value = "permanent", value_parser = parse_policy)]
    restart: RestartPolicy,
    #[arg(long, default_value_t = pool::DEFAULT_MAX_RESTARTS)]
    max_restarts: u32,
    #[arg(long, default_value_t = pool::DEFAULT_RESTART_PERIOD_SECS * 1000)]
    restart_period_ms: u64,
    #[arg(long, default_value_t = pool::DEFAULT_RESTART_BACKOFF_MS)]
    restart_backoff_ms: u64,
}

fn parse_policy(s: &str) -> Result<RestartPolicy, String> {
    RestartPolicy::parse(s).ok_or_else(|| format!("{s:?} is not permanent, transient or temporary"))
}

pub fn run(a: WorkerArgs) -> Result<ExitCode> {
    telemetry::init();
    let process_id = ProcessId::parse(&a.process_id)
        .with_context(|| format!("--process-id {:?} is not a valid id", a.process_id))?;
    let config = WorkerConfig {
        pool: a.pool,
        process_id,
        control_url: a.control,
        key_prefix: a.key_prefix,
        max_agents: a.max_agents,
        heartbeat_interval: Duration::from_millis(a.heartbeat_ms),
        grace: Duration::from_millis(a.grace_ms),
        restart: a.restart,
        restart_limits: RestartLimits {
            max_restarts: a.max_restarts,
            period: Duration::from_millis(a.restart_period_ms),
            backoff: Duration::from_millis(a.restart_backoff_ms),
        },
    };
    match agentpool_worker::run(config).context("worker failed")? {
        Exit::Shutdown => Ok(ExitCode::SUCCESS),
        Exit::Fenced => Ok(ExitCode::from(EXIT_FENCED)),
    }
}
