//! `/health`: the master, the registry and the database, each with its round-trip latency.
//! Any part down makes it a 503 `degraded` that names the part.

use super::AppState;
use crate::config::Backend;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

pub async fn health(State(master): State<AppState>) -> (StatusCode, Json<Value>) {
    let workers = master.workers.all().len();
    let master_part = json!({"status": "up", "pid": std::process::id(), "workers": workers});
    let (registry, database) = tokio::join!(master.registry.ping(), master.store.ping());
    let registry_name = match master.config.backend {
        Backend::Redis => "redis",
        Backend::Embedded => "embedded",
    };
    let registry_part = part(
        registry.map_err(|e| e.to_string()),
        &format!("{registry_name} unavailable"),
    );
    let database_part = part(database.map_err(|e| e.to_string()), "database unavailable");
    let up = registry_part["status"] == "up" && database_part["status"] == "up";
    let mut body = json!({
        "status": if up { "ok" } else { "degraded" },
        "master": master_part,
        "database": database_part,
    });
    body["database"]["backend"] = json!(master.store.backend());
    body[if registry_name == "redis" {
        "redis"
    } else {
        "registry"
    }] = registry_part;
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

fn part(result: Result<Duration, String>, down: &str) -> Value {
    match result {
        Ok(latency) => json!({"status": "up", "latency_ms": latency.as_secs_f64() * 1000.0}),
        Err(detail) => json!({"status": "down", "error": down, "detail": detail}),
    }
}
