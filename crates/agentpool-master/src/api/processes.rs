//! `/api/v1/processes`: list workers, drain one.

use super::AppState;
use super::error::{ApiError, Resource};
use super::extract::ApiQuery;
use crate::error::quoted;
use agentpool_types::{ProcessId, WorkerProcess};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pool: Option<String>,
}

/// What a drain did.
#[derive(Serialize, ToSchema)]
pub struct Drained {
    process_id: ProcessId,
    moved_agents: usize,
}

/// Worker processes, of one pool or all.
#[utoipa::path(get, path = "/api/v1/processes", tag = "processes", params(ListQuery),
    responses((status = 200, description = "the workers", body = Vec<WorkerProcess>)))]
pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WorkerProcess>>, ApiError> {
    Ok(Json(master.processes(q.pool.as_deref()).await?))
}

/// Moves a worker's agents elsewhere and stops it. Needs the `admin` scope.
#[utoipa::path(delete, path = "/api/v1/processes/{id}", tag = "processes",
    params(("id" = String, Path)),
    responses((status = 200, description = "drained and stopped", body = Drained),
        (status = 409, description = "a drain of it is already under way", body = super::openapi::ErrorBody)))]
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
