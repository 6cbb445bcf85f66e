//! Restore: the store's desired state, reconciled against the registry, at start, on a timer
//! and whenever the registry looks wiped.
//!
//! An agent that should run but is in no worker is placed again, and so is an orphan that no
//! worker took (reaped by `agentpool cleanup`, or by a master that died before placing it); one
//! that runs but should be stopped is terminated; a worker the store says to drain, and the
//! registry shows back in placement (Redis forgot), is drained again; one left `stopping` past
//! any terminate's time (its master died mid-way, or the autoscaler's) is terminated. An
//! agent must be missing
//! on two rounds in a row before it is placed again: after Redis loses its data, workers put
//! back what they run within a heartbeat, and a restore racing them would start second copies.

use crate::agents::Agents;
use crate::core::Core;
use crate::error::{MasterError, Result};
use agentpool_registry::RegistryError;
use agentpool_store::{AgentEventKind, AgentRow, DesiredState, Update};
use agentpool_types::{Agent, AgentId, AgentState, ProcessState, Task, TaskState};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Beyond the grace period, how long a terminate may take (its store and registry calls are
/// bounded to a few seconds each) before an agent still `stopping` counts as abandoned.
const ABANDONED_STOP_MARGIN: Duration = Duration::from_secs(10);

pub(crate) struct Restorer {
    pub core: Arc<Core>,
    pub agents: Arc<Agents>,
    /// Agents found missing, or orphaned with no worker, since when.
    missing_since: HashMap<AgentId, Instant>,
    /// The store's unfinished tasks are in the registry (checked at start and after a wipe).
    tasks_checked: bool,
}

impl Restorer {
    pub fn new(core: Arc<Core>, agents: Arc<Agents>) -> Self {
        Self {
            core,
            agents,
            missing_since: HashMap::new(),
            tasks_checked: false,
        }
    }

    pub async fn run(mut self) {
        let core = self.core.clone();
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "restore round failed; retrying later");
            }
            // Two rounds close together after a wake-up confirm what is really missing.
            let next = if self.missing_since.is_empty() {
                core.config.reconcile_interval
            } else {
                core.config.heartbeat_interval * 2
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = core.restore_soon.notified() => self.tasks_checked = false,
                _ = core.stopping.cancelled() => return,
            }
        }
    }

    async fn round(&mut self) -> Result<()> {
        let core = self.core.clone();
        let wanted = core
            .store
            .agents_with_desired(DesiredState::Running)
            .await?;
        let live = core.registry.agents(core.pools.names()).await?;
        let (missing, stranded) = self.due(&wanted, &live);
        for row in missing {
            self.restore_agent(row).await;
        }
        for id in stranded {
            self.place_stranded(&id).await;
        }
        // Live agents the store does not want running: only those are looked up, so a round
        // costs what runs, not every agent ever stopped.
        let wanted_ids: HashSet<&AgentId> = wanted.iter().map(|r| &r.spec.agent_id).collect();
        let others: Vec<AgentId> = live
            .iter()
            .map(|a| a.id())
            .filter(|id| !wanted_ids.contains(id))
            .cloned()
            .collect();
        for (id, desired) in core.store.desired_states(&others).await? {
            if desired == DesiredState::Stopped {
                tracing::info!(agent_id = %id, "restore: terminating an agent whose desired state is stopped");
                self.agents.terminate(&id, false).await?;
            }
        }
        for id in self.abandoned_stops(&live) {
            tracing::warn!(agent_id = %id, "restore: finishing a terminate that was cut short");
            self.agents.terminate(&id, false).await?;
        }
        self.resume_drains().await?;
        if !self.tasks_checked {
            self.restore_tasks().await?;
            self.tasks_checked = true;
        }
        // Listings are complete once nothing is left waiting for its second look.
        if self.missing_since.is_empty() {
            self.core.restored.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Agents `stopping` for longer than any terminate takes: whoever was stopping them died.
    fn abandoned_stops(&self, live: &[Agent]) -> Vec<AgentId> {
        let config = &self.core.config;
        let limit = config.shutdown_grace + ABANDONED_STOP_MARGIN;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(limit).unwrap_or_default();
        live.iter()
            .filter(|a| a.status == AgentState::Stopping)
            .filter(|a| {
                chrono::DateTime::parse_from_rfc3339(&a.updated_at).is_ok_and(|t| t < cutoff)
            })
            .map(|a| a.id().clone())
            .collect()
    }

    /// Puts back in the registry the unfinished tasks it does not know (it lost its data, or
    /// lives in a master that restarted): queued again, with the attempts they already had.
    async fn restore_tasks(&self) -> Result<()> {
        let unfinished = self.core.store.unfinished_tasks().await?;
        let mut lost = Vec::new();
        for task in unfinished {
            if self.core.registry.task(task.id()).await?.is_none() {
                lost.push(Task {
                    status: TaskState::Queued,
                    ..task
                });
            }
        }
        if lost.is_empty() {
            return Ok(());
        }
        let queued = self.core.registry.submit_tasks(&lost).await?;
        tracing::warn!(
            tasks = queued,
            "restore: unfinished tasks the registry lost are queued again"
        );
        Ok(())
    }

    /// The wanted agents missing from the registry, and the orphans no worker holds, that
    /// were so on the previous round too.
    fn due<'a>(
        &mut self,
        wanted: &'a [AgentRow],
        live: &[Agent],
    ) -> (Vec<&'a AgentRow>, Vec<AgentId>) {
        let live_ids: HashSet<&AgentId> = live.iter().map(|a| a.id()).collect();
        let grace = self.core.config.heartbeat_interval * 2;
        let now = Instant::now();
        let mut still = HashMap::new();
        let mut ripe = |id: &AgentId| {
            let since = *self.missing_since.get(id).unwrap_or(&now);
            let due = now.duration_since(since) >= grace;
            if !due {
                still.insert(id.clone(), since);
            }
            due
        };
        let missing = wanted
            .iter()
            .filter(|r| !live_ids.contains(&r.spec.agent_id))
            .filter(|r| ripe(&r.spec.agent_id))
            .collect();
        let stranded = live
            .iter()
            .filter(|a| a.status == AgentState::Orphaned && a.process_id.is_none())
            .map(|a| a.id().clone())
            .filter(|id| ripe(id))
            .collect();
        self.missing_since = still;
        (missing, stranded)
    }

    async fn restore_agent(&self, row: &AgentRow) {
        let id = &row.spec.agent_id;
        if self.core.pool(&row.spec.pool_name).is_err() {
            tracing::warn!(agent_id = %id, pool = %row.spec.pool_name, "restore: pool no longer configured");
            return;
        }
        match self.agents.restore(&row.spec).await {
            Ok(process) => {
                tracing::info!(agent_id = %id, process_id = %process, "restore: agent placed again");
                self.core.record(Update::event(
                    id,
                    AgentEventKind::Rescheduled,
                    format!("restored from the store to worker {process}"),
                ));
            }
            Err(e) => tracing::error!(agent_id = %id, error = %e, "restore: cannot place agent"),
        }
    }

    /// An orphan no worker took: the reschedule its reaper owed it never came.
    async fn place_stranded(&self, id: &AgentId) {
        tracing::info!(agent_id = %id, "restore: placing an orphan that no worker took");
        match self.agents.reschedule_one(id).await {
            Ok(()) | Err(MasterError::Registry(RegistryError::AgentGone)) => {}
            Err(e) => tracing::error!(agent_id = %id, error = %e, "restore: cannot place orphan"),
        }
    }

    /// Drains the store wants that the registry forgot (it shows the worker running again).
    async fn resume_drains(&self) -> Result<()> {
        for id in self.core.store.draining_workers().await? {
            let Some(p) = self.core.registry.process(&id).await? else {
                continue;
            };
            if p.status != ProcessState::Running {
                continue;
            }
            tracing::warn!(process_id = %id, "restore: the registry forgot a drain; draining again");
            let agents = self.agents.clone();
            self.core.tasks.spawn(async move {
                match agents.drain(&id).await {
                    Ok(_) | Err(MasterError::DrainInProgress(_)) => {}
                    Err(e) => tracing::error!(process_id = %id, error = %e, "resumed drain failed"),
                }
            });
        }
        Ok(())
    }
}
