//! Placing agents again: after their worker died, by their restart policy, and from the
//! store's desired state (restore).
//!
//! A dead worker is a failure for every agent it held. `permanent` and `transient` agents are
//! placed again, at once the first time and with the policy's backoff after that; past the
//! intensity limit they are `quarantined`. `temporary` agents are removed. Nothing is placed
//! while the master shuts down: the store still wants those agents, and the next master
//! places them.

use super::Agents;
use crate::error::{MasterError, Result};
use agentpool_registry::{RegistryError, Reservation};
use agentpool_store::{AgentEventKind, DesiredState, Update};
use agentpool_types::restart::{Decision, Ending, decide};
use agentpool_types::{AgentId, AgentSpec, AgentState, ProcessId};
use std::sync::Arc;

impl Agents {
    /// Places orphaned agents again, in the background.
    pub fn reschedule(self: &Arc<Self>, agents: Vec<AgentId>, from: &ProcessId) {
        for id in agents {
            self.core
                .record(Update::status(&id, AgentState::Orphaned, None));
            self.core.record(Update::event(
                &id,
                AgentEventKind::Orphaned,
                format!("worker {from} died"),
            ));
            let me = self.clone();
            self.core.tasks.spawn(async move {
                match me.reschedule_one(&id).await {
                    Ok(()) | Err(MasterError::Registry(RegistryError::AgentGone)) => {}
                    Err(MasterError::ShuttingDown) => {
                        tracing::info!(agent_id = %id, "orphan left for the next master to place");
                    }
                    Err(e) => tracing::error!(agent_id = %id, error = %e, "cannot place orphaned agent again"),
                }
            });
        }
    }

    /// Places one orphan again by its restart policy.
    pub async fn reschedule_one(&self, id: &AgentId) -> Result<()> {
        let Some(agent) = self.core.registry.agent(id).await? else {
            return Ok(());
        };
        let pool = self.core.pool(&agent.spec.pool_name)?;
        let policy = agent.spec.restart_policy(&pool.spec);
        let limits = pool.spec.restart_limits();
        let recent = self.restarts.recent(id, limits.period);
        match decide(policy, limits, Ending::Failure, recent) {
            Decision::Stop => self.remove_temporary(id).await,
            Decision::Quarantine => {
                let why = format!(
                    "quarantined: its workers died {recent} times within {:?}",
                    limits.period
                );
                tracing::error!(agent_id = %id, "{why}");
                self.core
                    .registry
                    .mark_agent(id, AgentState::Quarantined, Some(&why))
                    .await?;
                Ok(())
            }
            Decision::Restart { after } => {
                // A dead worker is rarely the agent's fault: the first move is immediate.
                if recent > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(after) => {}
                        _ = self.core.stopping.cancelled() => return Err(MasterError::ShuttingDown),
                    }
                }
                self.restarts.record(id);
                self.move_agent(id, None).await?;
                self.record_moved(id).await;
                Ok(())
            }
        }
    }

    async fn remove_temporary(&self, id: &AgentId) -> Result<()> {
        tracing::info!(agent_id = %id, "temporary agent lost with its worker: removed");
        self.core
            .store
            .set_desired_state(id, DesiredState::Stopped)
            .await?;
        self.core.registry.release(id).await?;
        self.core.record(Update::event(
            id,
            AgentEventKind::Terminated,
            "temporary agent lost with its worker",
        ));
        self.restarts.forget(id);
        Ok(())
    }

    /// Records where a rescheduled agent went, with the registry's restart count.
    async fn record_moved(&self, id: &AgentId) {
        let Ok(Some(agent)) = self.core.registry.agent(id).await else {
            return;
        };
        self.core.record(Update::Status {
            agent_id: id.clone(),
            status: agent.status,
            process_id: agent.process_id.clone(),
            restarts: Some(agent.restarts),
            last_error: None,
            at: chrono::Utc::now(),
        });
        let to = agent.process_id.map(|p| format!("to worker {p}"));
        self.core.record(Update::event(
            id,
            AgentEventKind::Rescheduled,
            to.unwrap_or_default(),
        ));
    }

    /// Places an agent the store wants running but no worker runs (restore).
    pub async fn restore(&self, spec: &AgentSpec) -> Result<ProcessId> {
        let pool = self.core.pool(&spec.pool_name)?;
        let process = self
            .place(pool, Reservation::new(spec, pool.spec.placement))
            .await?;
        self.send_spawn(spec, &process).await;
        Ok(process)
    }
}
