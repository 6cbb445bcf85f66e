//! `/api/v1/agents` and `/api/v1/pools/{pool}/agents`.

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use crate::agents::SpawnRequest;
use agentpool_store::AgentEvent;
use agentpool_types::pool::{MAX_NAME_LEN, is_valid_name};
use agentpool_types::{Agent, AgentId, AgentState, RestartPolicy};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

/// Most agents one bulk request may spawn.
pub const MAX_BULK_SPAWN: u64 = 1_000;
/// Longest agent name.
pub const MAX_AGENT_NAME_LEN: usize = 128;
/// Largest `config` object, serialized.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnBody {
    pool: String,
    role: Option<String>,
    name: Option<String>,
    config: Option<Value>,
    restart: Option<RestartPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    count: u64,
    role: Option<String>,
    config: Option<Value>,
    restart: Option<RestartPolicy>,
}

#[derive(Deserialize)]
pub struct SpawnQuery {
    wait: Option<bool>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pool: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
pub struct TerminateQuery {
    graceful: Option<bool>,
}

pub async fn spawn(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<SpawnQuery>,
    ApiJson(body): ApiJson<SpawnBody>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let mut req = validate(&master, body.pool, body.role, body.name, body.config)?;
    req.restart = body.restart;
    let wait = q.wait.unwrap_or(true);
    let agent = master.spawn(req, wait).await?;
    let status = if wait {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(agent)))
}

pub async fn spawn_many(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<(StatusCode, Json<Vec<Agent>>), ApiError> {
    let mut req = validate(&master, pool, body.role, None, body.config)?;
    req.restart = body.restart;
    if !(1..=MAX_BULK_SPAWN).contains(&body.count) {
        return Err(ApiError::invalid(format!(
            "count must be between 1 and {MAX_BULK_SPAWN}, got {}",
            body.count
        )));
    }
    let pool_max = master.pool(&req.pool)?.spec.max_agents();
    if body.count > pool_max {
        return Err(ApiError::invalid(format!(
            "count {} exceeds what pool {:?} can ever hold ({pool_max})",
            body.count, req.pool
        )));
    }
    let count = u32::try_from(body.count).unwrap_or(u32::MAX);
    let agents = master.spawn_many(req, count).await?;
    Ok((StatusCode::CREATED, Json(agents)))
}

pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Agent>>, ApiError> {
    let status: Option<AgentState> = q
        .status
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("status: unknown agent status {s:?}")))
        })
        .transpose()?;
    let pools = match q.pool {
        Some(p) => vec![master.pool(&p)?.name().to_owned()],
        None => master.pool_names().to_vec(),
    };
    let mut agents = master.registry.agents(&pools).await?;
    if let Some(status) = status {
        agents.retain(|a| a.status == status);
    }
    Ok(Json(agents))
}

pub async fn show(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let id = agent_id(&id)?;
    let agent = master.registry.agent(&id).await?;
    agent
        .map(Json)
        .ok_or_else(|| ApiError::not_found("agent", format!("unknown agent {:?}", id.as_str())))
}

pub async fn terminate(
    State(master): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TerminateQuery>,
) -> Result<Json<Agent>, ApiError> {
    let id = agent_id(&id)?;
    Ok(Json(
        master.terminate(&id, q.graceful.unwrap_or(true)).await?,
    ))
}

/// An agent's history, oldest first. Served from the store, so it outlives the agent.
pub async fn events(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let id = agent_id(&id)?;
    let events = master
        .store
        .events(&id)
        .await
        .map_err(crate::MasterError::from)?;
    if events.is_empty()
        && master
            .store
            .agent(&id)
            .await
            .map_err(crate::MasterError::from)?
            .is_none()
    {
        return Err(ApiError::not_found(
            "agent",
            format!("unknown agent {:?}", id.as_str()),
        ));
    }
    Ok(Json(events.iter().map(event_json).collect()))
}

fn event_json(e: &AgentEvent) -> Value {
    serde_json::json!({
        "id": e.id,
        "agent_id": e.agent_id,
        "event": e.kind.as_str(),
        "detail": e.detail,
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn agent_id(raw: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(raw)
        .ok_or_else(|| ApiError::not_found("agent", format!("unknown agent {raw:?}")))
}

/// Checks every field of a spawn before anything is written.
fn validate(
    master: &AppState,
    pool: String,
    role: Option<String>,
    name: Option<String>,
    config: Option<Value>,
) -> Result<SpawnRequest, ApiError> {
    if pool.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid(format!(
            "pool: longer than {MAX_NAME_LEN} characters"
        )));
    }
    master.pool(&pool)?;
    if let Some(role) = &role
        && !is_valid_name(role)
    {
        return Err(ApiError::invalid(
            "role: must be 1-64 characters of a-z, 0-9, '_' or '-'",
        ));
    }
    if let Some(name) = &name
        && (name.is_empty()
            || name.chars().count() > MAX_AGENT_NAME_LEN
            || name.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(format!(
            "name: must be 1-{MAX_AGENT_NAME_LEN} printable characters"
        )));
    }
    let config = config.unwrap_or_else(|| Value::Object(Default::default()));
    if !config.is_object() {
        return Err(ApiError::invalid("config: must be a JSON object"));
    }
    if config.to_string().len() > MAX_CONFIG_BYTES {
        return Err(ApiError::invalid(format!(
            "config: larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(SpawnRequest {
        pool,
        role,
        name,
        config,
        restart: None,
    })
}
