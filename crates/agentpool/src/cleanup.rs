//! `agentpool cleanup`: removes stale registry entries (workers whose heartbeat is older than
//! the timeout, in Redis mode), history older than a retention period and finished tasks past
//! it (or past the newest `task_retention_count` of a pool), and says what it removed. Safe while a master runs: a reaped worker's agents are placed again by its reaper
//! and restore loop.

use crate::config::{self, BackendChoice, Flags};
use agentpool_master::config::Backend;
use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{ReapMode, Registry};
use agentpool_types::mask_url;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// History older than this is removed unless told otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 7;

#[derive(clap::Args)]
pub struct CleanupArgs {
    /// Config file [default: config/agentpool.toml, else the built-in default].
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Remove events, stopped agents, exited workers and finished tasks older than this many
    /// days.
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
    retention_days: u64,
}

pub async fn run(args: CleanupArgs) -> Result<()> {
    let cfg = config::load(&Flags {
        config: args.config.as_deref(),
        backend: args.backend,
        ..Flags::default()
    })?;
    let m = &cfg.master;
    match m.backend {
        Backend::Redis => {
            let url = mask_url(&m.redis_url);
            let registry = RedisRegistry::connect_to(&m.redis_target()?, &m.key_prefix)
                .await
                .with_context(|| format!("cannot reach redis at {url}"))?;
            let stale = registry.stale(m.heartbeat_timeout).await?;
            for id in &stale.stale {
                let agents = registry.reap(id, ReapMode::Orphan).await?;
                println!(
                    "registry: removed stale worker {id} ({} agents orphaned, to be placed again)",
                    agents.len()
                );
            }
            println!(
                "registry: {} stale of {} workers removed ({url})",
                stale.stale.len(),
                stale.total
            );
        }
        Backend::Embedded => {
            println!("registry: embedded, it lives in the master: nothing to clean")
        }
    }
    let retention = Duration::from_secs(args.retention_days * 24 * 3600);
    let store = agentpool_master::open_store(&m.store)
        .await
        .with_context(|| format!("cannot open the store ({})", m.store))?;
    let report = store.cleanup(retention).await?;
    println!(
        "store ({}): removed {} events, {} stopped agents and {} exited workers older than {} days",
        m.store, report.events, report.agents, report.workers, args.retention_days
    );
    let tasks = store.trim_tasks(retention, m.task_retention_count).await?;
    println!(
        "store ({}): removed {tasks} finished tasks older than {} days or past the newest {} of a pool",
        m.store, args.retention_days, m.task_retention_count
    );
    Ok(())
}
