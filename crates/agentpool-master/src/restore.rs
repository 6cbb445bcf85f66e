//! Restore: the store's desired state, reconciled against the registry, at start, on a timer
//! and whenever the registry looks wiped.
//!
//! An agent that should run but is in no worker is placed again; one that runs but should be
//! stopped is terminated. An agent must be missing on two rounds in a row before it is placed
//! again: after Redis loses its data, workers put back what they run within a heartbeat, and a
//! restore racing them would start second copies.

use crate::master::Master;
use agentpool_registry::Reservation;
use agentpool_store::{AgentEventKind, AgentRow, DesiredState, Update};
use agentpool_types::AgentId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

impl Master {
    pub async fn restore_loop(self: Arc<Self>) {
        let mut missing_since: HashMap<AgentId, Instant> = HashMap::new();
        loop {
            if let Err(e) = self.restore_round(&mut missing_since).await {
                tracing::warn!(error = %e, "restore round failed; retrying later");
            }
            // Two rounds close together after a wake-up confirm what is really missing.
            let next = if missing_since.is_empty() {
                self.config.reconcile_interval
            } else {
                self.config.heartbeat_interval * 2
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = self.restore_soon.notified() => {}
                _ = self.stopping.cancelled() => return,
            }
        }
    }

    async fn restore_round(
        self: &Arc<Self>,
        missing_since: &mut HashMap<AgentId, Instant>,
    ) -> Result<(), crate::MasterError> {
        let wanted = self
            .store
            .agents_with_desired(DesiredState::Running)
            .await?;
        let unwanted = self
            .store
            .agents_with_desired(DesiredState::Stopped)
            .await?;
        let live = self.registry.agents(self.pool_names()).await?;
        let live_ids: HashSet<&AgentId> = live.iter().map(|a| &a.agent_id).collect();

        let grace = self.config.heartbeat_interval * 2;
        let now = Instant::now();
        let mut still_missing = HashMap::new();
        for row in wanted.iter().filter(|r| !live_ids.contains(&r.agent_id)) {
            let since = *missing_since.get(&row.agent_id).unwrap_or(&now);
            if now.duration_since(since) >= grace {
                self.restore_agent(row).await;
            } else {
                still_missing.insert(row.agent_id.clone(), since);
            }
        }
        *missing_since = still_missing;

        let stop: HashSet<&AgentId> = unwanted.iter().map(|r| &r.agent_id).collect();
        for agent in live.iter().filter(|a| stop.contains(&a.agent_id)) {
            tracing::info!(agent_id = %agent.agent_id, "restore: terminating an agent whose desired state is stopped");
            self.terminate(&agent.agent_id, false).await?;
        }
        Ok(())
    }

    async fn restore_agent(self: &Arc<Self>, row: &AgentRow) {
        let Ok(pool) = self.pool(&row.pool) else {
            tracing::warn!(agent_id = %row.agent_id, pool = %row.pool, "restore: pool no longer configured");
            return;
        };
        let reservation = Reservation {
            agent_id: row.agent_id.clone(),
            pool: row.pool.clone(),
            placement: pool.spec.placement,
            role: row.role.clone(),
            name: row.name.clone(),
            metadata: row.config.to_string(),
            move_from: None,
            must_exist: false,
            restart: None,
        };
        match self.place_and_start(&reservation).await {
            Ok(process) => {
                tracing::info!(agent_id = %row.agent_id, process_id = %process, "restore: agent placed again");
                self.record(Update::event(
                    &row.agent_id,
                    AgentEventKind::Rescheduled,
                    format!("restored from the store to worker {process}"),
                ));
            }
            Err(e) => {
                tracing::error!(agent_id = %row.agent_id, error = %e, "restore: cannot place agent")
            }
        }
    }
}
