//! [`Agents`]: placing agents and moving them: spawn (one or many), terminate, moves off a
//! draining worker, and placing the agents of a dead worker again.
//!
//! - `requests`: spawn requests, all or nothing, with idempotency keys and rollback.
//! - `spawn`: placing a new agent, growth of the pool when it is full, waiting for it to run.
//! - `terminate`: stopping an agent and giving its slot back.
//! - `drain`: a worker out of placement, its agents moved, then stopped.
//! - `reschedule`: orphans placed again by their restart policy (`restart_history` counts).

mod drain;
mod requests;
mod reschedule;
mod restart_history;
mod spawn;
mod terminate;

pub use requests::SpawnOrder;

use crate::core::Core;
use crate::workers::Supervisor;
use agentpool_types::ProcessId;
use restart_history::RestartHistory;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub(crate) struct Agents {
    core: Arc<Core>,
    supervisor: Arc<Supervisor>,
    /// Reschedules per agent, for the restart intensity limit.
    restarts: RestartHistory,
    /// Workers being drained now: a second drain of one is refused, not run twice.
    draining: Mutex<HashSet<ProcessId>>,
}

impl Agents {
    pub fn new(core: Arc<Core>, supervisor: Arc<Supervisor>) -> Self {
        Self {
            core,
            supervisor,
            restarts: RestartHistory::default(),
            draining: Mutex::default(),
        }
    }
}
