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
    /// Serve an API without tokens on an address other than loopback: anyone who reaches it
    /// may spawn, run tasks and drain. A warning is logged every minute.
    #[arg(long)]
    insecure: bool,
    /// Log lines as text (`human`) or one JSON object each (`json`), for the master and its
    /// workers [env: AGENTPOOL_LOG_FORMAT] [default: human].
    #[arg(long, value_enum)]
    log_format: Option<telemetry::LogFormat>,
}

/// How often an open API off loopback is reminded of in the log.
const INSECURE_REMINDER: std::time::Duration = std::time::Duration::from_secs(60);

pub fn run(args: ServeArgs) -> Result<()> {
    let log_format = config::log_format(args.log_format)?;
    telemetry::init(log_format);
    let mut cfg = config::load(&config::Flags {
        config: args.config.as_deref(),
        listen: args.listen.as_deref(),
        stop_workers: args.stop_workers,
        backend: args.backend,
    })?;
    cfg.master.worker_log_json = log_format == telemetry::LogFormat::Json;
    tracing::info!(backend = ?cfg.master.backend, reason = %cfg.backend_reason, config = %cfg.origin, "starting master");
    let open_off_loopback = check_access(&cfg, args.insecure)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        if open_off_loopback {
            tokio::spawn(remind_insecure(cfg.listen));
        }
        agentpool_master::run(listener, cfg.master, shutdown)
            .await
            .context("master failed")
    })
}

/// Refuses an open API off loopback unless `--insecure`; says at start how the API is
/// guarded. Returns whether it is open off loopback.
fn check_access(cfg: &config::ServeConfig, insecure: bool) -> Result<bool> {
    let tokens = &cfg.master.tokens;
    let loopback = cfg.listen.ip().is_loopback();
    if !tokens.is_open() {
        tracing::info!(tokens = tokens.len(), file = %cfg.tokens_file.display(), "API tokens required");
        return Ok(false);
    }
    if loopback {
        tracing::info!(listen = %cfg.listen, "API open: no tokens configured, reachable from this host only");
        return Ok(false);
    }
    if !insecure {
        anyhow::bail!(
            "refusing to serve an API without tokens on {} (not loopback): anyone who reaches              it could spawn agents and run tasks. Create a token with `agentpool token create              --scope admin` (it writes its hash to {}), set {}, listen on 127.0.0.1, or pass              --insecure",
            cfg.listen,
            cfg.tokens_file.display(),
            config::ENV_API_TOKEN
        );
    }
    Ok(true)
}

async fn remind_insecure(listen: std::net::SocketAddr) {
    let mut tick = tokio::time::interval(INSECURE_REMINDER);
    loop {
        tick.tick().await;
        tracing::warn!(%listen, "--insecure: the API has no tokens and is reachable off this host");
    }
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
