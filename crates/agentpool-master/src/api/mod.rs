//! The REST API: one file per resource, errors in [`error`], extractors in [`extract`], the
//! token check in front of every route in `access`.
//!
//! - `agents`: spawn, bulk spawn, list, show, terminate.
//! - `pools`: pool stats (`/pools` and its alias `/agents/pools`), one pool with its workers.
//! - `processes`: list workers, drain one.
//! - `health`: the master, the registry and the database, with latency.
//! - `tasks`: submit (pool, batch, ask one agent, broadcast), read, cancel, retry, stats.
//! - `task_events`: one task's Server-Sent Events.
//! - `events`: the Server-Sent Events of everything that happens, with replay.
//! - `metrics`: Prometheus metrics.
//! - `dashboard`: the web page at `/`, its script and stylesheet, embedded at build time.
//! - [`openapi`]: the OpenAPI document, derived from the handlers and body types.

mod access;
mod agents;
mod dashboard;
pub mod error;
mod events;
mod extract;
mod health;
mod metrics;
pub mod openapi;
mod pools;
mod processes;
mod task_events;
mod tasks;

use crate::Master;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use error::{ApiError, Resource};
use std::sync::Arc;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

/// Largest request body accepted; larger ones get a 413. A task's input may be 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// Largest batch of tasks, in bytes.
pub const MAX_BATCH_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The spawn limits, for clients and tests that check the document against them.
pub use agents::{MAX_AGENT_NAME_LEN, MAX_BULK_SPAWN};

pub type AppState = Arc<Master>;

/// The whole API as a router, so tests and `run` serve the same thing.
pub fn app(master: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/events", get(events::events))
        .route("/", get(dashboard::index))
        // Literal paths, as the OpenAPI test reads them here; the page links SCRIPT_PATH and
        // STYLE_PATH, so the browser test fails if these differ.
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/style.css", get(dashboard::style))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/agents", post(agents::spawn).get(agents::list))
        .route("/api/v1/agents/pools", get(pools::list_alias))
        .route(
            "/api/v1/agents/{id}",
            get(agents::show).delete(agents::terminate),
        )
        .route("/api/v1/agents/{id}/events", get(agents::events))
        .route("/api/v1/pools", get(pools::list))
        .route("/api/v1/pools/{pool}", get(pools::show))
        .route(
            "/api/v1/pools/{pool}/agents",
            post(agents::spawn_many).delete(agents::terminate_many),
        )
        .route("/api/v1/pools/{pool}/tasks", post(tasks::submit))
        .route(
            "/api/v1/pools/{pool}/tasks/batch",
            post(tasks::batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
        .route("/api/v1/pools/{pool}/broadcast", post(tasks::broadcast))
        .route("/api/v1/pools/{pool}/stats", get(tasks::stats))
        .route("/api/v1/agents/{id}/tasks", post(tasks::ask))
        .route("/api/v1/tasks", get(tasks::list))
        .route("/api/v1/tasks/{id}", get(tasks::show).delete(tasks::cancel))
        .route("/api/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/api/v1/tasks/{id}/events", get(task_events::events))
        .route("/api/v1/processes", get(processes::list))
        .route("/api/v1/processes/{id}", delete(processes::drain))
        .fallback(|| async { ApiError::not_found(Resource::Route, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            master.clone(),
            access::check,
        ))
        // A 5xx here is an answer the API chose (an outage, a full pool) and logged with its
        // cause where it arose; the trace layer must not log it again as a server failure.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(master)
}
