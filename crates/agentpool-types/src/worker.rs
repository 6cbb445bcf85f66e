//! [`WorkerConfig`]: what the master tells a worker process it starts.
//!
//! It travels as JSON in the worker's environment ([`WORKER_CONFIG_ENV`]), not on its command
//! line: the registry URL may hold a password, and a process's argv is world-readable.

use crate::{PoolSpec, ProcessId, SecretKey};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The environment variable that carries a worker's [`WorkerConfig`] as JSON.
pub const WORKER_CONFIG_ENV: &str = "AGENTPOOL_WORKER_CONFIG";

/// A worker's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The pool the worker serves, as configured: capacity, restart policy, handler.
    pub pool: PoolSpec,
    pub process_id: ProcessId,
    /// Where the registry is: a `redis://` URL, or `unix:///…` for the embedded registry.
    pub control_url: String,
    /// For a `rediss://` control URL: the CA certificate (PEM) to verify Redis with, instead of
    /// the system's roots.
    #[serde(default)]
    pub redis_ca_file: Option<std::path::PathBuf>,
    pub key_prefix: String,
    pub heartbeat_interval_ms: u64,
    /// How long agents get to stop on shutdown before they are aborted.
    pub grace_ms: u64,
    /// The key that opens agents' sealed `secret_config`, just before their handler starts.
    #[serde(default)]
    pub secret_key: Option<SecretKey>,
}

impl WorkerConfig {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }
}
