//! Draining a worker: out of placement, its agents placed elsewhere, then it exits.

use crate::error::{MasterError, Result};
use crate::master::Master;
use crate::workers::WorkerState;
use agentpool_registry::{ReapMode, Target};
use agentpool_types::{Command, CommandKind, ProcessId};
use std::sync::Arc;

impl Master {
    /// Drains and stops one worker; returns how many agents moved.
    pub async fn drain(self: &Arc<Self>, id: &ProcessId) -> Result<usize> {
        self.ensure_running()?;
        let agents = self
            .registry
            .drain(id, false)
            .await?
            .ok_or_else(|| MasterError::UnknownProcess(id.to_string()))?;
        self.workers.set_state(id, WorkerState::Draining);
        tracing::info!(process_id = %id, agents = agents.len(), "draining worker");
        let moves = agents.iter().map(|a| self.move_agent(a, Some(id)));
        let moved = futures::future::join_all(moves).await;
        let failed: Vec<String> = moved
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        if let Some(first) = failed.first() {
            // The worker stays draining with the agents that could not move; nothing is lost.
            tracing::error!(process_id = %id, failed = failed.len(), "drain incomplete: {first}");
            return Err(MasterError::DrainIncomplete {
                process: id.to_string(),
                failed: failed.len(),
                first: first.clone(),
            });
        }
        self.stop_any_worker(id).await?;
        Ok(agents.len())
    }

    /// Stops a worker whether or not this master started it: its own by signal, any other by
    /// a shutdown command and reaping.
    async fn stop_any_worker(&self, id: &ProcessId) -> Result<()> {
        if self.workers.get(id).is_some() {
            self.stop_worker(id).await;
            return Ok(());
        }
        let grace = u64::try_from(self.config.shutdown_grace.as_millis()).unwrap_or(u64::MAX);
        let cmd = Command::new(CommandKind::Shutdown { grace_ms: grace });
        self.registry.send(Target::Process(id), &cmd).await?;
        self.registry.reap(id, ReapMode::Delete).await?;
        Ok(())
    }
}
