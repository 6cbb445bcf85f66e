//! `/api/v1/processes`: list workers, drain one.

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use agentpool_types::{ProcessId, WorkerProcess};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct ListQuery {
    pool: Option<String>,
}

pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WorkerProcess>>, ApiError> {
    if let Some(pool) = &q.pool {
        master.pool(pool)?;
    }
    Ok(Json(master.processes(q.pool.as_deref()).await?))
}

pub async fn drain(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pid = ProcessId::parse(&id)
        .ok_or_else(|| ApiError::not_found("process", format!("unknown process {id:?}")))?;
    let moved = master.drain(&pid).await?;
    Ok(Json(json!({"process_id": pid, "moved_agents": moved})))
}
