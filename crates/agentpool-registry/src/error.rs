//! The registry's one error type.

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or did not answer: callers answer 503.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The registry answered something that does not fit the schema.
    #[error("registry data malformed: {0}")]
    Malformed(String),
    /// The agent was removed while an operation on it was under way.
    #[error("agent was terminated meanwhile")]
    AgentGone,
    /// A URL or setting that cannot work.
    #[error("registry configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, RegistryError>;

impl From<::redis::RedisError> for RegistryError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.to_string().contains("AGENT_GONE") {
            RegistryError::AgentGone
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            RegistryError::Unavailable(e.to_string())
        } else {
            RegistryError::Malformed(e.to_string())
        }
    }
}

impl From<::redis::ParsingError> for RegistryError {
    fn from(e: ::redis::ParsingError) -> Self {
        RegistryError::Malformed(e.to_string())
    }
}
