//! Commands (master to worker) and events (worker to master), as JSON envelopes:
//! `{"id": "<uuid>", "command": "spawn", "data": {...}, "timestamp": "..."}`.
//!
//! Pub/sub only wakes the other side up. Correctness comes from the registry, so a lost message
//! costs latency, never an agent.

use crate::{AgentId, AgentSpec, ProcessId, TaskChange, TaskId, TaskRun};
use serde::{Deserialize, Serialize};

/// A command envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    #[serde(flatten)]
    pub kind: CommandKind,
    pub timestamp: String,
}

/// What a command asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", content = "data", rename_all = "snake_case")]
pub enum CommandKind {
    /// Start an agent that `reserve` already assigned to the receiving worker.
    Spawn(AgentSpec),
    /// Stop an agent; `graceful` lets it finish its current task first.
    Terminate { agent_id: AgentId, graceful: bool },
    /// Run one attempt of a task on an agent the registry already gave it to.
    RunTask(TaskRun),
    /// Stop the attempt of a task that is running; it is reported `cancelled`.
    CancelTask { task_id: TaskId, agent_id: AgentId },
    /// Stop every agent and exit.
    Shutdown { grace_ms: u64 },
}

/// An event envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(flatten)]
    pub kind: EventKind,
    pub timestamp: String,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    ProcessStarted {
        process_id: ProcessId,
        pid: u32,
    },
    ProcessStopped {
        process_id: ProcessId,
    },
    AgentStarted {
        agent_id: AgentId,
        process_id: ProcessId,
    },
    AgentStopped {
        agent_id: AgentId,
        process_id: ProcessId,
    },
    AgentFailed {
        agent_id: AgentId,
        process_id: ProcessId,
        error: String,
    },
    /// The agent failed and its worker restarts it in place, by its restart policy.
    AgentRestarting {
        agent_id: AgentId,
        process_id: ProcessId,
        error: String,
    },
    /// A task's state changed; announced by the registry's step that changed it.
    TaskChanged(TaskChange),
    /// A running task's progress report.
    TaskProgress {
        task_id: TaskId,
        agent_id: AgentId,
        data: serde_json::Value,
    },
}

impl Command {
    pub fn new(kind: CommandKind) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            timestamp: crate::now_rfc3339(),
        }
    }
}

impl Event {
    pub fn new(kind: EventKind) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            timestamp: crate::now_rfc3339(),
        }
    }

    /// The id this event is about, which is what a waiter waits on.
    pub fn subject(&self) -> &str {
        match &self.kind {
            EventKind::ProcessStarted { process_id, .. }
            | EventKind::ProcessStopped { process_id } => process_id.as_str(),
            EventKind::AgentStarted { agent_id, .. }
            | EventKind::AgentStopped { agent_id, .. }
            | EventKind::AgentFailed { agent_id, .. }
            | EventKind::AgentRestarting { agent_id, .. } => agent_id.as_str(),
            EventKind::TaskChanged(change) => change.task_id.as_str(),
            EventKind::TaskProgress { task_id, .. } => task_id.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_has_the_documented_envelope() {
        let c = Command::new(CommandKind::Terminate {
            agent_id: AgentId::parse("a1").unwrap(),
            graceful: true,
        });
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["command"], "terminate");
        assert_eq!(v["data"]["agent_id"], "a1");
        assert!(v["id"].is_string() && v["timestamp"].is_string());
        let back: Command = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn event_round_trip_and_subject() {
        let e = Event::new(EventKind::AgentStarted {
            agent_id: AgentId::parse("a1").unwrap(),
            process_id: ProcessId::parse("p1").unwrap(),
        });
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""event":"agent_started""#));
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back.subject(), "a1");
    }
}
