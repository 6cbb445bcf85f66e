//! The agentpool master: pools, worker processes, agent placement and the REST API.
//!
//! - [`config`]: `MasterConfig`, plain data filled in by the binary, with named defaults.
//! - [`auth`]: API tokens and their scopes, kept as hashes, checked in constant time.
//! - [`master`]: `Master`, what the routes call; it owns the parts below and starts them.
//! - `core`: `Core`, what every part shares: config, registry, store, history, hub, pools.
//! - `pools`: `Pools` and `PoolManager`, demand-driven growth, single-flight per pool.
//! - `agents/`: `Agents`: spawn, terminate, drain moves, reschedule and restore placement.
//! - `workers/`: `Supervisor`: worker processes started, watched, stopped, adopted.
//! - `tasks/`: `Tasks`: work for the agents: submit, ask, broadcast, wait, cancel, retry.
//! - `background/`: crashes, reaper, housekeeping, restore, history, tend and autoscale loops.
//! - `events`: `EventHub`, wait on worker events with a registry poll as fallback.
//! - `feed`: `Feed`, every event of the pools, numbered, with a replay buffer.
//! - `prometheus`: the metrics recorder, and the gauges read from the registry at scrape time.
//! - `startup`: reaching the registry and the store, with retries.
//! - `http`: serving with read timeouts, and the 503 gate while startup waits.
//! - `limits`: query length, JSON depth and read timeouts against hostile clients.
//! - [`api`]: the axum routes, one file per resource, and `ApiError`.
//! - [`error`]: the one error type, `MasterError`.

mod agents;
pub mod api;
pub mod auth;
mod background;
pub mod config;
mod core;
pub mod error;
mod events;
pub mod feed;
mod http;
mod limits;
pub mod master;
mod pools;
mod prometheus;
mod startup;
mod tasks;
mod workers;

pub use api::app;
pub use config::MasterConfig;
pub use error::MasterError;
pub use master::Master;
pub use startup::open_store;
pub use tasks::Submitted;

use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs the master on `listener` until `shutdown` is cancelled, then stops it. The listener
/// answers from the start: with 503 naming what startup waits for (Redis, the database) until
/// the master is ready, so a load balancer or a person sees a cause, not a hang.
pub async fn run(
    listener: TcpListener,
    mut config: MasterConfig,
    shutdown: CancellationToken,
) -> Result<(), MasterError> {
    let addr = listener.local_addr()?;
    startup::private_dir(&config.data_dir)?;
    if config.secret_key.is_none() {
        config.secret_key = Some(startup::secret_key(&config.data_dir)?);
    }
    let gate = Arc::new(http::Gate::default());
    let gated = http::gated(gate.clone(), config.http_body_timeout, config.http_limits);
    let server = tokio::spawn(http::serve(
        listener,
        gated,
        config.http_header_timeout,
        config.http_limits.max_connections,
        shutdown.clone(),
    ));
    gate.waiting_for(config.backend.as_str());
    let Some((registry, mut server_socket)) = startup::registry(&config, &shutdown).await? else {
        let _ = server.await;
        return Ok(());
    };
    gate.waiting_for("database");
    let Some(store) = startup::store(&config, &shutdown).await? else {
        let _ = server.await;
        return Ok(());
    };
    let disconnects = server_socket.as_mut().and_then(|s| s.take_closed());
    let master = Master::start(config, registry, store, disconnects).await?;
    let on_signal = master.clone();
    let signalled = shutdown.clone();
    tokio::spawn(async move {
        signalled.cancelled().await;
        // In-flight spawns stop waiting for room at once instead of holding up shutdown.
        on_signal.begin_shutdown();
    });
    gate.open(app(master.clone()));
    tracing::info!(%addr, pools = ?master.pool_names(), "agentpool master ready");
    let _ = server.await;
    master.shutdown().await;
    drop(server_socket);
    Ok(())
}
