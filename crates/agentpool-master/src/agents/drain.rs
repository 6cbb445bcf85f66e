//! Draining a worker: out of placement, its agents placed elsewhere, then it exits.
//!
//! A drain ends with the worker stopped, or, when an agent truly cannot move, with the worker
//! back in placement and an error that says so: never a worker left draining with nowhere to
//! go. An agent terminated while the drain moves it is not a failure. The drain is desired
//! state, recorded in the store, so a Redis restart that forgets it does not end it.

use super::Agents;
use crate::error::{MasterError, Result};
use agentpool_registry::{RegistryError, Reservation, Target};
use agentpool_types::{AgentId, Command, CommandKind, ProcessId};

/// Marks a worker as being drained while it lives, so a second drain is refused.
struct InFlight<'a> {
    agents: &'a Agents,
    id: ProcessId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.agents.drains().remove(&self.id);
    }
}

impl Agents {
    fn drains(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<ProcessId>> {
        self.draining.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains and stops one worker; returns how many agents moved.
    pub async fn drain(&self, id: &ProcessId) -> Result<usize> {
        self.core.ensure_running()?;
        if !self.drains().insert(id.clone()) {
            return Err(MasterError::DrainInProgress(id.to_string()));
        }
        let _in_flight = InFlight {
            agents: self,
            id: id.clone(),
        };
        let agents = self
            .core
            .registry
            .drain(id, false)
            .await?
            .ok_or_else(|| MasterError::UnknownProcess(id.to_string()))?;
        self.core.store.set_worker_drain(id, true).await?;
        self.supervisor.mark_draining(id);
        tracing::info!(process_id = %id, agents = agents.len(), "draining worker");
        let moves = agents.iter().map(|a| self.move_agent(a, Some(id)));
        let mut moved = 0;
        let mut failed = Vec::new();
        for outcome in futures::future::join_all(moves).await {
            match outcome {
                Ok(_) => moved += 1,
                // Terminated while moving: nothing to move any more.
                Err(MasterError::Registry(RegistryError::AgentGone)) => {}
                Err(e) => failed.push(e.to_string()),
            }
        }
        if let Some(first) = failed.first() {
            return Err(self.abandon_drain(id, failed.len(), first).await);
        }
        self.supervisor.stop_any(id).await?;
        Ok(moved)
    }

    /// A drain that cannot move every agent puts the worker back to work.
    async fn abandon_drain(&self, id: &ProcessId, failed: usize, first: &str) -> MasterError {
        tracing::error!(process_id = %id, failed, "drain stopped, worker back in placement: {first}");
        if let Err(e) = self.core.registry.undrain(id).await {
            tracing::error!(process_id = %id, error = %e, "cannot put the worker back in placement");
        }
        self.supervisor.mark_running(id);
        if let Err(e) = self.core.store.set_worker_drain(id, false).await {
            tracing::warn!(process_id = %id, error = %e, "cannot clear the recorded drain");
        }
        MasterError::DrainIncomplete {
            process: id.to_string(),
            failed,
            first: first.to_owned(),
        }
    }

    /// Places an existing agent again: after a crash (`from` = None) or away from a draining
    /// worker. The old worker is told to stop it; the new one to start it.
    pub async fn move_agent(&self, id: &AgentId, from: Option<&ProcessId>) -> Result<ProcessId> {
        let agent = self
            .core
            .registry
            .agent(id)
            .await?
            .ok_or(MasterError::Registry(RegistryError::AgentGone))?;
        let pool = self.core.pool(&agent.spec.pool_name)?;
        let reservation = Reservation {
            agent: &agent.spec,
            placement: pool.spec.placement,
            move_from: from,
            must_exist: true,
        };
        let process = self.place(pool, reservation).await?;
        if let Some(old) = from {
            let stop = Command::new(CommandKind::Terminate {
                agent_id: id.clone(),
                graceful: false,
            });
            self.send_best_effort(Target::Process(old), &stop).await;
            self.record_move(id, old, &process);
        }
        self.send_spawn(&agent.spec, &process).await;
        tracing::info!(agent_id = %id, process_id = %process, "agent placed again");
        Ok(process)
    }

    /// The store follows a move at once: the old worker's "stopped" must not be the last word.
    fn record_move(&self, id: &AgentId, from: &ProcessId, to: &ProcessId) {
        use agentpool_store::{AgentEventKind, Update};
        let pending = agentpool_types::AgentState::Pending;
        self.core.record(Update::status(id, pending, Some(to)));
        self.core.record(Update::event(
            id,
            AgentEventKind::Rescheduled,
            format!("moved from draining worker {from} to {to}"),
        ));
    }
}
