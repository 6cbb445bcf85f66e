//! Domain and protocol types shared by every agentpool crate. No I/O lives here.
//!
//! - [`ids`]: `AgentId`, `ProcessId` and `TaskId`, uuid v7 strings.
//! - [`text`]: `text_enum!`, the text form of enums stored or sent as words.
//! - [`pool`]: `PoolSpec` (one configured pool), its `Placement` and limits.
//! - [`autoscale`]: `Autoscale`, a pool sized by its task backlog.
//! - [`handler`]: `Handler`, what a pool's agents run for each task: echo, exec or http.
//! - [`state`]: the lifecycles, `AgentState` and `ProcessState`.
//! - [`agent`]: `AgentSpec`, one agent from the route to the worker, and `Agent`, its live record.
//! - [`process`]: `WorkerProcess`, one worker as the registry shows it.
//! - [`task`]: `TaskSpec` and `Task`, work for a pool's agents; attempts, outcomes, rules.
//! - [`protocol`]: `Command` and `Event`, the JSON envelopes on the pub/sub channels.
//! - [`placement`]: the pure placement choice both registries share.
//! - [`restart`]: the pure restart decision (policy, intensity, backoff).
//! - [`schema`]: OpenAPI schema parts whose limits are the constants the master checks.
//! - [`secret`]: `SecretConfig`, an agent's secrets, sealed under a `SecretKey` for transit and storage.
//! - [`stats`]: `PoolStats`, the `/pools` row.
//! - [`worker`]: `WorkerConfig`, what the master tells a worker it starts.

pub mod agent;
pub mod autoscale;
pub mod handler;
pub mod ids;
pub mod placement;
pub mod pool;
pub mod process;
pub mod protocol;
pub mod restart;
pub mod schema;
pub mod secret;
pub mod state;
pub mod stats;
pub mod task;
pub mod text;
pub mod worker;

pub use agent::{Agent, AgentSpec};
pub use autoscale::{Autoscale, AutoscaleView};
pub use handler::{ExecHandler, ExecMode, Handler, HttpHandler};
pub use ids::{AgentId, ProcessId, TaskId};
pub use placement::{Candidate, choose};
pub use pool::{Circuit, Placement, PoolSpec, SpecError};
pub use process::WorkerProcess;
pub use protocol::{Command, CommandKind, Event, EventKind};
pub use restart::RestartPolicy;
pub use secret::{SealedSecret, SecretConfig, SecretError, SecretKey};
pub use state::{AgentState, ProcessState};
pub use stats::{PoolCounts, PoolState, PoolStats};
pub use task::{
    BroadcastRequest, CircuitState, Task, TaskBatch, TaskChange, TaskCounts, TaskList, TaskOutcome,
    TaskReport, TaskRequest, TaskRules, TaskRun, TaskSpec, TaskState,
};
pub use worker::{WORKER_CONFIG_ENV, WorkerConfig};

/// Current time as RFC 3339 with milliseconds, the format of every timestamp in the registry.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A connection URL with its password replaced by `***`, for logs and error messages.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_url("redis://:s3cret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            mask_url("postgres://app:pw@db:5432/agentpool"),
            "postgres://app:***@db:5432/agentpool"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(mask_url("not a url"), "not a url");
    }
}
