//! The agentpool worker: one OS process hosting up to `max_agents` agents of one pool.
//!
//! - [`agent`]: the body of one agent task: its handler, the tasks it runs, their reports.
//! - [`running`]: the attempt an agent has in hand, shared with the control side.
//! - [`handlers`]: what an agent runs for each task: echo, exec (persistent or per task), http.
//! - [`host`]: `AgentHost`, which starts, supervises, stops and reconciles agent tasks.
//! - [`heartbeat`]: the heartbeat loop, which also drives reconcile and fencing.
//! - [`commands`]: dispatch of commands from the pub/sub channels.
//! - [`metrics`]: RSS and CPU of this process, for the heartbeat.
//! - [`error`]: the one error type, `WorkerError`.
//!
//! Two threads, each with a current-thread runtime: agents run on one, and the control work
//! (heartbeat, commands, status writes) on the other, so a busy agent cannot starve the
//! heartbeat. Both are single-threaded to keep an idle worker at a few MiB.

pub mod agent;
pub mod commands;
pub mod error;
pub mod handlers;
pub mod heartbeat;
pub mod host;
pub mod metrics;
pub mod running;

pub use error::WorkerError;

use agentpool_registry::ControlPlane;
use agentpool_registry::embedded::{SocketControlPlane, is_embedded_url};
use agentpool_registry::redis::{RedisControlPlane, RedisTarget};
use agentpool_types::{Event, EventKind, ProcessState, WorkerConfig, WorkerProcess};
use host::AgentHost;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Builder;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How long the worker keeps trying to reach the registry at start before giving up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Why the worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM or a shutdown command); agents were stopped cleanly.
    Shutdown,
    /// The registry said this worker was reaped: it stopped its agents and must not return.
    Fenced,
}

/// Runs a worker to the end. Blocks the calling thread.
pub fn run(config: WorkerConfig) -> Result<Exit, WorkerError> {
    let agents_rt = Builder::new_current_thread().enable_all().build()?;
    let agents = agents_rt.handle().clone();
    let agents_done = CancellationToken::new();
    let until = agents_done.clone();
    let agents_thread = std::thread::Builder::new()
        .name("agents".into())
        .spawn(move || agents_rt.block_on(until.cancelled()))?;

    let control_rt = Builder::new_current_thread().enable_all().build()?;
    let result = control_rt.block_on(serve(config, agents));
    agents_done.cancel();
    let _ = agents_thread.join();
    result
}

async fn serve(config: WorkerConfig, agents: tokio::runtime::Handle) -> Result<Exit, WorkerError> {
    let control = connect(&config).await?;
    let embedded = is_embedded_url(&config.control_url);
    // Subscribe before registering: a spawn command can follow the registration at once.
    let commands = control
        .commands(&config.pool.name, &config.process_id)
        .await?;
    let host = AgentHost::new(&config, control.clone(), agents);
    register(&config, control.as_ref()).await?;
    tracing::info!(process_id = %config.process_id, pool = %config.pool.name, "worker registered");

    let shutdown = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat::run(
        config.clone(),
        host.clone(),
        control.clone(),
        shutdown.clone(),
    ));
    let until = shutdown.clone();
    let command_host = host.clone();
    tokio::spawn(async move {
        commands::run(commands, command_host, until.clone()).await;
        // The embedded registry lives in the master: when its socket closes the master is
        // gone, and its workers go with it.
        if embedded && !until.is_cancelled() {
            tracing::warn!("master connection closed: stopping");
            until.cancel();
        }
    });
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let exit = heartbeat.await.unwrap_or(Exit::Shutdown);
    match exit {
        Exit::Fenced => {
            tracing::warn!("registration reaped: stopping agents and exiting (fenced)");
            host.abort_all();
        }
        Exit::Shutdown => {
            tracing::info!("shutting down: stopping agents");
            host.stop_all(config.grace()).await;
            let _ = control
                .set_process_status(&config.process_id, ProcessState::Stopped)
                .await;
            let stopped = Event::new(EventKind::ProcessStopped {
                process_id: config.process_id.clone(),
            });
            let _ = control.publish(&config.pool.name, &stopped).await;
        }
    }
    Ok(exit)
}

async fn connect(config: &WorkerConfig) -> Result<Arc<dyn ControlPlane>, WorkerError> {
    let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    let mut delay = Duration::from_millis(50);
    loop {
        let url = &config.control_url;
        let attempt: Result<Arc<dyn ControlPlane>, _> = if is_embedded_url(url) {
            SocketControlPlane::connect(url)
                .await
                .map(|c| Arc::new(c) as _)
        } else {
            match RedisTarget::new(url, config.redis_ca_file.as_deref()) {
                Ok(target) => RedisControlPlane::connect_to(&target, &config.key_prefix)
                    .await
                    .map(|c| Arc::new(c) as _),
                // A bad URL or CA file does not get better by retrying.
                Err(e) => return Err(e.into()),
            }
        };
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "registry unreachable, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// This worker as its registry hash describes it.
pub(crate) fn describe(config: &WorkerConfig, rss_bytes: u64, cpu_percent: f32) -> WorkerProcess {
    let now = agentpool_types::now_rfc3339();
    WorkerProcess {
        process_id: config.process_id.clone(),
        pool_name: config.pool.name.clone(),
        pid: std::process::id(),
        host: metrics::hostname(),
        max_agents: config.pool.max_agents_per_process,
        agent_count: 0,
        status: ProcessState::Running,
        started_at: now.clone(),
        last_heartbeat: now,
        rss_bytes,
        cpu_percent,
    }
}

async fn register(config: &WorkerConfig, control: &dyn ControlPlane) -> Result<(), WorkerError> {
    let me = describe(config, 0, 0.0);
    control.register(&me).await?;
    let started = Event::new(EventKind::ProcessStarted {
        process_id: config.process_id.clone(),
        pid: me.pid,
    });
    // Best effort: the master also polls the registry for the registration.
    let _ = control.publish(&config.pool.name, &started).await;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
        _ = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
