//! Rows as the database returns them, and their conversion into the domain types.

use agentpool_types::{AgentId, AgentSpec, PoolSpec, ProcessId, SealedSecret};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::error::{Result, StoreError};
use crate::model::{AgentEvent, AgentRow, WorkerRow};

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRecord {
    pub spec: Json<PoolSpec>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRecord {
    agent_id: String,
    pool_name: String,
    role_type: String,
    name: String,
    metadata: Json<Value>,
    restart: Option<String>,
    autoscaled: bool,
    secret_config: Option<String>,
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
    pool_name: String,
    pid: i64,
    started_at: DateTime<Utc>,
    exited_at: Option<DateTime<Utc>>,
    exit_status: Option<String>,
}

pub(crate) fn invalid(what: &str, value: &str) -> StoreError {
    StoreError::Invalid(format!("{what} {value:?}"))
}

pub(crate) fn agent_id(s: &str) -> Result<AgentId> {
    AgentId::parse(s).ok_or_else(|| invalid("agent id", s))
}

pub(crate) fn process_id(s: &str) -> Result<ProcessId> {
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
        let restart = match r.restart.as_deref() {
            Some(p) => Some(p.parse().map_err(|_| invalid("restart policy", p))?),
            None => None,
        };
        let spec = AgentSpec {
            agent_id: agent_id(&r.agent_id)?,
            pool_name: r.pool_name,
            role_type: r.role_type,
            name: r.name,
            metadata: r.metadata.0,
            restart,
            autoscaled: r.autoscaled,
            secret_config: r.secret_config.map(SealedSecret::from_text),
        };
        Ok(AgentRow {
            spec,
            desired_state: r
                .desired_state
                .parse()
                .map_err(|_| invalid("desired state", &r.desired_state))?,
            status: r.status.parse().map_err(|_| invalid("status", &r.status))?,
            process_id: r.process_id.as_deref().map(process_id).transpose()?,
            restarts: u32::try_from(r.restarts).unwrap_or(u32::MAX),
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
            pool_name: r.pool_name,
            started_at: r.started_at,
            exited_at: r.exited_at,
            exit_status: r.exit_status,
        })
    }
}

pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct SpawnRecord {
    request_id: String,
    idempotency_key: Option<String>,
    body_hash: String,
    pool_name: String,
    count: i64,
    master_id: String,
    state: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SpawnRecord> for crate::SpawnRequest {
    type Error = StoreError;
    fn try_from(r: SpawnRecord) -> Result<Self> {
        Ok(crate::SpawnRequest {
            state: r
                .state
                .parse()
                .map_err(|_| invalid("request state", &r.state))?,
            count: u32::try_from(r.count).map_err(|_| invalid("count", &r.count.to_string()))?,
            request_id: r.request_id,
            idempotency_key: r.idempotency_key,
            body_hash: r.body_hash,
            pool_name: r.pool_name,
            master_id: r.master_id,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRecord {
    task_id: String,
    pool_name: String,
    target_agent_id: Option<String>,
    priority: i64,
    input: Json<Value>,
    max_attempts: i64,
    timeout_secs: Option<i64>,
    idempotency_key: Option<String>,
    status: String,
    attempts: i64,
    agent_id: Option<String>,
    output: Option<Json<Value>>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

/// A task's timestamp as the registry writes it (RFC 3339, milliseconds, `Z`).
pub(crate) fn stamp_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A task's timestamp, bound as a time so both databases compare and subtract it as one.
pub(crate) fn stamp(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid("timestamp", text))
}

pub(crate) fn opt_stamp(text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(stamp).transpose()
}

fn number<T: TryFrom<i64>>(what: &str, n: i64) -> Result<T> {
    T::try_from(n).map_err(|_| invalid(what, &n.to_string()))
}

impl TryFrom<TaskRecord> for agentpool_types::Task {
    type Error = StoreError;
    fn try_from(r: TaskRecord) -> Result<Self> {
        let task_id = agentpool_types::TaskId::parse(&r.task_id)
            .ok_or_else(|| invalid("task id", &r.task_id))?;
        let spec = agentpool_types::TaskSpec {
            task_id,
            pool_name: r.pool_name,
            target_agent_id: r.target_agent_id.as_deref().map(agent_id).transpose()?,
            priority: number("priority", r.priority)?,
            input: r.input.0,
            max_attempts: number("max attempts", r.max_attempts)?,
            timeout_secs: r.timeout_secs.map(|s| number("timeout", s)).transpose()?,
            idempotency_key: r.idempotency_key,
        };
        Ok(agentpool_types::Task {
            spec,
            status: r
                .status
                .parse()
                .map_err(|_| invalid("task status", &r.status))?,
            agent_id: r.agent_id.as_deref().map(agent_id).transpose()?,
            output: r.output.map(|o| o.0),
            error: r.error,
            attempts: number("attempts", r.attempts)?,
            created_at: stamp_text(r.created_at),
            started_at: r.started_at.map(stamp_text),
            finished_at: r.finished_at.map(stamp_text),
        })
    }
}
