//! Agent operations: spawn (one or many), terminate, and placing orphans again.

use crate::error::{MasterError, Result};
use crate::master::Master;
use crate::pools::PoolManager;
use agentpool_registry::{Reservation, Target};
use agentpool_store::{AgentEventKind, DesiredState, NewAgent, Update};
use agentpool_types::{Agent, AgentId, AgentState, Command, CommandKind, ProcessId, RestartPolicy};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a waiting spawn sleeps between `reserve` retries when no slot wake-up comes.
/// Slots also free up by terminations, which hand out no wake-up.
const RESERVE_RETRY: Duration = Duration::from_millis(100);

/// A validated request for one agent.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    pub pool: String,
    pub role: Option<String>,
    pub name: Option<String>,
    pub config: serde_json::Value,
    /// Overrides the pool's restart policy for this agent.
    pub restart: Option<RestartPolicy>,
}

impl Master {
    /// Places an agent and tells its worker. With `wait`, returns once it runs.
    pub async fn spawn(self: &Arc<Self>, req: SpawnRequest, wait: bool) -> Result<Agent> {
        self.ensure_running()?;
        let pool = self.pool(&req.pool)?;
        let id = AgentId::new();
        let role = req.role.unwrap_or_else(|| pool.spec.role.clone());
        let short = &id.as_str()[id.as_str().len().saturating_sub(8)..];
        let reservation = Reservation {
            name: req.name.unwrap_or_else(|| format!("{role}-{short}")),
            agent_id: id.clone(),
            pool: req.pool,
            placement: pool.spec.placement,
            role,
            metadata: req.config.to_string(),
            move_from: None,
            must_exist: false,
            restart: req.restart,
        };
        // Desired state first: once the agent is placed, a crash of anything must not lose it.
        let row = NewAgent {
            agent_id: id.clone(),
            pool: reservation.pool.clone(),
            role: reservation.role.clone(),
            name: reservation.name.clone(),
            config: req.config.clone(),
        };
        self.store.insert_agent(&row).await?;
        let process = match self.place(pool, &reservation).await {
            Ok(p) => p,
            Err(e) => {
                self.abandon(&id, &e).await;
                return Err(e);
            }
        };
        self.send_spawn(&reservation, &process).await;
        if wait {
            self.wait_running(&id).await
        } else {
            self.registry
                .agent(&id)
                .await?
                .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))
        }
    }

    /// Spawns `count` agents in parallel; all or nothing: if one fails, the others are
    /// released again and the first error is returned.
    pub async fn spawn_many(self: &Arc<Self>, req: SpawnRequest, count: u32) -> Result<Vec<Agent>> {
        let all = (0..count).map(|_| self.spawn(req.clone(), true));
        let results = futures::future::join_all(all).await;
        if let Some(pos) = results.iter().position(|r| r.is_err()) {
            for agent in results.iter().flatten() {
                let _ = self.terminate(&agent.agent_id, false).await;
            }
            let mut results = results;
            return Err(results
                .swap_remove(pos)
                .err()
                .unwrap_or(MasterError::ShuttingDown));
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Stops an agent and removes it. Graceful: the worker stops it and reports, then its slot
    /// is released; a worker that does not answer within the grace period is overruled.
    pub async fn terminate(&self, id: &AgentId, graceful: bool) -> Result<Agent> {
        // Desired state first: a restore must never bring back what was asked to stop.
        self.store
            .set_desired_state(id, DesiredState::Stopped)
            .await?;
        let agent = self
            .registry
            .agent(id)
            .await?
            .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))?;
        let stop = Command::new(CommandKind::Terminate {
            agent_id: id.clone(),
            graceful,
        });
        if let (true, Some(process)) = (graceful, &agent.process_id) {
            self.send_best_effort(Target::Process(process), &stop).await;
            let stopped = self
                .hub
                .wait(id.as_str(), self.config.shutdown_grace, || async {
                    let a = self.registry.agent(id).await?;
                    Ok::<_, MasterError>(a.filter(|a| a.status.is_terminal()).map(|_| ()))
                })
                .await?;
            if stopped.is_none() {
                tracing::warn!(agent_id = %id, "agent did not stop within the grace period; releasing it anyway");
            }
        }
        let mut released = self
            .registry
            .release(id)
            .await?
            .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))?;
        if let (false, Some(process)) = (graceful, &agent.process_id) {
            self.send_best_effort(Target::Process(process), &stop).await;
        }
        tracing::info!(agent_id = %id, pool = %released.pool_name, "agent terminated");
        let how = if graceful { "graceful" } else { "forced" };
        self.record(Update::status(id, AgentState::Stopped, None));
        self.record(Update::event(id, AgentEventKind::Terminated, how));
        released.status = AgentState::Stopped;
        Ok(released)
    }

    /// Places an existing agent again: after a crash (`from` = None) or away from a draining
    /// worker. The old worker is told to stop it; the new one to start it.
    pub async fn move_agent(
        self: &Arc<Self>,
        id: &AgentId,
        from: Option<&ProcessId>,
    ) -> Result<ProcessId> {
        let agent = self
            .registry
            .agent(id)
            .await?
            .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))?;
        let pool = self.pool(&agent.pool_name)?;
        let reservation = Reservation {
            agent_id: id.clone(),
            pool: agent.pool_name.clone(),
            placement: pool.spec.placement,
            role: agent.role_type,
            name: agent.name,
            metadata: agent.metadata.to_string(),
            move_from: from.cloned(),
            must_exist: true,
            restart: agent.restart,
        };
        let process = self.place(pool, &reservation).await?;
        if let Some(old) = from {
            let stop = Command::new(CommandKind::Terminate {
                agent_id: id.clone(),
                graceful: false,
            });
            self.send_best_effort(Target::Process(old), &stop).await;
        }
        self.send_spawn(&reservation, &process).await;
        tracing::info!(agent_id = %id, process_id = %process, "agent placed again");
        Ok(process)
    }

    /// Places a reservation and tells the chosen worker to start the agent.
    pub async fn place_and_start(self: &Arc<Self>, r: &Reservation) -> Result<ProcessId> {
        let pool = self.pool(&r.pool)?;
        let process = self.place(pool, r).await?;
        self.send_spawn(r, &process).await;
        Ok(process)
    }

    /// Takes a slot for `r`, growing the pool when every worker is full.
    async fn place(self: &Arc<Self>, pool: &PoolManager, r: &Reservation) -> Result<ProcessId> {
        if let Some(p) = self.registry.reserve(r).await? {
            pool.consume_wakeup();
            return Ok(p);
        }
        let mut ticket = pool.begin_wait();
        let failures_before = pool.failures();
        let deadline = Instant::now() + self.config.worker_start_timeout * 3;
        loop {
            self.ensure_running()?;
            if let Some(p) = self.registry.reserve(r).await? {
                ticket.served();
                return Ok(p);
            }
            if pool.failures() > failures_before {
                return Err(MasterError::WorkerStart {
                    pool: pool.name().to_owned(),
                    detail: pool.last_failure(),
                });
            }
            let n = pool.plan(self.workers.live(pool.name()))?;
            self.start_workers(pool.name(), n);
            if Instant::now() >= deadline {
                return Err(MasterError::PlacementTimeout {
                    pool: pool.name().to_owned(),
                    secs: (self.config.worker_start_timeout * 3).as_secs(),
                });
            }
            ticket.await_slot(RESERVE_RETRY).await;
        }
    }

    /// A spawn that could not be placed is not wanted any more: say so in the store, so a
    /// restore does not place it later.
    async fn abandon(&self, id: &AgentId, why: &MasterError) {
        if let Err(e) = self
            .store
            .set_desired_state(id, DesiredState::Stopped)
            .await
        {
            tracing::warn!(agent_id = %id, error = %e, "cannot mark an unplaced agent stopped");
        }
        self.record(Update::event(
            id,
            AgentEventKind::Terminated,
            format!("not placed: {why}"),
        ));
    }

    async fn send_spawn(&self, r: &Reservation, process: &ProcessId) {
        let cmd = Command::new(CommandKind::Spawn {
            agent_id: r.agent_id.clone(),
            role: r.role.clone(),
            name: r.name.clone(),
            config: serde_json::from_str(&r.metadata).unwrap_or_default(),
            restart: r.restart,
        });
        self.send_best_effort(Target::Process(process), &cmd).await;
    }

    /// A command lost here is made up for by the worker's reconcile on its next heartbeat.
    async fn send_best_effort(&self, to: Target<'_>, cmd: &Command) {
        if let Err(e) = self.registry.send(to, cmd).await {
            tracing::warn!(error = %e, "command not sent; the worker's reconcile will catch up");
        }
    }

    /// Waits until the agent runs; fails if it failed or did not start in time.
    async fn wait_running(&self, id: &AgentId) -> Result<Agent> {
        let timeout = self.config.agent_start_timeout;
        let settled = self
            .hub
            .wait(id.as_str(), timeout, || async {
                let a = self.registry.agent(id).await?;
                Ok::<_, MasterError>(a.filter(|a| a.status.is_running() || a.status.is_terminal()))
            })
            .await?;
        match settled {
            Some(a) if a.status.is_running() => Ok(a),
            Some(a) => Err(MasterError::AgentFailed {
                agent: id.to_string(),
                error: a.error.unwrap_or_else(|| a.status.to_string()),
            }),
            None => Err(MasterError::AgentStartTimeout {
                agent: id.to_string(),
                secs: timeout.as_secs(),
            }),
        }
    }
}
