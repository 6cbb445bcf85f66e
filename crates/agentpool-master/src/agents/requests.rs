//! Spawn requests: every spawn, of one agent or a thousand, is all or nothing.
//!
//! The request and its agents are recorded in one transaction before anything is placed. If
//! any agent cannot be placed or does not come up, the others are terminated, the unplaced
//! ones forgotten, and the request answers the error: a retry never finds leftovers. A request
//! its master never answered (the master died) is rolled back by the next master, unless it
//! carries an idempotency key: then the client's retry with the same key and body answers the
//! same agents, finishing what the crash cut, and never creates more.

use super::Agents;
use crate::error::{MasterError, Result};
use agentpool_store::Update;
use agentpool_store::{AgentEventKind, AgentRow, Begun, DesiredState, RequestState, SpawnRequest};
use agentpool_types::{Agent, AgentId, AgentSpec, AgentState};

/// One spawn as a route hands it over.
pub struct SpawnOrder {
    /// The agents to spawn, all of one pool.
    pub agents: Vec<AgentSpec>,
    /// The client's `Idempotency-Key`.
    pub key: Option<String>,
    /// What was asked, to tell a retry from another request reusing its key.
    pub body_hash: String,
    /// Answer once every agent runs (else once each has a slot).
    pub wait: bool,
}

impl Agents {
    /// Spawns every agent of the order, or none.
    pub async fn spawn(&self, order: SpawnOrder) -> Result<Vec<Agent>> {
        self.core.ensure_running()?;
        let pool = match order.agents.first() {
            Some(a) => self.core.pool(&a.pool_name)?.name().to_owned(),
            None => return Ok(Vec::new()),
        };
        let count = u32::try_from(order.agents.len()).unwrap_or(u32::MAX);
        let request = SpawnRequest::new(order.key, order.body_hash, &pool, count, &self.core.id);
        let started = tokio::time::Instant::now();
        let done = match self.core.store.begin_spawn(&request, &order.agents).await? {
            Begun::New => self.carry_out(&request, &order.agents, order.wait).await,
            Begun::Existing(prev) => self.resume(prev, &request.body_hash, order.wait).await,
        };
        let outcome = if done.is_ok() { "ok" } else { "error" };
        metrics::counter!("agentpool_agent_spawns_total", "pool" => pool.clone(), "outcome" => outcome)
            .increment(u64::from(count));
        metrics::histogram!("agentpool_spawn_duration_seconds", "pool" => pool)
            .record(started.elapsed().as_secs_f64());
        done
    }

    /// Places every agent of a new request and, with `wait`, waits for them to run.
    async fn carry_out(
        &self,
        request: &SpawnRequest,
        specs: &[AgentSpec],
        wait: bool,
    ) -> Result<Vec<Agent>> {
        let placed = futures::future::join_all(specs.iter().map(|s| self.place_new(s))).await;
        if let Some(e) = first_error(placed.iter().map(|r| r.as_ref().err())) {
            let e = clone_error(e);
            let unplaced: Vec<AgentId> = specs
                .iter()
                .zip(&placed)
                .filter(|(_, r)| r.is_err())
                .map(|(s, _)| s.agent_id.clone())
                .collect();
            self.fail(request, specs, &unplaced, &e).await;
            return Err(e);
        }
        let agents = self.settle(specs.iter().map(|s| &s.agent_id), wait).await;
        match agents {
            Ok(agents) => {
                self.finish(request, RequestState::Done, None).await;
                Ok(agents)
            }
            Err(e) => {
                self.fail(request, specs, &[], &e).await;
                Err(e)
            }
        }
    }

    /// Answers a retry of a known request: the same agents, placing those a crash left
    /// unplaced; never new ones.
    async fn resume(&self, prev: SpawnRequest, body_hash: &str, wait: bool) -> Result<Vec<Agent>> {
        let key = prev.idempotency_key.clone().unwrap_or_default();
        if prev.body_hash != body_hash {
            return Err(MasterError::IdempotencyConflict(key));
        }
        if matches!(prev.state, RequestState::Failed | RequestState::RolledBack) {
            let why = prev.error.unwrap_or_else(|| prev.state.to_string());
            return Err(MasterError::IdempotentFailure { key, why });
        }
        let rows = self.core.store.request_agents(&prev.request_id).await?;
        let wanted: Vec<&AgentRow> = rows
            .iter()
            .filter(|r| r.desired_state == DesiredState::Running)
            .collect();
        let placing = wanted.iter().map(|r| self.place_new(&r.spec));
        for outcome in futures::future::join_all(placing).await {
            outcome?;
        }
        let mut agents = self
            .settle(wanted.iter().map(|r| &r.spec.agent_id), wait)
            .await?;
        // Agents terminated since the first answer are reported stopped, not left out.
        agents.extend(
            rows.iter()
                .filter(|r| r.desired_state == DesiredState::Stopped)
                .map(stopped_record),
        );
        if prev.state == RequestState::Pending {
            self.finish(&prev, RequestState::Done, None).await;
        }
        Ok(agents)
    }

