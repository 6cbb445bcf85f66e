//! `Core`: what every part of the master shares: configuration, the registry, the store and its
//! history writer, the event hub, the pools, and the shutdown token with the tracker of
//! background work. It holds no behaviour of its own beyond small helpers.

use crate::config::MasterConfig;
use crate::error::{MasterError, Result};
use crate::events::EventHub;
use crate::feed::Feed;
use crate::pools::{PoolManager, Pools};
use agentpool_registry::Registry;
use agentpool_store::{BatchWriter, Store, Update};
use agentpool_types::{Event, TaskRules};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, broadcast};

/// Task events kept for a slow event-stream reader before it misses some.
const TASK_EVENT_BUFFER: usize = 4_096;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) struct Core {
    pub config: MasterConfig,
    pub registry: Arc<dyn Registry>,
    /// Desired state and history.
    pub store: Arc<dyn Store>,
    /// Status changes and events, written off the request path.
    pub history: BatchWriter,
    pub hub: EventHub,
    pub pools: Pools,
    /// Cancelled when the master begins to shut down.
    pub stopping: CancellationToken,
    /// Background work to wait for at shutdown; every task in it ends on `stopping`.
    pub tasks: TaskTracker,
    /// This master's identity, as holder of registry locks.
    pub id: String,
    /// Wakes the restore loop early (the registry looked wiped).
    pub restore_soon: Notify,
    /// Wakes the autoscaler early (tasks were submitted).
    pub autoscale_soon: Notify,
    /// Set once the first restore round has reconciled the registry with the store: until
    /// then a listing could miss agents that are about to be placed again.
    pub restored: AtomicBool,
    /// Every task announcement and progress report, for the event streams that follow tasks.
    pub task_events: broadcast::Sender<Event>,
    /// Everything that happens, for `GET /api/v1/events`.
    pub feed: Feed,
    /// When queued tasks were queued, for the queue-wait histogram.
    pub task_clock: crate::prometheus::TaskClock,
}

impl Core {
    pub fn new(config: MasterConfig, registry: Arc<dyn Registry>, store: Arc<dyn Store>) -> Self {
        Self {
            pools: Pools::new(&config.pools),
            config,
            registry,
            history: BatchWriter::spawn(store.clone()),
            store,
            hub: EventHub::default(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            id: uuid::Uuid::now_v7().to_string(),
            restore_soon: Notify::new(),
            autoscale_soon: Notify::new(),
            restored: AtomicBool::new(false),
            task_events: broadcast::channel(TASK_EVENT_BUFFER).0,
            feed: Feed::default(),
            task_clock: Default::default(),
        }
    }

    pub fn pool(&self, name: &str) -> Result<&PoolManager> {
        self.pools.get(name)
    }

    /// Every pool with its task rules, as the registry records them.
    pub fn pool_rules(&self) -> Vec<(String, TaskRules)> {
        self.pools
            .iter()
            .map(|p| (p.name().to_owned(), self.config.task_rules(&p.spec)))
            .collect()
    }

    /// Queues a history record; never waits on the database.
    pub fn record(&self, update: Update) {
        self.history.send(update);
    }

    /// Fails reads that would answer wrongly before the first restore round.
    pub fn ensure_restored(&self) -> Result<()> {
        if !self.restored.load(Ordering::Acquire) {
            return Err(MasterError::Restoring);
        }
        Ok(())
    }

    /// Fails new work once shutdown has begun.
    pub fn ensure_running(&self) -> Result<()> {
        if self.stopping.is_cancelled() {
            return Err(MasterError::ShuttingDown);
        }
        Ok(())
    }
}
