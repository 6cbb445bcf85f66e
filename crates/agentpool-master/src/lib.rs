//! The agentpool master: pool managers, worker processes, and the REST API.
//!
//! - [`config`]: `MasterConfig`, plain data filled in by the binary, with named defaults.
//! - [`master`]: `Master`, the state shared by routes and background tasks; pool stats.
//! - [`agents`]: spawn (one or many), terminate, move and reschedule agents.
//! - [`drain`]: take a worker out of placement, move its agents, stop it.
//! - [`lifecycle`]: start a worker and wait for its registration, monitor it, stop it.
//! - [`pools`]: `PoolManager`, demand-driven growth, single-flight per pool.
//! - [`reaper`]: finds workers with a stale heartbeat and reaps them, one master at a time.
//! - [`reschedule`]: places orphaned agents again by their restart policy.
//! - [`housekeeping`]: the periodic chores: idle workers drained, `min_processes` kept.
//! - [`workers`]: the worker processes this master started and their states.
//! - [`spawner`]: the OS side of a worker: exec, process group, log file, signals.
//! - [`events`]: `EventHub`, wait on worker events with a registry poll as fallback.
//! - [`history`]: worker events become statuses and audit events in the store.
//! - [`restore`]: the store's desired state reconciled against the registry.
//! - [`adopt`]: a new master takes over the live workers of the one before.
//! - [`api`]: the axum routes, one file per resource, and `ApiError`.
//! - [`error`]: the one error type, `MasterError`.

pub mod adopt;
pub mod agents;
pub mod api;
pub mod config;
pub mod drain;
pub mod error;
pub mod events;
pub mod history;
pub mod housekeeping;
pub mod lifecycle;
pub mod master;
pub mod pools;
pub mod reaper;
pub mod reschedule;
pub mod restore;
pub mod spawner;
pub mod workers;

pub use api::app;
pub use config::MasterConfig;
pub use error::MasterError;
pub use master::Master;

use agentpool_registry::embedded::{EmbeddedRegistry, EmbeddedServer};
use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{Registry, RegistryError};
use agentpool_store::{Store, StoreError, connect_postgres, connect_sqlite};
use agentpool_types::mask_url;
use config::{Backend, StoreConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Longest pause between attempts to reach Redis at startup.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs the master on `listener` until `shutdown` is cancelled, then stops its workers.
pub async fn run(
    listener: TcpListener,
    config: MasterConfig,
    shutdown: CancellationToken,
) -> Result<(), MasterError> {
    let (registry, server): (Arc<dyn Registry>, _) = match config.backend {
        Backend::Redis => {
            let Some(registry) = connect_registry(&config, &shutdown).await? else {
                return Ok(());
            };
            (Arc::new(registry), None)
        }
        Backend::Embedded => {
            let registry = EmbeddedRegistry::new();
            let path = config.socket_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let server = EmbeddedServer::bind(&path, registry.clone()).await?;
            tracing::info!(socket = %path.display(), "embedded registry: workers connect over a Unix socket");
            (Arc::new(registry), Some(server))
        }
    };
    let Some(store) = connect_store(&config, &shutdown).await? else {
        return Ok(());
    };
    store.upsert_pools(&config.pools).await?;
    let master = Arc::new(Master::new(config, registry, store));
    let mut server = server;
    if let Some(closed) = server.as_mut().and_then(EmbeddedServer::take_closed) {
        tokio::spawn(master.clone().reap_on_disconnect(closed));
    }
    master.registry.init_pools(master.pool_names()).await?;
    let events = master.registry.events().await?;
    tokio::spawn(master.clone().pump_events(events));
    if master.config.backend == Backend::Redis {
        let adopted = master.adopt_workers().await?;
        if adopted > 0 {
            tracing::info!(adopted, "took over the workers of a previous master");
        }
    }
    master.start_minimum();
    tokio::spawn(master.clone().reap_loop());
    tokio::spawn(master.clone().housekeeping_loop());
    tokio::spawn(master.clone().restore_loop());

    let stopping = master.stopping.clone();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        on_signal.cancelled().await;
        // In-flight spawns stop waiting for room at once instead of holding up shutdown.
        stopping.cancel();
    });
    tracing::info!(addr = %listener.local_addr()?, pools = ?master.pool_names(), "agentpool master listening");
    axum::serve(listener, app(master.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    master.shutdown().await;
    drop(server);
    Ok(())
}

/// Opens the store, retrying with backoff while the database is down. `None` if shutdown came
/// first.
async fn connect_store(
    config: &MasterConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<dyn Store>>, MasterError> {
    let mut delay = Duration::from_millis(100);
    loop {
        let opened: Result<Arc<dyn Store>, StoreError> = match &config.store {
            StoreConfig::Sqlite(path) => connect_sqlite(path).await.map(|s| Arc::new(s) as _),
            StoreConfig::Postgres { direct, runtime } => {
                connect_postgres(direct, runtime.as_deref())
                    .await
                    .map(|s| Arc::new(s) as _)
            }
        };
        match opened {
            Ok(store) => {
                tracing::info!(backend = store.backend(), "store ready");
                return Ok(Some(store));
            }
            Err(e) if e.is_unavailable() => {
                tracing::error!(error = %e, retry_in = ?delay, "database unreachable; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(CONNECT_BACKOFF_MAX);
    }
}

/// Opens the configured store once (migrations included).
pub async fn open_store(store: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match store {
        StoreConfig::Sqlite(path) => connect_sqlite(path).await.map(|s| Arc::new(s) as _),
        StoreConfig::Postgres { direct, runtime } => connect_postgres(direct, runtime.as_deref())
            .await
            .map(|s| Arc::new(s) as _),
    }
}

/// Connects to Redis, retrying with backoff while it is down. `None` if shutdown came first.
async fn connect_registry(
    config: &MasterConfig,
    shutdown: &CancellationToken,
) -> Result<Option<RedisRegistry>, MasterError> {
    let url = mask_url(&config.redis_url);
    let mut delay = Duration::from_millis(100);
    loop {
        match RedisRegistry::connect(&config.redis_url, &config.key_prefix).await {
            Ok(r) => {
                tracing::info!(redis = %url, "connected to redis");
                return Ok(Some(r));
            }
            Err(RegistryError::Unavailable(e)) => {
                tracing::error!(redis = %url, error = %e, retry_in = ?delay, "redis unreachable; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(CONNECT_BACKOFF_MAX);
    }
}

impl Master {
    /// With `stop_workers_on_exit`, stops every worker (agents first, then processes, within
    /// the grace period, then SIGKILL) and removes them from the registry. Flushes history.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let workers = self.workers.all();
        // Embedded workers cannot outlive the registry they live in.
        if self.config.stop_workers_on_exit || self.config.backend == Backend::Embedded {
            tracing::info!(workers = workers.len(), "stopping workers");
            let stops = workers.iter().map(|(id, _)| self.stop_worker(id));
            futures::future::join_all(stops).await;
        } else {
            tracing::info!(
                workers = workers.len(),
                "leaving workers running for the next master to adopt (--stop-workers stops them)"
            );
        }
        self.tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running after the grace period");
        }
        if tokio::time::timeout(self.config.shutdown_grace, self.history.clone().close())
            .await
            .is_err()
        {
            tracing::warn!("history not fully written: the database did not answer in time");
        }
        tracing::info!("master stopped");
    }
}
