//! Placing agents again after their worker died, by their restart policy.
//!
//! A dead worker is a failure for every agent it held. `permanent` and `transient` agents are
//! placed again, at once the first time and with the policy's backoff after that; past the
//! intensity limit they are `quarantined`. `temporary` agents are removed.

use crate::error::MasterError;
use crate::master::Master;
use agentpool_registry::RegistryError;
use agentpool_store::{AgentEventKind, DesiredState, Update};
use agentpool_types::restart::{Decision, Ending, decide};
use agentpool_types::{AgentId, AgentState};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each agent was last placed again, per agent: the intensity window's input.
#[derive(Default)]
pub struct RestartHistory {
    times: Mutex<HashMap<AgentId, VecDeque<Instant>>>,
}

impl RestartHistory {
    /// Restarts of `id` within `period`, forgetting older ones.
    fn recent(&self, id: &AgentId, period: Duration) -> u32 {
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        let list = times.entry(id.clone()).or_default();
        list.retain(|t| t.elapsed() < period);
        u32::try_from(list.len()).unwrap_or(u32::MAX)
    }

    fn record(&self, id: &AgentId) {
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        times
            .entry(id.clone())
            .or_default()
            .push_back(Instant::now());
    }

    pub fn forget(&self, id: &AgentId) {
        self.times
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

impl Master {
    /// Places orphaned agents again, in the background.
    pub fn reschedule(self: &Arc<Self>, agents: Vec<AgentId>, from: &agentpool_types::ProcessId) {
        for id in agents {
            self.record(Update::status(&id, AgentState::Orphaned, None));
            self.record(Update::event(
                &id,
                AgentEventKind::Orphaned,
                format!("worker {from} died"),
            ));
            let master = self.clone();
            self.tasks.spawn(async move {
                match master.reschedule_one(&id).await {
                    Ok(()) | Err(MasterError::Registry(RegistryError::AgentGone)) => {}
                    Err(e) => tracing::error!(agent_id = %id, error = %e, "cannot place orphaned agent again"),
                }
            });
        }
    }

    async fn reschedule_one(self: &Arc<Self>, id: &AgentId) -> Result<(), MasterError> {
        let Some(agent) = self.registry.agent(id).await? else {
            return Ok(());
        };
        let pool = self.pool(&agent.pool_name)?;
        let policy = agent.restart.unwrap_or(pool.spec.restart);
        let limits = pool.spec.restart_limits();
        let recent = self.restarts.recent(id, limits.period);
        match decide(policy, limits, Ending::Failure, recent) {
            Decision::Stop => {
                tracing::info!(agent_id = %id, "temporary agent lost with its worker: removed");
                self.store
                    .set_desired_state(id, DesiredState::Stopped)
                    .await?;
                self.registry.release(id).await?;
                self.record(Update::event(
                    id,
                    AgentEventKind::Terminated,
                    "temporary agent lost with its worker",
                ));
                self.restarts.forget(id);
                Ok(())
            }
            Decision::Quarantine => {
                let why = format!(
                    "quarantined: its workers died {recent} times within {:?}",
                    limits.period
                );
                tracing::error!(agent_id = %id, "{why}");
                self.registry
                    .mark_agent(id, AgentState::Quarantined, Some(&why))
                    .await?;
                Ok(())
            }
            Decision::Restart { after } => {
                // A dead worker is rarely the agent's fault: the first move is immediate.
                if recent > 0 {
                    tokio::time::sleep(after).await;
                }
                self.restarts.record(id);
                self.move_agent(id, None).await?;
                self.record_restart(id, Some(AgentEventKind::Rescheduled), None)
                    .await;
                Ok(())
            }
        }
    }
}
