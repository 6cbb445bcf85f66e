//! Terminating an agent: desired `stopped` first, so no restore brings it back; then marked
//! `stopping` in the registry, so no move or reschedule in flight places it again; stopped by
//! its worker; its slot given back.
//!
//! A terminate of an agent the store knows never answers 404, whatever else is under way: a
//! concurrent terminate that got there first, a Redis that lost its data. It answers with the
//! agent stopped.

use super::Agents;
use crate::error::{MasterError, Result};
use agentpool_registry::Target;
use agentpool_store::{AgentEventKind, DesiredState, Update};
use agentpool_types::{Agent, AgentId, AgentState, Command, CommandKind, now_rfc3339};

impl Agents {
    /// Stops an agent and removes it. Graceful: the worker stops it and reports, then its slot
    /// is released; a worker that does not answer within the grace period is overruled.
    pub async fn terminate(&self, id: &AgentId, graceful: bool) -> Result<Agent> {
        let (store, registry) = (&self.core.store, &self.core.registry);
        let known = store.set_desired_state(id, DesiredState::Stopped).await?;
        let Some(marked) = registry.mark_agent(id, AgentState::Stopping, None).await? else {
            return self.stopped_without_registry(id, known).await;
        };
        let stop = |graceful| {
            Command::new(CommandKind::Terminate {
                agent_id: id.clone(),
                graceful,
            })
        };
        // One that already ended (failed, quarantined) has nothing left to stop gracefully.
        let running = !marked.status.is_terminal();
        if let (true, true, Some(process)) = (graceful, running, &marked.process_id) {
            self.send_best_effort(Target::Process(process), &stop(true))
                .await;
            self.wait_stopped(id).await?;
        }
        let released = registry.release(id).await?;
        // Whoever holds it now is told, in case a move changed its worker meanwhile.
        let mut last = released.clone().unwrap_or(marked);
        if let Some(process) = &last.process_id {
            self.send_best_effort(Target::Process(process), &stop(false))
                .await;
        }
        if released.is_some() {
            tracing::info!(agent_id = %id, pool = %last.spec.pool_name, "agent terminated");
            metrics::counter!("agentpool_agent_terminations_total", "pool" => last.spec.pool_name.clone())
                .increment(1);
            let how = if graceful { "graceful" } else { "forced" };
            self.core
                .record(Update::status(id, AgentState::Stopped, None));
            self.core
                .record(Update::event(id, AgentEventKind::Terminated, how));
        }
        last.status = AgentState::Stopped;
        last.updated_at = now_rfc3339();
        Ok(last)
    }

    /// Waits, up to the grace period, for the worker to report the agent ended.
    async fn wait_stopped(&self, id: &AgentId) -> Result<()> {
        let registry = &self.core.registry;
        let grace = self.core.config.shutdown_grace;
        let stopped = self
            .core
            .hub
            .wait(id.as_str(), grace, || async {
                let a = registry.agent(id).await?;
                Ok::<_, MasterError>(a.is_none_or(|a| a.status.is_terminal()).then_some(()))
            })
            .await?;
        if stopped.is_none() {
            tracing::warn!(agent_id = %id, "agent did not stop within the grace period; releasing it anyway");
        }
        Ok(())
    }

    /// The registry no longer has the agent: a concurrent terminate released it, or Redis lost
    /// its data. The store says whether it exists. After a wipe its worker may still run it
    /// and register it again, so its pool's workers are told to stop it (the restore loop
    /// would too, a round later).
    async fn stopped_without_registry(&self, id: &AgentId, known: bool) -> Result<Agent> {
        let row = match known {
            true => self.core.store.agent(id).await?,
            false => None,
        };
        let Some(row) = row else {
            return Err(MasterError::UnknownAgent(id.to_string()));
        };
        let stop = Command::new(CommandKind::Terminate {
            agent_id: id.clone(),
            graceful: false,
        });
        self.send_best_effort(Target::Pool(&row.spec.pool_name), &stop)
            .await;
        self.core
            .record(Update::status(id, AgentState::Stopped, None));
        Ok(Agent {
            process_id: None,
            status: AgentState::Stopped,
            restarts: row.restarts,
            registered_at: row
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            updated_at: now_rfc3339(),
            error: row.last_error,
            epoch: 0,
            current_task: None,
            tasks_done: 0,
            tasks_failed: 0,
            spec: row.spec,
        })
    }
}
