//! The SQL both backends share (`$N` placeholders work in PostgreSQL and SQLite alike, and
//! every timestamp is bound from Rust), the row types, and `PgStore` / `SqliteStore`, whose
//! `Store` impls come from one macro over the same statements.

use agentpool_types::{AgentId, PoolSpec, ProcessId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::error::{Result, StoreError};
use crate::model::{AgentEvent, AgentRow, WorkerRow};

/// A [`crate::Store`] on PostgreSQL (directly or through PgBouncer in session mode).
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

/// A [`crate::Store`] in one SQLite file (WAL mode).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
}

impl PgStore {
    /// The connection pool, for shutdown (`close`) or ad-hoc queries.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

impl SqliteStore {
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

pub(crate) mod q {
    pub const UPSERT_POOL: &str = "INSERT INTO pools (name, spec, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at";
    pub const POOLS: &str = "SELECT spec FROM pools ORDER BY name";
    pub const INSERT_AGENT: &str = "INSERT INTO agents (agent_id, pool, role, name, config, \
         desired_state, status, restarts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', 'pending', 0, $6, $6)";
    pub const INSERT_EVENT: &str =
        "INSERT INTO agent_events (agent_id, kind, detail, at) VALUES ($1, $2, $3, $4)";
    pub const SET_DESIRED: &str =
        "UPDATE agents SET desired_state = $2, updated_at = $3 WHERE agent_id = $1";
    pub const AGENT: &str = "SELECT * FROM agents WHERE agent_id = $1";
    pub const AGENTS_WITH_DESIRED: &str =
        "SELECT * FROM agents WHERE desired_state = $1 ORDER BY created_at, agent_id";
    pub const SET_STATUS: &str = "UPDATE agents SET status = $2, process_id = $3, \
         restarts = COALESCE($4, restarts), last_error = COALESCE($5, last_error), \
         updated_at = $6 WHERE agent_id = $1";
    pub const WORKER_STARTED: &str = "INSERT INTO workers (process_id, pool, pid, started_at) \
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
    pub const PING: &str = "SELECT 1";
}

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRecord {
    spec: Json<PoolSpec>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRecord {
    agent_id: String,
    pool: String,
    role: String,
    name: String,
    config: Json<Value>,
    desired_state: String,
    status: String,
    process_id: Option<String>,
    restarts: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRecord {
    id: i64,
    agent_id: String,
    kind: String,
    detail: String,
    at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkerRecord {
    process_id: String,
    pool: String,
    pid: i64,
    started_at: DateTime<Utc>,
    exited_at: Option<DateTime<Utc>>,
    exit_status: Option<String>,
}

fn invalid(what: &str, value: &str) -> StoreError {
    StoreError::Invalid(format!("{what} {value:?}"))
}

fn agent_id(s: &str) -> Result<AgentId> {
    AgentId::parse(s).ok_or_else(|| invalid("agent id", s))
}

fn process_id(s: &str) -> Result<ProcessId> {
    ProcessId::parse(s).ok_or_else(|| invalid("process id", s))
}

impl From<PoolRecord> for PoolSpec {
    fn from(r: PoolRecord) -> Self {
        r.spec.0
    }
}

impl TryFrom<AgentRecord> for AgentRow {
    type Error = StoreError;
    fn try_from(r: AgentRecord) -> Result<Self> {
        Ok(AgentRow {
            agent_id: agent_id(&r.agent_id)?,
            desired_state: r
                .desired_state
                .parse()
                .map_err(|_| invalid("desired state", &r.desired_state))?,
            status: r.status.parse().map_err(|_| invalid("status", &r.status))?,
            process_id: r.process_id.as_deref().map(process_id).transpose()?,
            restarts: u32::try_from(r.restarts).unwrap_or(u32::MAX),
            pool: r.pool,
            role: r.role,
            name: r.name,
            config: r.config.0,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl TryFrom<EventRecord> for AgentEvent {
    type Error = StoreError;
    fn try_from(r: EventRecord) -> Result<Self> {
        Ok(AgentEvent {
            id: r.id,
            agent_id: agent_id(&r.agent_id)?,
            kind: r.kind.parse().map_err(|_| invalid("event kind", &r.kind))?,
            detail: r.detail,
            at: r.at,
        })
    }
}

impl TryFrom<WorkerRecord> for WorkerRow {
    type Error = StoreError;
    fn try_from(r: WorkerRecord) -> Result<Self> {
        Ok(WorkerRow {
            process_id: process_id(&r.process_id)?,
            pid: u32::try_from(r.pid).map_err(|_| invalid("pid", &r.pid.to_string()))?,
            pool: r.pool,
            started_at: r.started_at,
            exited_at: r.exited_at,
            exit_status: r.exit_status,
        })
    }
}

pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// Implements [`crate::Store`] for a struct with a `pool` field of the given database.
macro_rules! sql_store {
    ($store:ty, $backend:literal) => {
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn upsert_pools<'a>(&'a self, pools: &'a [PoolSpec]) -> BoxFuture<'a, Result<()>> {
                Box::pin(async move {
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
                })
            }

            fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolSpec>>> {
                Box::pin(async move {
                    let rows: Vec<PoolRecord> =
                        sqlx::query_as(q::POOLS).fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().map(PoolSpec::from).collect())
                })
            }

            fn insert_agent<'a>(&'a self, agent: &'a NewAgent) -> BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    // The `spawned` event comes with it, from a trigger (migration 0002).
                    sqlx::query(q::INSERT_AGENT)
                        .bind(agent.agent_id.as_str())
                        .bind(&agent.pool)
                        .bind(&agent.role)
                        .bind(&agent.name)
                        .bind(Json(&agent.config))
                        .bind(Utc::now())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn set_desired_state<'a>(
                &'a self,
                agent_id: &'a AgentId,
                desired: DesiredState,
            ) -> BoxFuture<'a, Result<bool>> {
                Box::pin(async move {
                    let done = sqlx::query(q::SET_DESIRED)
                        .bind(agent_id.as_str())
                        .bind(desired.as_str())
                        .bind(Utc::now())
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn agent<'a>(
                &'a self,
                agent_id: &'a AgentId,
            ) -> BoxFuture<'a, Result<Option<AgentRow>>> {
                Box::pin(async move {
                    let row: Option<AgentRecord> = sqlx::query_as(q::AGENT)
                        .bind(agent_id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(AgentRow::try_from).transpose()
                })
            }

            fn agents_with_desired(
                &self,
                desired: DesiredState,
            ) -> BoxFuture<'_, Result<Vec<AgentRow>>> {
                Box::pin(async move {
                    let rows: Vec<AgentRecord> = sqlx::query_as(q::AGENTS_WITH_DESIRED)
                        .bind(desired.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                })
            }

            fn apply<'a>(&'a self, updates: &'a [Update]) -> BoxFuture<'a, Result<()>> {
                Box::pin(async move {
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
                                pool,
                                pid,
                                at,
                            } => sqlx::query(q::WORKER_STARTED)
                                .bind(process_id.as_str())
                                .bind(pool.as_str())
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
                        };
                        query.execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn events<'a>(
                &'a self,
                agent_id: &'a AgentId,
            ) -> BoxFuture<'a, Result<Vec<AgentEvent>>> {
                Box::pin(async move {
                    let rows: Vec<EventRecord> = sqlx::query_as(q::EVENTS)
                        .bind(agent_id.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                })
            }

            fn worker<'a>(
                &'a self,
                process_id: &'a ProcessId,
            ) -> BoxFuture<'a, Result<Option<WorkerRow>>> {
                Box::pin(async move {
                    let row: Option<WorkerRecord> = sqlx::query_as(q::WORKER)
                        .bind(process_id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(WorkerRow::try_from).transpose()
                })
            }

            fn running_workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRow>>> {
                Box::pin(async move {
                    let rows: Vec<WorkerRecord> = sqlx::query_as(q::RUNNING_WORKERS)
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                })
            }

            fn cleanup(&self, older_than: Duration) -> BoxFuture<'_, Result<CleanupReport>> {
                Box::pin(async move {
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
                    tx.commit().await?;
                    Ok(CleanupReport {
                        events: events.rows_affected(),
                        agents: agents.rows_affected(),
                        workers: workers.rows_affected(),
                    })
                })
            }

            fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
                Box::pin(async move {
                    let start = std::time::Instant::now();
                    sqlx::query(q::PING).execute(&self.pool).await?;
                    Ok(start.elapsed())
                })
            }
        }
    };
}

mod impls {
    use super::*;
    use crate::BoxFuture;
    use crate::model::{CleanupReport, DesiredState, NewAgent, Update};
    use std::time::Duration;

    sql_store!(PgStore, "postgres");
    sql_store!(SqliteStore, "sqlite");
}
