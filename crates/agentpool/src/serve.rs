//! `agentpool serve`: the master, until SIGTERM or Ctrl-C.

use crate::{config, telemetry};
use anyhow::{Context, Result};
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Config file [default: config/agentpool.toml, else the built-in default].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, host:port [env: AGENTPOOL_LISTEN; default 127.0.0.1:8000].
    #[arg(long)]
    listen: Option<String>,
    /// Stop the workers when the master stops. Without it they keep running, with their
    /// agents, and the next master adopts them.
    #[arg(long)]
    stop_workers: bool,
    /// Where the live registry is: redis, embedded (in this process; no Redis needed), or
    /// auto: Redis when REDIS_URL or `redis_url` is set, embedded otherwise.
    #[arg(long, value_enum, default_value_t = config::BackendChoice::Auto)]
    backend: config::BackendChoice,
}

pub fn run(args: ServeArgs) -> Result<()> {
    telemetry::init();
    let cfg = config::load(&config::Flags {
        config: args.config.as_deref(),
        listen: args.listen.as_deref(),
        stop_workers: args.stop_workers,
        backend: args.backend,
    })?;
    tracing::info!(backend = ?cfg.master.backend, reason = %cfg.backend_reason, config = %cfg.origin, "starting master");
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        agentpool_master::run(listener, cfg.master, shutdown)
            .await
            .context("master failed")
    })
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the master with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("interrupt: shutting down"),
    }
    shutdown.cancel();
}
