//! `/api/v1/processes`: list workers, drain one.

use super::AppState;
use super::error::{ApiError, Resource};
use super::extract::ApiQuery;
use crate::error::quoted;
use agentpool_types::{ProcessId, WorkerProcess};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct ListQuery {
    pool: Option<String>,
}

/// What a drain did.
#[derive(Serialize)]
pub struct Drained {
    process_id: ProcessId,
    moved_agents: usize,
}

pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WorkerProcess>>, ApiError> {
    Ok(Json(master.processes(q.pool.as_deref()).await?))
}

pub async fn drain(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Drained>, ApiError> {
    let process_id = ProcessId::parse(&id).ok_or_else(|| {
        ApiError::not_found(
            Resource::Process,
            format!("unknown process {}", quoted(&id)),
        )
    })?;
    let moved_agents = master.drain(&process_id).await?;
    Ok(Json(Drained {
        process_id,
        moved_agents,
    }))
}
