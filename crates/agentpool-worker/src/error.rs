//! The worker's one error type.

use agentpool_registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot start runtime: {0}")]
    Runtime(#[from] std::io::Error),
}
