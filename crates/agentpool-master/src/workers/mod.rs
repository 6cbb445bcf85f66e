//! The worker processes this master runs: [`Supervisor`] starts them, watches them until they
//! exit, stops them, and adopts those a previous master left running.
//!
//! - `table`: `Workers`, the processes and what the master is doing with each.
//! - `spawner`: the OS side: exec, environment, process group, log file, signals.
//! - `lifecycle`: start one and wait for its registration; watch it; stop it.
//! - `adopt`: take over the live workers of a previous master.
//!
//! An exit the supervisor did not ask for is a crash. It is reported on the crash channel, and
//! the crash handler (`background::crashes`) reaps the worker and places its agents again; the
//! supervisor itself knows nothing of agents.

mod adopt;
mod lifecycle;
mod spawner;
mod table;

pub use table::WorkerState;

use crate::core::Core;
use agentpool_types::ProcessId;
use std::sync::Arc;
use table::Workers;
use tokio::sync::{Semaphore, mpsc};

pub(crate) struct Supervisor {
    core: Arc<Core>,
    table: Workers,
    /// Bounds concurrent worker starts across pools.
    start_slots: Semaphore,
    /// Workers that exited without being asked to.
    crashes: mpsc::UnboundedSender<ProcessId>,
}

impl Supervisor {
    pub fn new(core: Arc<Core>, crashes: mpsc::UnboundedSender<ProcessId>) -> Self {
        Self {
            start_slots: Semaphore::new(core.config.max_concurrent_starts.max(1)),
            core,
            table: Workers::default(),
            crashes,
        }
    }

    /// Workers of a pool that count against its `max_processes`.
    pub fn live(&self, pool: &str) -> u32 {
        self.table.live(pool)
    }

    /// How many workers this master watches.
    pub fn count(&self) -> usize {
        self.table.len()
    }

    /// What the master is doing with a worker; `None` for one it does not watch.
    pub fn state(&self, id: &ProcessId) -> Option<WorkerState> {
        self.table.get(id).map(|w| w.state)
    }

    /// Takes a worker out of the running set while its agents move away.
    pub fn mark_draining(&self, id: &ProcessId) {
        self.table.set_state(id, WorkerState::Draining);
    }

    /// A drain that could not finish: the worker is running again.
    pub fn mark_running(&self, id: &ProcessId) {
        self.table.set_state(id, WorkerState::Running);
    }
}