    /// Each agent as the registry shows it once it runs (`wait`) or once it is placed.
    async fn settle<'a>(
        &self,
        ids: impl Iterator<Item = &'a AgentId>,
        wait: bool,
    ) -> Result<Vec<Agent>> {
        let reads = ids.map(|id| async move {
            if wait {
                self.wait_running(id).await
            } else {
                self.core
                    .registry
                    .agent(id)
                    .await?
                    .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))
            }
        });
        let settled = futures::future::join_all(reads).await;
        if let Some(e) = first_error(settled.iter().map(|r| r.as_ref().err())) {
            return Err(clone_error(e));
        }
        Ok(settled.into_iter().flatten().collect())
    }

    /// Undoes a request that answers an error: placed agents are terminated (a failed one
    /// stays visible as failed), unplaced ones forgotten, and the request records why.
    async fn fail(
        &self,
        request: &SpawnRequest,
        specs: &[AgentSpec],
        unplaced: &[AgentId],
        why: &MasterError,
    ) {
        let keep = |id: &AgentId| {
            unplaced.contains(id)
                || matches!(why, MasterError::AgentFailed { agent, .. } if agent == id.as_str())
        };
        let undo = specs
            .iter()
            .filter(|s| !keep(&s.agent_id))
            .map(|s| self.terminate(&s.agent_id, false));
        for outcome in futures::future::join_all(undo).await {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "cannot roll back an agent of a failed spawn");
            }
        }
        if let Err(e) = self.core.store.forget_agents(unplaced).await {
            tracing::warn!(error = %e, "cannot forget the unplaced agents of a failed spawn");
        }
        self.finish(request, RequestState::Failed, Some(&why.to_string()))
            .await;
    }

    async fn finish(&self, request: &SpawnRequest, state: RequestState, error: Option<&str>) {
        let store = &self.core.store;
        if let Err(e) = store.finish_spawn(&request.request_id, state, error).await {
            tracing::warn!(request_id = %request.request_id, error = %e, "cannot record how a spawn request ended");
        }
    }

    /// At start: requests a previous master took and never answered, without an idempotency
    /// key, are rolled back; their agents are terminated and say why in their history.
    pub async fn roll_back_unanswered(&self) -> Result<usize> {
        let pending = self.core.store.pending_spawns().await?;
        let mut rolled = 0;
        for request in pending
            .iter()
            .filter(|r| r.idempotency_key.is_none() && r.master_id != self.core.id)
        {
            let rows = self.core.store.request_agents(&request.request_id).await?;
            for row in &rows {
                let id = &row.spec.agent_id;
                match self.terminate(id, false).await {
                    Ok(_) | Err(MasterError::UnknownAgent(_)) => {}
                    Err(e) => return Err(e),
                }
                self.core.record(Update::event(
                    id,
                    AgentEventKind::Terminated,
                    "rolled back: its spawn request was never answered (the master stopped)",
                ));
            }
            let why = "never answered: the master stopped before all agents ran";
            self.core
                .store
                .finish_spawn(&request.request_id, RequestState::RolledBack, Some(why))
                .await?;
            tracing::warn!(request_id = %request.request_id, agents = rows.len(), "rolled back a spawn request its master never answered");
            rolled += 1;
        }
        Ok(rolled)
    }
}

/// The record of an agent terminated since: what the store last knew, stopped.
fn stopped_record(row: &AgentRow) -> Agent {
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Agent {
        spec: row.spec.clone(),
        process_id: None,
        status: AgentState::Stopped,
        restarts: row.restarts,
        registered_at: at(row.created_at),
        updated_at: at(row.updated_at),
        error: row.last_error.clone(),
        epoch: 0,
        current_task: None,
        tasks_done: 0,
        tasks_failed: 0,
    }
}

fn first_error<'a>(
    mut errors: impl Iterator<Item = Option<&'a MasterError>>,
) -> Option<&'a MasterError> {
    errors.find_map(|e| e)
}

/// The error to answer with; errors hold no handles, so their text and kind carry over.
fn clone_error(e: &MasterError) -> MasterError {
    match e {
        MasterError::PoolFull {
            pool,
            max_processes,
        } => MasterError::PoolFull {
            pool: pool.clone(),
            max_processes: *max_processes,
        },
        MasterError::WorkerStart { pool, detail } => MasterError::WorkerStart {
            pool: pool.clone(),
            detail: detail.clone(),
        },
        MasterError::AgentStartTimeout { agent, secs } => MasterError::AgentStartTimeout {
            agent: agent.clone(),
            secs: *secs,
        },
        MasterError::AgentFailed { agent, error } => MasterError::AgentFailed {
            agent: agent.clone(),
            error: error.clone(),
        },
        MasterError::PlacementTimeout { pool, secs } => MasterError::PlacementTimeout {
            pool: pool.clone(),
            secs: *secs,
        },
        MasterError::UnknownPool(p) => MasterError::UnknownPool(p.clone()),
        MasterError::UnknownAgent(a) => MasterError::UnknownAgent(a.clone()),
        MasterError::ShuttingDown => MasterError::ShuttingDown,
        MasterError::Registry(agentpool_registry::RegistryError::Unavailable(d)) => {
            MasterError::Registry(agentpool_registry::RegistryError::Unavailable(d.clone()))
        }
        MasterError::Store(agentpool_store::StoreError::Unavailable(d)) => {
            MasterError::Store(agentpool_store::StoreError::Unavailable(d.clone()))
        }
        other => MasterError::Io(std::io::Error::other(other.to_string())),
    }
}
