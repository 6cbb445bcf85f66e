//! `Master`: the state every route and background task shares.

use crate::config::MasterConfig;
use crate::error::{MasterError, Result};
use crate::events::EventHub;
use crate::pools::PoolManager;
use crate::reschedule::RestartHistory;
use crate::workers::Workers;
use agentpool_registry::Registry;
use agentpool_store::{BatchWriter, Store, Update};
use agentpool_types::{PoolStats, WorkerProcess};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Master {
    pub config: MasterConfig,
    pub registry: Arc<dyn Registry>,
    pub hub: Arc<EventHub>,
    pub workers: Workers,
    pools: HashMap<String, PoolManager>,
    /// Pool names in configuration order, for listings.
    pool_names: Vec<String>,
    /// Bounds concurrent worker starts across pools.
    pub start_slots: Semaphore,
    /// Cancelled when the master begins to shut down.
    pub stopping: CancellationToken,
    /// Background work (worker starts, monitors) to wait for at shutdown.
    pub tasks: TaskTracker,
    /// Reschedules per agent, for the restart intensity limit.
    pub restarts: RestartHistory,
    /// This master's identity, as holder of the reaper lock.
    pub id: String,
    /// Desired state and history.
    pub store: Arc<dyn Store>,
    /// Status changes and events, written off the request path.
    pub history: BatchWriter,
    /// Wakes the restore loop early (the registry looked wiped).
    pub restore_soon: tokio::sync::Notify,
}

impl Master {
    pub fn new(config: MasterConfig, registry: Arc<dyn Registry>, store: Arc<dyn Store>) -> Self {
        let pool_names = config.pools.iter().map(|p| p.name.clone()).collect();
        let pools = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), PoolManager::new(p.clone())))
            .collect();
        Self {
            start_slots: Semaphore::new(config.max_concurrent_starts.max(1)),
            config,
            registry,
            hub: Arc::default(),
            workers: Workers::default(),
            pools,
            pool_names,
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            restarts: RestartHistory::default(),
            id: uuid::Uuid::now_v7().to_string(),
            history: BatchWriter::spawn(store.clone()),
            store,
            restore_soon: tokio::sync::Notify::new(),
        }
    }

    pub fn pool(&self, name: &str) -> Result<&PoolManager> {
        self.pools
            .get(name)
            .ok_or_else(|| MasterError::UnknownPool(name.to_owned()))
    }

    pub fn pool_names(&self) -> &[String] {
        &self.pool_names
    }

    /// `/pools`: one registry round trip for all pools, plus what only the master knows.
    pub async fn pool_stats(&self, names: &[String]) -> Result<Vec<PoolStats>> {
        let counts = self.registry.pool_counts(&self.capacities(names)).await?;
        Ok(counts
            .into_iter()
            .map(|c| {
                let pool = &self.pools[&c.pool];
                let live = self.workers.live(&c.pool);
                let can_grow = live + pool.starting() < pool.spec.max_processes;
                PoolStats::new(
                    c.pool,
                    c.process_count,
                    c.total_capacity,
                    c.available_capacity,
                    c.agent_count,
                    c.active_worker_processes,
                    pool.waiting(),
                    can_grow,
                )
            })
            .collect())
    }

    /// The given pools with their capacity per worker, as the registry's counting steps take them.
    pub fn capacities(&self, names: &[String]) -> Vec<(String, u32)> {
        names
            .iter()
            .filter_map(|n| self.pools.get(n))
            .map(|p| (p.spec.name.clone(), p.spec.max_agents_per_process))
            .collect()
    }

    /// Registered workers, optionally of one pool.
    pub async fn processes(&self, pool: Option<&str>) -> Result<Vec<WorkerProcess>> {
        let mut all = self.registry.processes().await?;
        if let Some(pool) = pool {
            all.retain(|p| p.pool_name == pool);
        }
        Ok(all)
    }

    /// Queues a history record; never waits on the database.
    pub fn record(&self, update: Update) {
        self.history.send(update);
    }

    /// Fails new work once shutdown has begun.
    pub fn ensure_running(&self) -> Result<()> {
        if self.stopping.is_cancelled() {
            return Err(MasterError::ShuttingDown);
        }
        Ok(())
    }
}
