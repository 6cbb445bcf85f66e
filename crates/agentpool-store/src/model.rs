//! What the store holds and the updates it takes.

use agentpool_types::{AgentId, AgentSpec, AgentState, ProcessId, TaskChange};
use chrono::{DateTime, Utc};

/// What the operator asked for; survives master restarts (the status is what happened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DesiredState {
    Running,
    Stopped,
}

agentpool_types::text_enum!(DesiredState {
    Running => "running",
    Stopped => "stopped",
});

/// One entry of an agent's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentEventKind {
    Spawned,
    Started,
    Stopped,
    Failed,
    Orphaned,
    Rescheduled,
    Terminated,
    Quarantined,
    Restarted,
}

agentpool_types::text_enum!(AgentEventKind {
    Spawned => "spawned",
    Started => "started",
    Stopped => "stopped",
    Failed => "failed",
    Orphaned => "orphaned",
    Rescheduled => "rescheduled",
    Terminated => "terminated",
    Quarantined => "quarantined",
    Restarted => "restarted",
});

/// One row of `agents`.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRow {
    pub spec: AgentSpec,
    pub desired_state: DesiredState,
    pub status: AgentState,
    pub process_id: Option<ProcessId>,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One row of `agent_events`; `id` grows with every append, across agents.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentEvent {
    pub id: i64,
    pub agent_id: AgentId,
    pub kind: AgentEventKind,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// One row of `workers`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    pub process_id: ProcessId,
    pub pool_name: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub exited_at: Option<DateTime<Utc>>,
    pub exit_status: Option<String>,
}

/// One change for [`crate::Store::apply`]. `at` is when it happened, not when it is written
/// (the [`crate::BatchWriter`] may write it later); the constructors stamp the current time.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The agent's observed state. `None` for `restarts` / `last_error` keeps the stored value;
    /// `process_id` is always written (`None` clears it, e.g. when orphaned).
    /// An unknown agent is skipped, not an error.
    Status {
        agent_id: AgentId,
        status: AgentState,
        process_id: Option<ProcessId>,
        restarts: Option<u32>,
        last_error: Option<String>,
        at: DateTime<Utc>,
    },
    /// Appends to the agent's history. The agent must exist (foreign key).
    Event {
        agent_id: AgentId,
        kind: AgentEventKind,
        detail: String,
        at: DateTime<Utc>,
    },
    /// A worker process started (a repeat for the same process id is ignored).
    WorkerStarted {
        process_id: ProcessId,
        pool_name: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// A worker process exited; `exit_status` is free text such as `exit 0` or `signal 9`.
    WorkerExited {
        process_id: ProcessId,
        exit_status: String,
        at: DateTime<Utc>,
    },
    /// A task moved (an attempt started or ended), written with the rest of the batch; applied
    /// only if it moves the task forward (see [`crate::task_store`]), an unknown task skipped.
    Task(TaskChange),
}

impl Update {
    pub fn status(agent_id: &AgentId, status: AgentState, process_id: Option<&ProcessId>) -> Self {
        Update::Status {
            agent_id: agent_id.clone(),
            status,
            process_id: process_id.cloned(),
            restarts: None,
            last_error: None,
            at: Utc::now(),
        }
    }

    pub fn event(agent_id: &AgentId, kind: AgentEventKind, detail: impl Into<String>) -> Self {
        Update::Event {
            agent_id: agent_id.clone(),
            kind,
            detail: detail.into(),
            at: Utc::now(),
        }
    }

    pub fn worker_started(process_id: &ProcessId, pool: &str, pid: u32) -> Self {
        Update::WorkerStarted {
            process_id: process_id.clone(),
            pool_name: pool.to_owned(),
            pid,
            at: Utc::now(),
        }
    }

    pub fn worker_exited(process_id: &ProcessId, exit_status: impl Into<String>) -> Self {
        Update::WorkerExited {
            process_id: process_id.clone(),
            exit_status: exit_status.into(),
            at: Utc::now(),
        }
    }
}

/// Rows removed by [`crate::Store::cleanup`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Events older than the period.
    pub events: u64,
    /// Agents with `desired_state = stopped` not updated within the period (their remaining
    /// events go with them).
    pub agents: u64,
    /// Workers that exited before the period.
    pub workers: u64,
}
