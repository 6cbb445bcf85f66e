//! `/health`: the master, the registry and the database, each with its round-trip latency.
//! Any part down makes it a 503 `degraded` that names the part; the driver's own words go to
//! the log, not to the client. With API tokens configured, a caller without one (a load
//! balancer) gets the status alone: the same code, `{"status": …}` and nothing else.

use super::AppState;
use crate::auth::Caller;
use crate::config::Backend;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Without a token (when tokens are configured) only `status` is present.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when a part is down; `starting` until the first restore round has
    /// reconciled the registry with the store.
    #[schema(value_type = String)]
    status: &'static str,
    #[schema(required = false)]
    master: MasterPart,
    /// Present in Redis mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Part>,
    /// Present in embedded mode: the registry in the master's memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<Part>,
    #[schema(required = false)]
    database: DatabasePart,
}

#[derive(Serialize, ToSchema)]
struct MasterPart {
    #[schema(value_type = String)]
    status: &'static str,
    pid: u32,
    workers: usize,
}

#[derive(Serialize, ToSchema)]
struct Part {
    #[schema(value_type = String)]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DatabasePart {
    #[schema(value_type = String)]
    backend: &'static str,
    #[serde(flatten)]
    part: Part,
}

impl Part {
    fn of(what: &str, result: Result<Duration, String>) -> Self {
        match result {
            Ok(latency) => Part {
                status: "up",
                latency_ms: Some(latency.as_secs_f64() * 1000.0),
                error: None,
            },
            Err(detail) => {
                tracing::warn!(%detail, "health: {what} unavailable");
                Part {
                    status: "down",
                    latency_ms: None,
                    error: Some(format!("{what} unavailable")),
                }
            }
        }
    }

    fn up(&self) -> bool {
        self.status == "up"
    }
}

#[utoipa::path(get, path = "/health", tag = "meta", security((), ("bearer" = [])),
    responses((status = 200, description = "every part is up", body = Health),
        (status = 503, description = "a part is down (`degraded`) or the master is starting", body = Health)))]
pub async fn health(State(master): State<AppState>, caller: Option<Extension<Caller>>) -> Response {
    let report = master.health().await;
    let registry = Part::of(report.backend.as_str(), report.registry);
    let database = DatabasePart {
        backend: report.store_backend,
        part: Part::of("database", report.database),
    };
    let up = registry.up() && database.part.up();
    let restored = report.restored;
    let (redis, registry) = match report.backend {
        Backend::Redis => (Some(registry), None),
        Backend::Embedded => (None, Some(registry)),
    };
    let body = Health {
        status: match (up, restored) {
            (false, _) => "degraded",
            (true, false) => "starting",
            (true, true) => "ok",
        },
        master: MasterPart {
            status: "up",
            pid: std::process::id(),
            workers: report.workers,
        },
        redis,
        registry,
        database,
    };
    let status = if up && restored {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if caller.is_none() {
        let bare = serde_json::json!({"status": body.status});
        return (status, Json(bare)).into_response();
    }
    (status, Json(body)).into_response()
}
