//! Tasks: work handed to a pool's agents. [`TaskSpec`] is what was submitted; [`Task`] is that
//! spec with how far it got. Both travel unchanged from the REST route through the store and
//! the registry to the worker; they become text only at the Redis, socket and SQL edges.
//!
//! Semantics: at least once, one result. An attempt that dies with its agent or worker is
//! retried elsewhere (attempts count it); an attempt that fails is retried with doubling
//! backoff until `max_attempts`; a late answer from a superseded attempt is dropped.

use crate::{AgentId, ProcessId, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Highest priority; tasks of priority 9 are handed out first.
pub const MAX_PRIORITY: u8 = 9;
/// Priority of a task that does not say.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Attempts of a task that does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest attempt a task may ask for, in seconds.
pub const MAX_TASK_TIMEOUT_SECS: u64 = 86_400;
/// Most tasks in one batch.
pub const MAX_TASK_BATCH: usize = 1_000;
/// Longest idempotency key of a task, in bytes.
pub const MAX_TASK_KEY_LEN: usize = 255;
/// First pause before a retry; it doubles with each further attempt.
pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause before a retry.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for an agent (also between attempts).
    Queued,
    Running,
    Succeeded,
    /// Every attempt failed: it sits in its pool's dead set until retried or trimmed.
    Failed,
    Cancelled,
}

crate::text_enum!(TaskState {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl TaskState {
    /// No attempt will follow.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// What was submitted: fixed for the task's whole life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskSpec {
    pub task_id: TaskId,
    pub pool_name: String,
    /// The one agent that must run it ("ask"); any agent of the pool when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_agent_id: Option<AgentId>,
    /// 0-9, 9 first; FIFO within a priority.
    pub priority: u8,
    pub input: Value,
    pub max_attempts: u32,
    /// One attempt's limit; the pool handler's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Submitting the same key to the same pool again answers this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What a client submits for one task (`POST /pools/{pool}/tasks`, `/agents/{id}/tasks`, each
/// task of a batch); the master checks it and makes the [`TaskSpec`]. Numbers are `i64` so an
/// out-of-range one gets the master's message naming the field and its range, not a decoding
/// error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Any JSON value, handed to the agent; at most 1 MiB serialized.
    pub input: Value,
    /// 0-9; [`DEFAULT_PRIORITY`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = priority_schema)]
    pub priority: Option<i64>,
    /// 1-[`MAX_ATTEMPTS_LIMIT`]; [`DEFAULT_MAX_ATTEMPTS`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = attempts_schema)]
    pub max_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = timeout_schema)]
    pub timeout_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = key_schema)]
    pub idempotency_key: Option<String>,
}

fn priority_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::schema::optional_int(
        0,
        MAX_PRIORITY.into(),
        "0-9, 9 handed out first; 5 when absent",
    )
}

fn attempts_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::schema::optional_int(
        1,
        MAX_ATTEMPTS_LIMIT.into(),
        "attempts before it fails; 3 when absent",
    )
}

fn timeout_schema() -> utoipa::openapi::schema::ObjectBuilder {
    let most = MAX_TASK_TIMEOUT_SECS as i64;
    crate::schema::optional_int(
        1,
        most,
        "one attempt's limit in seconds; the handler's when absent",
    )
}

fn key_schema() -> utoipa::openapi::schema::ObjectBuilder {
    let what = "submitting the same key to the same pool again answers the first task";
    crate::schema::text(1, MAX_TASK_KEY_LEN, true, what)
}

/// `POST /pools/{pool}/tasks/batch`: up to 1,000 tasks in one request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBatch {
    #[schema(schema_with = batch_schema)]
    pub tasks: Vec<TaskRequest>,
}

fn batch_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("TaskRequest"))
        .min_items(Some(1))
        .max_items(Some(MAX_TASK_BATCH))
}

/// `POST /pools/{pool}/broadcast`: one task per running agent, each of one attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = timeout_schema)]
    pub timeout_secs: Option<i64>,
}

/// Several tasks in the order they were given: the answer of a batch and of a broadcast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

/// A task as it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    #[serde(flatten)]
    pub spec: TaskSpec,
    pub status: TaskState,
    /// Who runs it, or ran its last attempt; the target while a targeted task waits.
    pub agent_id: Option<AgentId>,
    pub output: Option<Value>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Task {
    pub fn id(&self) -> &TaskId {
        &self.spec.task_id
    }

    /// A task just submitted: queued, no attempt yet.
    pub fn queued(spec: TaskSpec, created_at: String) -> Self {
        Self {
            agent_id: spec.target_agent_id.clone(),
            spec,
            status: TaskState::Queued,
            output: None,
            error: None,
            attempts: 0,
            created_at,
            started_at: None,
            finished_at: None,
        }
    }
}

/// One attempt handed to an agent: what its worker needs to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub task_id: TaskId,
    pub agent_id: AgentId,
    /// This start's own number, growing with every start (also across a retry by hand, which
    /// resets `attempts`); a report for another number is stale and dropped.
    pub attempt: u32,
    /// This attempt's limit.
    pub timeout_ms: u64,
    pub input: Value,
}

