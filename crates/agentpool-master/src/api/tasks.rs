//! `/api/v1/pools/{pool}/tasks` (one, a batch), `/api/v1/agents/{id}/tasks` (ask one agent),
//! `/api/v1/pools/{pool}/broadcast`, `/api/v1/tasks[/{id}]` (read, cancel, retry) and
//! `/api/v1/pools/{pool}/stats`.

use super::AppState;
use super::error::{ApiError, Resource};
use super::extract::{ApiJson, ApiQuery};
use crate::error::quoted;
use agentpool_store::{TaskFilter, TaskStats};
use agentpool_types::task::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, MAX_ATTEMPTS_LIMIT, MAX_PRIORITY,
};
use agentpool_types::{
    AgentId, BroadcastRequest, Task, TaskBatch, TaskId, TaskList, TaskRequest, TaskSpec, TaskState,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// Largest task input, serialized.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
pub use agentpool_types::task::MAX_TASK_BATCH as MAX_BATCH;
/// Longest `?wait=`.
pub const MAX_WAIT_SECS: f64 = 300.0;
pub use agentpool_types::task::MAX_TASK_KEY_LEN as MAX_KEY_LEN;
pub use agentpool_types::task::MAX_TASK_TIMEOUT_SECS;
/// Most tasks one listing returns, and the default.
pub const MAX_LIST: u32 = 1_000;
pub const DEFAULT_LIST: u32 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    #[param(schema_with = wait_schema)]
    wait: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pool: Option<String>,
    #[param(value_type = Option<TaskState>)]
    status: Option<String>,
    #[param(schema_with = limit_schema)]
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A number and a unit, `s`, `m`, `h` or `d`, at most 30 days; `1h` when absent.
    #[param(pattern = "^[0-9]+[smhd]$")]
    window: Option<String>,
}

fn wait_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(MAX_WAIT_SECS))
        .description(Some("seconds to wait for the outcome, decimals allowed"))
}

fn limit_schema() -> ObjectBuilder {
    let what = "most tasks returned, newest first";
    agentpool_types::schema::optional_int(1, MAX_LIST.into(), what)
        .default(Some(DEFAULT_LIST.into()))
}

/// `POST /api/v1/pools/{pool}/tasks`: 202 with the task; with `?wait=S`, 200 with it finished
/// if it finished within S seconds; 200 with the existing task for a known idempotency key.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/tasks", tag = "tasks",
    params(("pool" = String, Path, example = "developer"), WaitQuery), request_body = TaskRequest,
    responses((status = 202, description = "queued", body = Task),
        (status = 200, description = "finished within `wait`, or known by its idempotency key", body = Task)))]
pub async fn submit(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<TaskRequest>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let wait = parse_wait(q.wait)?;
    let spec = into_spec(body, &pool, None)?;
    one(&master, spec, wait).await
}

/// `POST /api/v1/agents/{id}/tasks`: the same, run by that agent only.
#[utoipa::path(post, path = "/api/v1/agents/{id}/tasks", tag = "tasks",
    params(("id" = String, Path), WaitQuery), request_body = TaskRequest,
    responses((status = 202, description = "queued for that agent", body = Task),
        (status = 200, description = "finished within `wait`, or known by its idempotency key", body = Task)))]
pub async fn ask(
    State(master): State<AppState>,
    Path(agent): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<TaskRequest>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let wait = parse_wait(q.wait)?;
    let agent = AgentId::parse(&agent).ok_or_else(|| unknown(Resource::Agent, &agent))?;
    let pool = master.pool_of_agent(&agent).await?;
    let spec = into_spec(body, &pool, Some(agent))?;
    one(&master, spec, wait).await
}

async fn one(
    master: &AppState,
    spec: TaskSpec,
    wait: Option<Duration>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let mut done = master.submit_tasks(vec![spec], wait).await?;
    let new = done.new.first().copied().unwrap_or(true);
    let task = done
        .tasks
        .pop()
        .ok_or_else(|| ApiError::bad_request("no task"))?;
    let status = if !new || task.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(task)))
}

/// `POST /api/v1/pools/{pool}/tasks/batch`: 1-1000 tasks in one store transaction.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/tasks/batch", tag = "tasks",
    params(("pool" = String, Path, example = "developer")), request_body = TaskBatch,
    responses((status = 202, description = "all queued", body = TaskList)))]
pub async fn batch(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiJson(body): ApiJson<TaskBatch>,
) -> Result<(StatusCode, Json<TaskList>), ApiError> {
    if body.tasks.is_empty() || body.tasks.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "tasks: give 1 to {MAX_BATCH} tasks, got {}",
            body.tasks.len()
        )));
    }
    let specs = body
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            into_spec(t, &pool, None)
                .map_err(|e| ApiError::invalid(format!("tasks[{i}].{}", e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let done = master.submit_tasks(specs, None).await?;
    Ok((StatusCode::ACCEPTED, Json(TaskList { tasks: done.tasks })))
}

/// `POST /api/v1/pools/{pool}/broadcast`: one task per running agent of the pool.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/broadcast", tag = "tasks",
    params(("pool" = String, Path, example = "developer"), WaitQuery), request_body = BroadcastRequest,
    responses((status = 202, description = "queued, one per running agent", body = TaskList),
        (status = 200, description = "all finished within `wait`", body = TaskList)))]
