//! The master's one error type. The API maps each variant to a status code.

use agentpool_registry::RegistryError;
use agentpool_store::StoreError;

/// Most characters of a client's input quoted back in an error: a 60 KB pool name must not
/// come back in full.
pub const MAX_QUOTED: usize = 64;

/// `s` in quotes, cut to [`MAX_QUOTED`] characters.
pub fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTED {
        return format!("{s:?}");
    }
    let cut: String = s.chars().take(MAX_QUOTED).collect();
    format!("{cut:?}… ({} characters)", s.chars().count())
}

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("unknown pool {}", quoted(.0))]
    UnknownPool(String),
    #[error("unknown agent {}", quoted(.0))]
    UnknownAgent(String),
    #[error("unknown process {}", quoted(.0))]
    UnknownProcess(String),
    #[error("unknown task {}", quoted(.0))]
    UnknownTask(String),
    #[error("task {task:?} is {status}, not failed: only a failed task is retried")]
    TaskNotFailed {
        task: String,
        status: agentpool_types::TaskState,
    },
    #[error("pool {pool:?} is full: all {max_processes} worker processes are at capacity")]
    PoolFull { pool: String, max_processes: u32 },
    /// `detail` says why and quotes the end of the worker's log.
    #[error("worker for pool {pool:?} failed to start: {detail}")]
    WorkerStart { pool: String, detail: String },
    #[error("agent {agent:?} did not start within {secs} s; it was rolled back")]
    AgentStartTimeout { agent: String, secs: u64 },
    #[error("agent {agent:?} failed to start: {error}")]
    AgentFailed { agent: String, error: String },
    #[error("no room for pool {pool:?} within {secs} s")]
    PlacementTimeout { pool: String, secs: u64 },
    #[error(
        "drain of {process:?} stopped: {failed} agent(s) could not move ({first}); the worker is back in placement"
    )]
    DrainIncomplete {
        process: String,
        failed: usize,
        first: String,
    },
    #[error("worker {0:?} is being drained already")]
    DrainInProgress(String),
    #[error("Idempotency-Key {} was used for another request body", quoted(.0))]
    IdempotencyConflict(String),
    #[error("the request with Idempotency-Key {} ended with an error: {why}; use a new key to try again", quoted(.key))]
    IdempotentFailure { key: String, why: String },
    #[error("the master is restoring the registry from the store; try again in a moment")]
    Restoring,
    #[error("the master is shutting down")]
    ShuttingDown,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("secret_config: {0}")]
    Secret(#[from] agentpool_types::SecretError),
}

pub type Result<T> = std::result::Result<T, MasterError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_when_quoted() {
        assert_eq!(quoted("dev"), "\"dev\"");
        let long = "x".repeat(60_000);
        let msg = MasterError::UnknownPool(long).to_string();
        assert!(msg.len() < 120, "{msg}");
        assert!(msg.ends_with("(60000 characters)"), "{msg}");
    }
}
