//! `/api/v1/agents` and `/api/v1/pools/{pool}/agents`.

use super::AppState;
use super::error::{ApiError, Resource};
use super::extract::{ApiJson, ApiQuery, IdempotencyKey};
use crate::agents::SpawnOrder;
use crate::error::quoted;
use agentpool_store::AgentEvent;
use agentpool_types::pool::{MAX_NAME_LEN, is_valid_name};
use agentpool_types::{Agent, AgentId, AgentSpec, AgentState, RestartPolicy, SecretConfig};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::{IntoParams, ToSchema};

/// Most agents one bulk request may spawn.
pub const MAX_BULK_SPAWN: u64 = 1_000;
/// Longest agent name.
pub const MAX_AGENT_NAME_LEN: usize = 128;
/// Largest `config` object, serialized.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pool": "developer", "name": "reviewer-1", "config": {"model": "small"}}))]
pub struct SpawnBody {
    #[schema(schema_with = pool_schema)]
    pool: String,
    #[schema(schema_with = role_schema)]
    role: Option<String>,
    #[schema(schema_with = name_schema)]
    name: Option<String>,
    /// A JSON object handed to the agent's handler; at most 16 KiB serialized.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    restart: Option<RestartPolicy>,
    #[schema(schema_with = secret_schema)]
    secret_config: Option<SecretConfig>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    #[schema(schema_with = count_schema)]
    count: u64,
    #[schema(schema_with = role_schema)]
    role: Option<String>,
    /// A JSON object handed to each agent's handler; at most 16 KiB serialized.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    restart: Option<RestartPolicy>,
    #[schema(schema_with = secret_schema)]
    secret_config: Option<SecretConfig>,
}

fn pool_schema() -> ObjectBuilder {
    agentpool_types::schema::text(1, MAX_NAME_LEN, false, "a configured pool")
}

fn role_schema() -> ObjectBuilder {
    let what = "a-z, 0-9, '_' or '-'; the pool's role when absent";
    agentpool_types::schema::text(1, MAX_NAME_LEN, true, what).pattern(Some("^[a-z0-9_-]+$"))
}

fn name_schema() -> ObjectBuilder {
    let what = "no control or invisible formatting characters; role and id tail when absent";
    agentpool_types::schema::text(1, MAX_AGENT_NAME_LEN, true, what)
}

fn secret_schema() -> ObjectBuilder {
    let what = "secrets (API keys) for the agent's handler, at most 16 KiB serialized; sealed at \
        once, stored only in the database, never returned or logged";
    agentpool_types::schema::write_only_object(what)
}

fn count_schema() -> ObjectBuilder {
    let what = "agents to spawn, at most what the pool can ever hold";
    agentpool_types::schema::int(1, MAX_BULK_SPAWN as i64, what)
}

fn optional_count_schema() -> ObjectBuilder {
    let what = "agents to stop, oldest first; or give `all=true`";
    agentpool_types::schema::optional_int(1, MAX_BULK_SPAWN as i64, what)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpawnQuery {
    /// `false`: answer 202 at once instead of 201 when the agent runs.
    wait: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pool: Option<String>,
    #[param(value_type = Option<AgentState>)]
    status: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TerminateQuery {
    /// Let a running task finish first (the default).
    graceful: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkTerminateQuery {
    #[param(schema_with = optional_count_schema)]
    count: Option<u64>,
    all: Option<bool>,
    #[param(value_type = Option<AgentState>)]
    status: Option<String>,
    graceful: Option<bool>,
}

/// One entry of an agent's history.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: i64,
    agent_id: AgentId,
    #[schema(value_type = String)]
    event: &'static str,
    detail: String,
    at: String,
}

impl From<AgentEvent> for EventView {
    fn from(e: AgentEvent) -> Self {
        Self {
            id: e.id,
            agent_id: e.agent_id,
            event: e.kind.as_str(),
            detail: e.detail,
            at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// Spawns one agent.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", params(SpawnQuery),
    request_body = SpawnBody,
    responses((status = 201, description = "the agent runs", body = Agent),
        (status = 202, description = "placed, starting (`wait=false`)", body = Agent),
        (status = 409, description = "the idempotency key's first request failed", body = super::openapi::ErrorBody)))]
pub async fn spawn(
    State(master): State<AppState>,
    key: IdempotencyKey,
    ApiQuery(q): ApiQuery<SpawnQuery>,
    ApiJson(body): ApiJson<SpawnBody>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let fields = Fields {
        pool: body.pool,
        role: body.role,
        name: body.name,
        config: body.config,
        restart: body.restart,
    };
    let body_hash = fields.hash(1);
    let secret = checked_secret(body.secret_config)?;
    let mut spec = fields.into_spec(&master)?;
    seal(&master, secret.as_ref(), &mut spec)?;
    let wait = q.wait.unwrap_or(true);
    let order = SpawnOrder {
        agents: vec![spec],
        key: key.0,
        body_hash,
        wait,
    };
    let agent = master.spawn(order).await?.into_iter().next();
    let agent = agent.ok_or_else(|| ApiError::bad_request("the request spawned no agent"))?;
    let status = if wait {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(public(agent))))
}

/// Spawns `count` agents into a pool.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/agents", tag = "agents",
    params(("pool" = String, Path, example = "developer")), request_body = BulkBody,
    responses((status = 201, description = "they all run", body = Vec<Agent>),
        (status = 409, description = "the idempotency key's first request failed", body = super::openapi::ErrorBody)))]
