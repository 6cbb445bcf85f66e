//! [`crate::AgentStore`] for both backends: pools, agents and their desired state, history
//! and workers.

use agentpool_types::{AgentId, AgentSpec, PoolSpec, ProcessId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::records::{
    AgentRecord, EventRecord, PoolRecord, WorkerRecord, agent_id, convert, invalid, process_id,
};

/// Ids per `IN (...)` list: far below either database's limit on bound parameters.
const ID_CHUNK: usize = 500;
use super::{PgStore, SqliteStore};
use crate::error::Result;
use crate::model::{AgentEvent, AgentRow, WorkerRow};

pub(crate) mod q {
    pub const UPSERT_POOL: &str = "INSERT INTO pools (name, spec, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at";
    pub const POOLS: &str = "SELECT spec FROM pools ORDER BY name";
    pub const INSERT_AGENT: &str = "INSERT INTO agents (agent_id, pool_name, role_type, name, \
         metadata, restart, autoscaled, secret_config, desired_state, status, restarts, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', 'pending', 0, $9, $9)";
    pub const INSERT_EVENT: &str =
        "INSERT INTO agent_events (agent_id, kind, detail, at) VALUES ($1, $2, $3, $4)";
    pub const SET_DESIRED: &str =
        "UPDATE agents SET desired_state = $2, updated_at = $3 WHERE agent_id = $1";
    pub const AGENT: &str = "SELECT * FROM agents WHERE agent_id = $1";
    pub const DESIRED_OF: &str = "SELECT agent_id, desired_state FROM agents WHERE agent_id IN (";
    pub const AGENTS_WITH_DESIRED: &str =
        "SELECT * FROM agents WHERE desired_state = $1 ORDER BY created_at, agent_id";
    pub const SET_STATUS: &str = "UPDATE agents SET status = $2, process_id = $3, \
         restarts = COALESCE($4, restarts), last_error = COALESCE($5, last_error), \
         updated_at = $6 WHERE agent_id = $1";
    pub const WORKER_STARTED: &str = "INSERT INTO workers (process_id, pool_name, pid, started_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (process_id) DO NOTHING";
    pub const WORKER_EXITED: &str =
        "UPDATE workers SET exited_at = $2, exit_status = $3 WHERE process_id = $1";
    pub const WORKER: &str = "SELECT * FROM workers WHERE process_id = $1";
    pub const RUNNING_WORKERS: &str =
        "SELECT * FROM workers WHERE exited_at IS NULL ORDER BY started_at, process_id";
    pub const EVENTS: &str =
        "SELECT id, agent_id, kind, detail, at FROM agent_events WHERE agent_id = $1 ORDER BY id";
    pub const CLEAN_EVENTS: &str = "DELETE FROM agent_events WHERE at < $1";
    pub const CLEAN_AGENTS: &str =
        "DELETE FROM agents WHERE desired_state = 'stopped' AND updated_at < $1";
    pub const CLEAN_WORKERS: &str = "DELETE FROM workers WHERE exited_at < $1";
    pub const CLEAN_REQUESTS: &str =
        "DELETE FROM spawn_requests WHERE state <> 'pending' AND created_at < $1";
    pub const SET_DRAIN: &str = "UPDATE workers SET drain_requested_at = $2 WHERE process_id = $1";
    pub const DRAINING: &str = "SELECT process_id FROM workers \
         WHERE drain_requested_at IS NOT NULL AND exited_at IS NULL ORDER BY drain_requested_at";
    pub const PING: &str = "SELECT 1";
}

/// Implements [`crate::AgentStore`] for a struct with a `pool` field of the given database.
macro_rules! agent_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $crate::AgentStore for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn upsert_pools<'a>(&'a self, pools: &'a [PoolSpec]) -> BoxFuture<'a, Result<()>> {
                Box::pin($crate::sql::bounded(async move {
                    let now = Utc::now();
                    let mut tx = self.pool.begin().await?;
                    for spec in pools {
                        sqlx::query(q::UPSERT_POOL)
                            .bind(&spec.name)
                            .bind(Json(spec))
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }))
            }

            fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolSpec>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<PoolRecord> =
                        sqlx::query_as(q::POOLS).fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().map(PoolSpec::from).collect())
                }))
            }

            fn insert_agent<'a>(&'a self, agent: &'a AgentSpec) -> BoxFuture<'a, Result<()>> {
                Box::pin($crate::sql::bounded(async move {
                    // The `spawned` event comes with it, from a trigger (migration 0002).
                    sqlx::query(q::INSERT_AGENT)
                        .bind(agent.agent_id.as_str())
                        .bind(&agent.pool_name)
                        .bind(&agent.role_type)
                        .bind(&agent.name)
                        .bind(Json(&agent.metadata))
                        .bind(agent.restart.map(|r| r.as_str()))
                        .bind(agent.autoscaled)
                        .bind(agent.secret_config.as_ref().map(|s| s.as_str()))
                        .bind(Utc::now())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }))
            }

            fn set_desired_state<'a>(
                &'a self,
                agent_id: &'a AgentId,
                desired: DesiredState,
            ) -> BoxFuture<'a, Result<bool>> {
                Box::pin($crate::sql::bounded(async move {
                    let done = sqlx::query(q::SET_DESIRED)
                        .bind(agent_id.as_str())
                        .bind(desired.as_str())
                        .bind(Utc::now())
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                }))
            }

            fn agent<'a>(
                &'a self,
                agent_id: &'a AgentId,
            ) -> BoxFuture<'a, Result<Option<AgentRow>>> {
                Box::pin($crate::sql::bounded(async move {
                    let row: Option<AgentRecord> = sqlx::query_as(q::AGENT)
                        .bind(agent_id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(AgentRow::try_from).transpose()
                }))
            }

            fn desired_states<'a>(
                &'a self,
                ids: &'a [AgentId],
            ) -> BoxFuture<'a, Result<Vec<(AgentId, DesiredState)>>> {
                Box::pin($crate::sql::bounded(async move {
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(ID_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(q::DESIRED_OF);
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(id.as_str());
                        }
                        q.push(")");
                        let rows: Vec<(String, String)> =
                            q.build_query_as().fetch_all(&self.pool).await?;
                        for (id, desired) in rows {
                            let desired = desired
                                .parse()
                                .map_err(|_| invalid("desired state", &desired))?;
                            out.push((agent_id(&id)?, desired));
                        }
                    }
                    Ok(out)
                }))
            }

            fn agents_with_desired(
                &self,
                desired: DesiredState,
            ) -> BoxFuture<'_, Result<Vec<AgentRow>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<AgentRecord> = sqlx::query_as(q::AGENTS_WITH_DESIRED)
                        .bind(desired.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                }))
            }

            fn apply<'a>(&'a self, updates: &'a [Update]) -> BoxFuture<'a, Result<()>> {
                Box::pin($crate::sql::bounded(async move {
                    if updates.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.pool.begin().await?;
                    for update in updates {
                        let query = match update {
                            Update::Status {
                                agent_id,
                                status,
                                process_id,
                                restarts,
                                last_error,
                                at,
                            } => sqlx::query(q::SET_STATUS)
                                .bind(agent_id.as_str())
                                .bind(status.as_str())
                                .bind(process_id.as_ref().map(|p| p.as_str()))
                                .bind(restarts.map(i64::from))
                                .bind(last_error.as_deref())
                                .bind(*at),
                            Update::Event {
                                agent_id,
                                kind,
                                detail,
                                at,
                            } => sqlx::query(q::INSERT_EVENT)
                                .bind(agent_id.as_str())
                                .bind(kind.as_str())
                                .bind(detail.as_str())
                                .bind(*at),
                            Update::WorkerStarted {
                                process_id,
                                pool_name,
                                pid,
                                at,
                            } => sqlx::query(q::WORKER_STARTED)
                                .bind(process_id.as_str())
                                .bind(pool_name.as_str())
                                .bind(i64::from(*pid))
                                .bind(*at),
                            Update::WorkerExited {
                                process_id,
                                exit_status,
                                at,
                            } => sqlx::query(q::WORKER_EXITED)
                                .bind(process_id.as_str())
                                .bind(*at)
                                .bind(exit_status.as_str()),
                            Update::Task(change) => {
                                Self::write_task_change(&mut *tx, change).await?;
                                continue;
                            }
                        };
                        query.execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }))
            }

            fn events<'a>(
                &'a self,
                agent_id: &'a AgentId,
            ) -> BoxFuture<'a, Result<Vec<AgentEvent>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<EventRecord> = sqlx::query_as(q::EVENTS)
                        .bind(agent_id.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                }))
            }

            fn worker<'a>(
                &'a self,
                process_id: &'a ProcessId,
            ) -> BoxFuture<'a, Result<Option<WorkerRow>>> {
                Box::pin($crate::sql::bounded(async move {
                    let row: Option<WorkerRecord> = sqlx::query_as(q::WORKER)
                        .bind(process_id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(WorkerRow::try_from).transpose()
                }))
            }

            fn running_workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRow>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<WorkerRecord> = sqlx::query_as(q::RUNNING_WORKERS)
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                }))
            }

            fn cleanup(&self, older_than: Duration) -> BoxFuture<'_, Result<CleanupReport>> {
                Box::pin($crate::sql::bounded(async move {
                    let period =
                        chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
                    let cutoff = Utc::now()
                        .checked_sub_signed(period)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC);
                    let mut tx = self.pool.begin().await?;
                    let count = |sql: &'static str| sqlx::query(sql).bind(cutoff);
                    let events = count(q::CLEAN_EVENTS).execute(&mut *tx).await?;
                    let agents = count(q::CLEAN_AGENTS).execute(&mut *tx).await?;
                    let workers = count(q::CLEAN_WORKERS).execute(&mut *tx).await?;
                    // Idempotency keys are kept a day at most, whatever the retention.
                    let day = Utc::now() - chrono::Duration::days(1);
                    sqlx::query(q::CLEAN_REQUESTS)
                        .bind(cutoff.max(day))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(CleanupReport {
                        events: events.rows_affected(),
                        agents: agents.rows_affected(),
                        workers: workers.rows_affected(),
                    })
                }))
            }

            fn set_worker_drain<'a>(
                &'a self,
                process_id: &'a ProcessId,
                drain: bool,
            ) -> BoxFuture<'a, Result<()>> {
                Box::pin($crate::sql::bounded(async move {
                    sqlx::query(q::SET_DRAIN)
                        .bind(process_id.as_str())
                        .bind(drain.then(Utc::now))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }))
            }

            fn draining_workers(&self) -> BoxFuture<'_, Result<Vec<ProcessId>>> {
                Box::pin($crate::sql::bounded(async move {
                    let ids: Vec<(String,)> =
                        sqlx::query_as(q::DRAINING).fetch_all(&self.pool).await?;
                    ids.iter().map(|(id,)| process_id(id)).collect()
                }))
            }

            fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
                Box::pin($crate::sql::bounded(async move {
                    let start = std::time::Instant::now();
                    sqlx::query(q::PING).execute(&self.pool).await?;
                    Ok(start.elapsed())
                }))
            }
        }
    };
}

mod impls {
    use super::*;
    use crate::BoxFuture;
    use crate::model::{CleanupReport, DesiredState, Update};
    use std::time::Duration;

    agent_store!(PgStore, sqlx::Postgres, "postgres");
    agent_store!(SqliteStore, sqlx::Sqlite, "sqlite");
}
