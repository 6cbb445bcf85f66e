//! `/api/v1/pools`, its alias `/api/v1/agents/pools`, and `/api/v1/pools/{pool}`.

use super::AppState;
use super::error::ApiError;
use agentpool_types::{PoolStats, WorkerProcess};
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

/// Every pool's numbers, in one registry round trip.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools",
    responses((status = 200, description = "one row per pool", body = Vec<PoolStats>)))]
pub async fn list(State(master): State<AppState>) -> Result<Json<Vec<PoolStats>>, ApiError> {
    let started = tokio::time::Instant::now();
    let stats = master.pool_stats(master.pool_names()).await?;
    metrics::histogram!("agentpool_pools_request_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(Json(stats))
}

/// The same as `/api/v1/pools`, under its older name.
#[utoipa::path(get, path = "/api/v1/agents/pools", tag = "pools",
    responses((status = 200, description = "one row per pool", body = Vec<PoolStats>)))]
pub async fn list_alias(state: State<AppState>) -> Result<Json<Vec<PoolStats>>, ApiError> {
    list(state).await
}

#[derive(Serialize, ToSchema)]
pub struct PoolDetail {
    #[serde(flatten)]
    stats: PoolStats,
    processes: Vec<WorkerProcess>,
}

/// One pool with its workers.
#[utoipa::path(get, path = "/api/v1/pools/{pool}", tag = "pools", params(("pool" = String, Path, example = "developer")),
    responses((status = 200, description = "the pool", body = PoolDetail)))]
pub async fn show(
    State(master): State<AppState>,
    Path(pool): Path<String>,
) -> Result<Json<PoolDetail>, ApiError> {
    let name = master.pool(&pool)?.name.clone();
    let (stats, processes) = tokio::try_join!(
        master.pool_stats(std::slice::from_ref(&name)),
        master.processes(Some(&name)),
    )?;
    let stats = stats
        .into_iter()
        .next()
        .ok_or_else(|| crate::MasterError::UnknownPool(pool.clone()))?;
    Ok(Json(PoolDetail { stats, processes }))
}