pub async fn broadcast(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<BroadcastRequest>,
) -> Result<(StatusCode, Json<TaskList>), ApiError> {
    let wait = parse_wait(q.wait)?;
    let agents = master.running_agents(&pool).await?;
    let specs = agents
        .into_iter()
        .map(|agent| {
            let each = TaskRequest {
                input: body.input.clone(),
                priority: None,
                max_attempts: Some(1),
                timeout_secs: body.timeout_secs,
                idempotency_key: None,
            };
            into_spec(each, &pool, Some(agent))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let done = master.submit_tasks(specs, wait).await?;
    let finished = done.tasks.iter().all(|t| t.status.is_final());
    let status = if wait.is_some() && finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(TaskList { tasks: done.tasks })))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "the task", body = Task)))]
pub async fn show(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(master.task(&task_id(&id)?).await?))
}

/// `GET /api/v1/tasks?pool=&status=&limit=`: newest first.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, description = "the tasks", body = Vec<Task>)))]
pub async fn list(
    State(master): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let status: Option<TaskState> = q
        .status
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::bad_request(format!("status: unknown task status {}", quoted(&s)))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_LIST}"
        )));
    }
    let filter = TaskFilter {
        pool: q.pool,
        status,
        limit,
    };
    Ok(Json(master.tasks(filter).await?))
}

/// Cancels a task that has not finished.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "the task", body = Task)))]
pub async fn cancel(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(master.cancel_task(&task_id(&id)?).await?))
}

/// Queues a failed task again.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "the task, queued", body = Task),
        (status = 409, description = "the task has not failed", body = super::openapi::ErrorBody)))]
pub async fn retry(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(master.retry_task(&task_id(&id)?).await?))
}

/// `GET /api/v1/pools/{pool}/stats?window=1h`.
#[utoipa::path(get, path = "/api/v1/pools/{pool}/stats", tag = "tasks",
    params(("pool" = String, Path, example = "developer"), StatsQuery),
    responses((status = 200, description = "the pool's tasks over the window", body = TaskStats)))]
pub async fn stats(
    State(master): State<AppState>,
    Path(pool): Path<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<TaskStats>, ApiError> {
    let window = parse_window(q.window.as_deref().unwrap_or("1h"))?;
    Ok(Json(master.task_stats(&pool, window).await?))
}

pub(super) fn task_id(raw: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(raw).ok_or_else(|| unknown(Resource::Task, raw))
}

fn unknown(what: Resource, raw: &str) -> ApiError {
    let noun = match what {
        Resource::Agent => "agent",
        _ => "task",
    };
    ApiError::not_found(what, format!("unknown {noun} {}", quoted(raw)))
}

/// `?wait=S`: 0-300 seconds, decimals allowed.
fn parse_wait(raw: Option<String>) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.parse::<f64>() {
        Ok(s) if (0.0..=MAX_WAIT_SECS).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(ApiError::bad_request(format!(
            "wait: must be a number of seconds from 0 to {MAX_WAIT_SECS}, got {}",
            quoted(&raw)
        ))),
    }
}

/// `?window=`: a number with a unit, `s`, `m`, `h` or `d` (at most 30 days).
fn parse_window(raw: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "window: must be like 90s, 30m, 1h or 7d (at most 30d), got {}",
            quoted(raw)
        ))
    };
    // The unit is the last character, which may be several bytes long in a hostile query.
    let split = raw.char_indices().last().map_or(0, |(i, _)| i);
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    if secs == 0 || secs > 30 * 86_400 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// Checks every field before anything is written.
fn into_spec(body: TaskRequest, pool: &str, target: Option<AgentId>) -> Result<TaskSpec, ApiError> {
    let size = body.input.to_string().len();
    if size > MAX_INPUT_BYTES {
        return Err(ApiError::invalid(format!(
            "input: {size} bytes, larger than the limit of 1 MiB ({MAX_INPUT_BYTES} bytes)"
        )));
    }
    let priority = in_range("priority", body.priority, 0, i64::from(MAX_PRIORITY))?
        .map_or(DEFAULT_PRIORITY, |p| p as u8);
    let attempts = in_range(
        "max_attempts",
        body.max_attempts,
        1,
        i64::from(MAX_ATTEMPTS_LIMIT),
    )?
    .map_or(DEFAULT_MAX_ATTEMPTS, |a| a as u32);
    let timeout = in_range(
        "timeout_secs",
        body.timeout_secs,
        1,
        MAX_TASK_TIMEOUT_SECS as i64,
    )?
    .map(|t| t as u64);
    if let Some(key) = &body.idempotency_key
        && !(1..=MAX_KEY_LEN).contains(&key.len())
    {
        return Err(ApiError::invalid(format!(
            "idempotency_key: must be 1-{MAX_KEY_LEN} bytes"
        )));
    }
    Ok(TaskSpec {
        task_id: TaskId::new(),
        pool_name: pool.to_owned(),
        target_agent_id: target,
        priority,
        input: body.input,
        max_attempts: attempts,
        timeout_secs: timeout,
        idempotency_key: body.idempotency_key,
    })
}

fn in_range(field: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match v {
        Some(n) if !(lo..=hi).contains(&n) => Err(ApiError::invalid(format!(
            "{field}: must be between {lo} and {hi}, got {n}"
        ))),
        other => Ok(other),
    }
}
