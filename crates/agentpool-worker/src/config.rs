//! What a worker is told by the master that starts it.

use agentpool_types::restart::RestartLimits;
use agentpool_types::{ProcessId, RestartPolicy};
use std::time::Duration;

/// A worker's settings. The master passes them as command-line flags.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub pool: String,
    pub process_id: ProcessId,
    /// Where the registry is: a `redis://` URL.
    pub control_url: String,
    pub key_prefix: String,
    pub max_agents: u32,
    pub heartbeat_interval: Duration,
    /// How long agents get to stop on shutdown before they are aborted.
    pub grace: Duration,
    /// The pool's restart policy for agents that fail in place; an agent may override it.
    pub restart: RestartPolicy,
    pub restart_limits: RestartLimits,
}
