//! The master's one error type. The API maps each variant to a status code.

use agentpool_registry::RegistryError;
use agentpool_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("unknown process {0:?}")]
    UnknownProcess(String),
    #[error("pool {pool:?} is full: all {max_processes} worker processes are at capacity")]
    PoolFull { pool: String, max_processes: u32 },
    /// `detail` says why and quotes the end of the worker's log.
    #[error("worker for pool {pool:?} failed to start: {detail}")]
    WorkerStart { pool: String, detail: String },
    #[error("agent {agent:?} did not start within {secs} s")]
    AgentStartTimeout { agent: String, secs: u64 },
    #[error("agent {agent:?} failed to start: {error}")]
    AgentFailed { agent: String, error: String },
    #[error("no room for pool {pool:?} within {secs} s")]
    PlacementTimeout { pool: String, secs: u64 },
    #[error("drain of {process:?} incomplete: {failed} agent(s) could not move: {first}")]
    DrainIncomplete {
        process: String,
        failed: usize,
        first: String,
    },
    #[error("the master is shutting down")]
    ShuttingDown,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, MasterError>;
