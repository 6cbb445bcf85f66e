//! `/health`: the master and Redis, with Redis's round-trip latency.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

pub async fn health(State(master): State<AppState>) -> (StatusCode, Json<Value>) {
    let workers = master.workers.all().len();
    let master_part = json!({"status": "up", "pid": std::process::id(), "workers": workers});
    match master.registry.ping().await {
        Ok(latency) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "master": master_part,
                "redis": {"status": "up", "latency_ms": latency.as_secs_f64() * 1000.0},
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "degraded",
                "master": master_part,
                "redis": {"status": "down", "error": "redis unavailable", "detail": e.to_string()},
            })),
        ),
    }
}