/// How an attempt ended, as its worker reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "value", rename_all = "snake_case")]
pub enum TaskOutcome {
    Succeeded(Value),
    /// The attempt failed; it is retried while attempts remain.
    Failed(String),
    /// Stopped on request.
    Cancelled,
    /// The agent itself broke (its child died, it panicked): the attempt failed, and the
    /// agent restarts before it takes another task.
    AgentFailed(String),
}

/// A worker's report of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub task_id: TaskId,
    pub agent_id: AgentId,
    pub process_id: ProcessId,
    pub attempt: u32,
    pub outcome: TaskOutcome,
}

/// A pool's rules for its tasks, given to the registry's task steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRules {
    /// An attempt's limit when the task sets none (the handler's).
    pub default_timeout_ms: u64,
    /// A lease runs out this long after the attempt's own limit: the worker did not report.
    pub lease_grace_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Consecutive failed attempts that open the pool's circuit; 0 = no circuit breaker.
    pub circuit_failures: u32,
    pub circuit_cooldown_ms: u64,
    /// How long a finished task stays in the registry for readers; the store keeps it for good.
    pub final_ttl_ms: u64,
}

impl TaskRules {
    /// The pause before attempt `attempts + 1`, after `attempts` attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u64.saturating_pow(attempts.saturating_sub(1).min(30));
        Duration::from_millis(
            self.retry_backoff_ms
                .saturating_mul(factor)
                .min(self.retry_backoff_max_ms),
        )
    }
}

/// A task's state changed (an attempt started or ended): what the registry announces, and
/// what the store and the event stream take from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    pub task_id: TaskId,
    pub pool_name: String,
    pub status: TaskState,
    pub attempts: u32,
    pub agent_id: Option<AgentId>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl TaskChange {
    /// The change that brings `task` to where it stands.
    pub fn of(task: &Task) -> Self {
        Self {
            task_id: task.spec.task_id.clone(),
            pool_name: task.spec.pool_name.clone(),
            status: task.status,
            attempts: task.attempts,
            agent_id: task.agent_id.clone(),
            output: task.output.clone(),
            error: task.error.clone(),
            started_at: task.started_at.clone(),
            finished_at: task.finished_at.clone(),
        }
    }

    /// `task` with this change applied.
    pub fn apply(&self, task: &mut Task) {
        task.status = self.status;
        task.attempts = self.attempts;
        task.agent_id.clone_from(&self.agent_id);
        task.output.clone_from(&self.output);
        task.error.clone_from(&self.error);
        task.started_at.clone_from(&self.started_at);
        task.finished_at.clone_from(&self.finished_at);
    }
}

/// A pool's circuit breaker.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Tasks are handed out.
    #[default]
    Closed,
    /// Too many failed attempts in a row: no task is handed out until the cooldown passes.
    Open,
    /// The cooldown passed: one trial task runs; its success closes the circuit.
    HalfOpen,
}

crate::text_enum!(CircuitState {
    Closed => "closed",
    Open => "open",
    HalfOpen => "half_open",
});

/// The queue's numbers for `/pools`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskCounts {
    pub queued_tasks: u64,
    pub running_tasks: u64,
    /// Agents running a task (one task per agent at a time).
    pub busy_agents: u64,
    pub circuit: CircuitState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let rules = TaskRules {
            default_timeout_ms: 1_000,
            lease_grace_ms: 1_000,
            retry_backoff_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            circuit_failures: 5,
            circuit_cooldown_ms: 30_000,
            final_ttl_ms: 3_600_000,
        };
        let secs: Vec<u64> = (1..=8).map(|a| rules.backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_task_reads_flat_with_its_spec() {
        let spec = TaskSpec {
            task_id: TaskId::new(),
            pool_name: "dev".into(),
            target_agent_id: None,
            priority: DEFAULT_PRIORITY,
            input: serde_json::json!({"q": 1}),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout_secs: None,
            idempotency_key: None,
        };
        let task = Task::queued(spec, "2026-11-23T00:00:00.000Z".into());
        let v = serde_json::to_value(&task).unwrap();
        for field in [
            "task_id",
            "pool_name",
            "status",
            "priority",
            "input",
            "attempts",
            "max_attempts",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(serde_json::from_value::<Task>(v).unwrap(), task);
        let outcome = serde_json::to_value(TaskOutcome::Failed("boom".into())).unwrap();
        assert_eq!(
            outcome,
            serde_json::json!({"outcome": "failed", "value": "boom"})
        );
    }

    #[test]
    fn a_request_sends_only_what_was_set_and_refuses_unknown_fields() {
        let bare = TaskRequest {
            input: serde_json::json!(null),
            ..TaskRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::json!({"input": null})
        );
        let typo = serde_json::json!({"input": 1, "priorty": 9});
        assert!(serde_json::from_value::<TaskRequest>(typo).is_err());
        let missing = serde_json::json!({"priority": 9});
        assert!(serde_json::from_value::<TaskRequest>(missing).is_err());
    }
}
