//! Spawning: placing new agents, the pool growing when it is full, and waiting for them to run.

use super::Agents;
use crate::error::{MasterError, Result};
use crate::pools::PoolManager;
use agentpool_registry::{Reservation, Target};
use agentpool_types::{Agent, AgentId, AgentSpec, Command, CommandKind, ProcessId};
use std::time::Duration;
use tokio::time::Instant;

/// How long a waiting spawn sleeps between `reserve` retries when no slot wake-up comes.
/// Slots also free up by terminations, which hand out no wake-up.
const RESERVE_RETRY: Duration = Duration::from_millis(100);

impl Agents {
    /// Places an agent the store already records and tells its worker. Placing one that is
    /// placed already is a no-op: `reserve` answers with its worker.
    pub(super) async fn place_new(&self, spec: &AgentSpec) -> Result<ProcessId> {
        let pool = self.core.pool(&spec.pool_name)?;
        let process = self
            .place(pool, Reservation::new(spec, pool.spec.placement))
            .await?;
        self.send_spawn(spec, &process).await;
        tracing::info!(agent_id = %spec.agent_id, pool = %spec.pool_name, process_id = %process, "agent placed");
        Ok(process)
    }

    /// Takes a slot for `r`, growing the pool when every worker is full.
    pub(super) async fn place(&self, pool: &PoolManager, r: Reservation<'_>) -> Result<ProcessId> {
        let registry = &self.core.registry;
        if let Some(p) = registry.reserve(r).await? {
            pool.consume_wakeup();
            return Ok(p);
        }
        let mut ticket = pool.begin_wait();
        let failures_before = pool.failures();
        let limit = self.core.config.worker_start_timeout * 3;
        let deadline = Instant::now() + limit;
        loop {
            self.core.ensure_running()?;
            if let Some(p) = registry.reserve(r).await? {
                ticket.served();
                return Ok(p);
            }
            if pool.failures() > failures_before {
                return Err(MasterError::WorkerStart {
                    pool: pool.name().to_owned(),
                    detail: pool.last_failure(),
                });
            }
            ticket.still_waiting();
            let n = pool.plan(self.supervisor.live(pool.name()))?;
            self.supervisor.start_workers(pool.name(), n);
            if Instant::now() >= deadline {
                return Err(MasterError::PlacementTimeout {
                    pool: pool.name().to_owned(),
                    secs: limit.as_secs(),
                });
            }
            ticket.await_slot(RESERVE_RETRY).await;
        }
    }

    pub(super) async fn send_spawn(&self, spec: &AgentSpec, process: &ProcessId) {
        let cmd = Command::new(CommandKind::Spawn(spec.clone()));
        self.send_best_effort(Target::Process(process), &cmd).await;
    }

    /// A command lost here is made up for by the worker's reconcile on its next heartbeat.
    pub(super) async fn send_best_effort(&self, to: Target<'_>, cmd: &Command) {
        if let Err(e) = self.core.registry.send(to, cmd).await {
            tracing::warn!(error = %e, "command not sent; the worker's reconcile will catch up");
        }
    }

    /// Waits until the agent runs; fails if it failed or did not start in time.
    pub(super) async fn wait_running(&self, id: &AgentId) -> Result<Agent> {
        let timeout = self.core.config.agent_start_timeout;
        let registry = &self.core.registry;
        let settled = self
            .core
            .hub
            .wait(id.as_str(), timeout, || async {
                let a = registry.agent(id).await?;
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