pub async fn spawn_many(
    State(master): State<AppState>,
    key: IdempotencyKey,
    Path(pool): Path<String>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<(StatusCode, Json<Vec<Agent>>), ApiError> {
    let fields = Fields {
        pool,
        role: body.role,
        name: None,
        config: body.config,
        restart: body.restart,
    };
    let body_hash = fields.hash(body.count);
    let secret = checked_secret(body.secret_config)?;
    let template = fields.into_spec(&master)?;
    if !(1..=MAX_BULK_SPAWN).contains(&body.count) {
        return Err(ApiError::invalid(format!(
            "count must be between 1 and {MAX_BULK_SPAWN}, got {}",
            body.count
        )));
    }
    let spec = master.pool(&template.pool_name)?;
    let pool_max = spec.max_agents();
    if body.count > pool_max {
        return Err(ApiError::invalid(format!(
            "count {} exceeds what pool {:?} can ever hold ({pool_max})",
            body.count, spec.name
        )));
    }
    let specs = (0..body.count)
        .map(|_| {
            let mut s = AgentSpec::new(
                spec,
                Some(template.role_type.clone()),
                None,
                template.metadata.clone(),
            );
            s.restart = template.restart;
            seal(&master, secret.as_ref(), &mut s)?;
            Ok(s)
        })
        .collect::<Result<_, ApiError>>()?;
    let order = SpawnOrder {
        agents: specs,
        key: key.0,
        body_hash,
        wait: true,
    };
    let agents = master.spawn(order).await?;
    Ok((
        StatusCode::CREATED,
        Json(agents.into_iter().map(public).collect()),
    ))
}

/// `DELETE /api/v1/pools/{pool}/agents?count=N|all=true[&status=S][&graceful=true]`: the
/// oldest agents first.
#[utoipa::path(delete, path = "/api/v1/pools/{pool}/agents", tag = "agents",
    params(("pool" = String, Path, example = "developer"), BulkTerminateQuery),
    responses((status = 200, description = "the agents stopped", body = Vec<Agent>)))]
pub async fn terminate_many(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiQuery(q): ApiQuery<BulkTerminateQuery>,
) -> Result<Json<Vec<Agent>>, ApiError> {
    let count = match (q.count, q.all.unwrap_or(false)) {
        (Some(n), false) if (1..=MAX_BULK_SPAWN).contains(&n) => Some(n as usize),
        (Some(n), false) => {
            return Err(ApiError::invalid(format!(
                "count must be between 1 and {MAX_BULK_SPAWN}, got {n}"
            )));
        }
        (None, true) => None,
        _ => {
            return Err(ApiError::invalid(
                "give either count=N (1-1000) or all=true, not both and not neither",
            ));
        }
    };
    let status = parse_status(q.status)?;
    // Graceful by default, as a single terminate is.
    let graceful = q.graceful.unwrap_or(true);
    let stopped = master
        .terminate_many(&pool, count, status, graceful)
        .await?;
    Ok(Json(stopped.into_iter().map(public).collect()))
}

/// Lists agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(ListQuery),
    responses((status = 200, description = "the agents", body = Vec<Agent>)))]
pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Agent>>, ApiError> {
    let status = parse_status(q.status)?;
    let agents = master.agents(q.pool.as_deref(), status).await?;
    Ok(Json(agents.into_iter().map(public).collect()))
}

fn parse_status(status: Option<String>) -> Result<Option<AgentState>, ApiError> {
    status
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::bad_request(format!("status: unknown agent status {}", quoted(&s)))
            })
        })
        .transpose()
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "the agent", body = Agent)))]
pub async fn show(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(public(master.agent(&agent_id(&id)?).await?)))
}

/// Stops one agent.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path), TerminateQuery),
    responses((status = 200, description = "the agent, stopped", body = Agent)))]
pub async fn terminate(
    State(master): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TerminateQuery>,
) -> Result<Json<Agent>, ApiError> {
    let id = agent_id(&id)?;
    let stopped = master.terminate(&id, q.graceful.unwrap_or(true)).await?;
    Ok(Json(public(stopped)))
}

/// An agent's history, oldest first. Served from the store, so it outlives the agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}/events", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, description = "its history", body = Vec<EventView>)))]
pub async fn events(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = master.agent_events(&agent_id(&id)?).await?;
    Ok(Json(events.into_iter().map(EventView::from).collect()))
}

/// An agent as the API shows it: without its sealed `secret_config`, which is write-only.
fn public(mut agent: Agent) -> Agent {
    agent.spec.secret_config = None;
    agent
}

fn agent_id(raw: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(raw).ok_or_else(|| {
        ApiError::not_found(Resource::Agent, format!("unknown agent {}", quoted(raw)))
    })
}

/// A spawn request's `secret_config`, checked like `config`; its content is never quoted back.
fn checked_secret(secret: Option<SecretConfig>) -> Result<Option<SecretConfig>, ApiError> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    if !secret.expose().is_object() {
        return Err(ApiError::invalid("secret_config: must be a JSON object"));
    }
    if secret.expose_json().len() > MAX_CONFIG_BYTES {
        return Err(ApiError::invalid(format!(
            "secret_config: larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    Ok(Some(secret))
}

/// Seals `secret` for the agent of `spec`: from here on only the sealed form travels.
fn seal(
    master: &AppState,
    secret: Option<&SecretConfig>,
    spec: &mut AgentSpec,
) -> Result<(), ApiError> {
    if let Some(secret) = secret {
        spec.secret_config = Some(master.seal_secret(secret, &spec.agent_id)?);
    }
    Ok(())
}

/// The fields of a spawn request, checked before anything is written.
struct Fields {
    pool: String,
    role: Option<String>,
    name: Option<String>,
    config: Option<Value>,
    restart: Option<RestartPolicy>,
}

impl Fields {
    /// What was asked, as a digest: a retry with the same idempotency key must ask the same.
    /// `secret_config` is left out: a digest of a secret kept in the store would let anyone
    /// reading the store check a guess of it.
    fn hash(&self, count: u64) -> String {
        let canonical = serde_json::json!({
            "pool": self.pool, "role": self.role, "name": self.name,
            "config": self.config, "restart": self.restart, "count": count,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn into_spec(self, master: &AppState) -> Result<AgentSpec, ApiError> {
        if self.pool.len() > MAX_NAME_LEN {
            return Err(ApiError::invalid(format!(
                "pool: longer than {MAX_NAME_LEN} characters"
            )));
        }
        let pool = master.pool(&self.pool)?;
        if let Some(role) = &self.role
            && !is_valid_name(role)
        {
            return Err(ApiError::invalid(format!(
                "role: must be 1-{MAX_NAME_LEN} characters of a-z, 0-9, '_' or '-'"
            )));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || name.chars().count() > MAX_AGENT_NAME_LEN
                || !name.chars().all(agentpool_types::pool::is_shown_as_is))
        {
            return Err(ApiError::invalid(format!(
                "name: must be 1-{MAX_AGENT_NAME_LEN} characters, none of them control or invisible formatting characters"
            )));
        }
        let config = self
            .config
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !config.is_object() {
            return Err(ApiError::invalid("config: must be a JSON object"));
        }
        if config.to_string().len() > MAX_CONFIG_BYTES {
            return Err(ApiError::invalid(format!(
                "config: larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let mut spec = AgentSpec::new(pool, self.role, self.name, config);
        spec.restart = self.restart;
        Ok(spec)
    }
}
