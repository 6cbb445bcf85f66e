//! The worker processes this master started, and their lifecycle as the master sees it.

use agentpool_types::ProcessId;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

/// What the master is doing with a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Registered and in placement.
    Running,
    /// Out of placement; its agents are moving elsewhere.
    Draining,
    /// Asked to exit: its exit is expected and not a crash.
    Stopping,
}

/// One worker process the master started. The `Child` itself lives in its monitor task.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub pool: String,
    pub pid: u32,
    pub state: WorkerState,
    /// Turns `true` when the process has exited and was reaped.
    pub exited: watch::Receiver<bool>,
}

#[derive(Default)]
pub struct Workers {
    map: Mutex<HashMap<ProcessId, WorkerInfo>>,
}

impl Workers {
    fn map(&self) -> MutexGuard<'_, HashMap<ProcessId, WorkerInfo>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: ProcessId, info: WorkerInfo) {
        self.map().insert(id, info);
    }

    pub fn remove(&self, id: &ProcessId) -> Option<WorkerInfo> {
        self.map().remove(id)
    }

    pub fn get(&self, id: &ProcessId) -> Option<WorkerInfo> {
        self.map().get(id).cloned()
    }

    /// Sets the state; returns the previous one, or `None` for an unknown worker.
    pub fn set_state(&self, id: &ProcessId, state: WorkerState) -> Option<WorkerState> {
        self.map()
            .get_mut(id)
            .map(|w| std::mem::replace(&mut w.state, state))
    }

    /// Workers of a pool that count against its `max_processes`.
    pub fn live(&self, pool: &str) -> u32 {
        let n = self.map().values().filter(|w| w.pool == pool).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn all(&self) -> Vec<(ProcessId, WorkerInfo)> {
        self.map()
            .iter()
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect()
    }
}
