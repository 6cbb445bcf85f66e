//! The REST API: one file per resource, errors in [`error`], extractors in [`extract`].
//!
//! - `agents`: spawn, bulk spawn, list, show, terminate.
//! - `pools`: pool stats (`/pools` and its alias `/agents/pools`), one pool with its workers.
//! - `processes`: list workers, drain one.
//! - `health`: the master and Redis, with latency.

mod agents;
pub mod error;
mod extract;
mod health;
mod pools;
mod processes;

use crate::Master;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use error::ApiError;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

/// Largest request body accepted; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub type AppState = Arc<Master>;

/// The whole API as a router, so tests and `run` serve the same thing.
pub fn app(master: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/agents", post(agents::spawn).get(agents::list))
        .route("/api/v1/agents/pools", get(pools::list))
        .route(
            "/api/v1/agents/{id}",
            get(agents::show).delete(agents::terminate),
        )
        .route("/api/v1/agents/{id}/events", get(agents::events))
        .route("/api/v1/pools", get(pools::list))
        .route("/api/v1/pools/{pool}", get(pools::show))
        .route("/api/v1/pools/{pool}/agents", post(agents::spawn_many))
        .route("/api/v1/processes", get(processes::list))
        .route("/api/v1/processes/{id}", delete(processes::drain))
        .fallback(|| async { ApiError::not_found("route", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(master)
}
