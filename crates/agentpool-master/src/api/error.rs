//! `ApiError`: every failure as `{"error": {"code": "...", "message": "..."}}` with a status.
//! Internal details are logged, not returned.

use crate::MasterError;
use agentpool_registry::RegistryError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What a 404 could not find; each has its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Pool,
    Agent,
    Process,
    Task,
    Route,
}

impl Resource {
    fn code(self) -> &'static str {
        match self {
            Resource::Pool => "unknown_pool",
            Resource::Agent => "unknown_agent",
            Resource::Process => "unknown_process",
            Resource::Task => "unknown_task",
            Resource::Route => "not_found",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: Resource, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what.code(), message)
    }

    /// A well-formed request whose values are out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            MasterError::UnknownPool(_) => Self::not_found(Resource::Pool, msg),
            MasterError::UnknownAgent(_) => Self::not_found(Resource::Agent, msg),
            MasterError::UnknownProcess(_) => Self::not_found(Resource::Process, msg),
            MasterError::UnknownTask(_) => Self::not_found(Resource::Task, msg),
            MasterError::TaskNotFailed { .. } => Self::new(S::CONFLICT, "task_not_failed", msg),
            // The request asks for more than the pool may hold now: a conflict with its state (its
            // `max_processes`), not an outage of the master; retry after terminating agents.
            MasterError::PoolFull { .. } => Self::new(S::CONFLICT, "pool_full", msg),
            MasterError::WorkerStart { .. } => {
                Self::new(S::SERVICE_UNAVAILABLE, "worker_start_failed", msg)
            }
            MasterError::AgentStartTimeout { .. } | MasterError::PlacementTimeout { .. } => {
                Self::new(S::SERVICE_UNAVAILABLE, "timeout", msg)
            }
            MasterError::AgentFailed { .. } => {
                Self::new(S::INTERNAL_SERVER_ERROR, "agent_failed", msg)
            }
            MasterError::DrainIncomplete { .. } => Self::new(S::CONFLICT, "drain_incomplete", msg),
            MasterError::DrainInProgress(_) => Self::new(S::CONFLICT, "drain_in_progress", msg),
            MasterError::IdempotencyConflict(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", msg)
            }
            MasterError::IdempotentFailure { .. } => {
                Self::new(S::CONFLICT, "idempotency_key_failed", msg)
            }
            MasterError::Restoring => Self::new(S::SERVICE_UNAVAILABLE, "restoring", msg),
            MasterError::ShuttingDown => Self::new(S::SERVICE_UNAVAILABLE, "shutting_down", msg),
            MasterError::Registry(RegistryError::Unavailable(detail)) => {
                tracing::warn!(%detail, "request failed: redis unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "redis_unavailable",
                    "redis unavailable",
                )
            }
            MasterError::Store(e) if e.is_unavailable() => {
                tracing::warn!(detail = %e, "request failed: database unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "database unavailable",
                )
            }
            MasterError::Registry(_)
            | MasterError::Io(_)
            | MasterError::Store(_)
            | MasterError::Secret(_) => {
                tracing::error!(error = %msg, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the master log",
                )
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        MasterError::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        use StatusCode as S;
        match r {
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(S::BAD_REQUEST, "malformed_json", r.body_text())
            }
            JsonRejection::JsonDataError(_) => {
                Self::new(S::BAD_REQUEST, "invalid_body", r.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_) if is_body_timeout(&r) => Self::new(
                S::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time",
            ),
            JsonRejection::BytesRejection(_) if r.status() == S::PAYLOAD_TOO_LARGE => Self::new(
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
                // One message for every route: the rejection does not say which limit it was.
                format!(
                    "request body exceeds {} bytes ({} for a batch of tasks)",
                    super::MAX_BODY_BYTES,
                    super::MAX_BATCH_BODY_BYTES
                ),
            ),
            _ => Self::new(r.status(), "bad_request", r.body_text()),
        }
    }
}

/// Whether a body was cut off by the body read timeout.
fn is_body_timeout(r: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}
