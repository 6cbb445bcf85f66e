//! The socket protocol: length-delimited frames (at most [`MAX_FRAME`]) of JSON.
//!
//! - worker to master: `{"id": n, "call": {"<method>": {...}}}`, one per `ControlPlane` call;
//! - master to worker: `{"id": n, "ok": <result>}` or `{"id": n, "err": "..."}`, and
//!   `{"command": <Command>}` pushed once the worker subscribed with the `commands` call.

use crate::{Heartbeat, Hosted};
use agentpool_types::{
    AgentId, AgentState, Command, Event, ProcessId, ProcessState, TaskId, TaskReport, WorkerProcess,
};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// Largest frame either side accepts: far above any real call, small enough that a corrupt
/// length prefix cannot make a peer allocate gigabytes. Task runs and reports carry a task's
/// input (up to the API's 1 MiB) and output (which handlers do not bound) in one frame; an
/// oversized frame would end the connection, which the master takes for a dead worker.
pub const MAX_FRAME: usize = 64 << 20;

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub call: Call,
}

/// One `ControlPlane` call, by method name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    RegisterWith {
        process: WorkerProcess,
        agents: Vec<Hosted>,
    },
    Heartbeat {
        process_id: ProcessId,
        rss_bytes: u64,
        cpu_percent: f32,
    },
    Agent {
        agent_id: AgentId,
    },
    SetAgentStatus {
        process_id: ProcessId,
        agent_id: AgentId,
        status: AgentState,
        error: Option<String>,
        epoch: Option<u64>,
        restarted: bool,
    },
    SetProcessStatus {
        process_id: ProcessId,
        status: ProcessState,
    },
    Publish {
        pool: String,
        event: Event,
    },
    Commands {
        pool: String,
        process_id: ProcessId,
    },
    AgentReady {
        process_id: ProcessId,
        agent_id: AgentId,
        epoch: Option<u64>,
    },
    FinishTask {
        report: TaskReport,
    },
    Task {
        task_id: TaskId,
    },
}

/// [`Heartbeat`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beat {
    Alive(Vec<AgentId>, Vec<crate::Holding>),
    Reaped,
    Unregistered,
}

impl From<Heartbeat> for Beat {
    fn from(h: Heartbeat) -> Self {
        match h {
            Heartbeat::Alive { assigned, holding } => Beat::Alive(assigned, holding),
            Heartbeat::Reaped => Beat::Reaped,
            Heartbeat::Unregistered => Beat::Unregistered,
        }
    }
}

impl From<Beat> for Heartbeat {
    fn from(b: Beat) -> Self {
        match b {
            Beat::Alive(assigned, holding) => Heartbeat::Alive { assigned, holding },
            Beat::Reaped => Heartbeat::Reaped,
            Beat::Unregistered => Heartbeat::Unregistered,
        }
    }
}

/// What the master sends. Untagged: the field names tell the three apart.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Ok { id: u64, ok: serde_json::Value },
    Err { id: u64, err: String },
    Push { command: Command },
}

#[cfg(test)]
mod fuzz;
