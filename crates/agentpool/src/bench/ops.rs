//! The API calls the benchmarks repeat.

use super::report::count;
use super::tracked::Api;
use crate::cli::client::ApiError;
use agentpool_types::{Agent, AgentId, PoolStats, Task, TaskId};
use anyhow::{Context, Result};
use futures::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Terminations in flight at once: enough to keep the master busy without a connection storm.
const CONCURRENCY: usize = 32;

/// Largest `count` the bulk route accepts.
pub const MAX_BULK: u64 = 1000;

/// Spawns one agent and returns once it is running (201).
pub async fn spawn_one(api: &Api, pool: &str) -> Result<Agent> {
    api.spawn(&["agents"], &json!({ "pool": pool })).await
}

/// Spawns `count` (at most [`MAX_BULK`]) agents and returns once all are running.
pub async fn spawn_many(api: &Api, pool: &str, count: u64) -> Result<Vec<Agent>> {
    api.spawn(&["pools", pool, "agents"], &json!({ "count": count }))
        .await
}

/// Spawns `count` agents in bulk batches of at most [`MAX_BULK`]; any failed batch is an
/// error (the agents already placed are tracked, so the bench's cleanup stops them).
pub async fn spawn_batches(api: &Api, pool: &str, count: u64) -> Result<Vec<AgentId>> {
    let mut spawned = Vec::new();
    while (spawned.len() as u64) < count {
        let batch = (count - spawned.len() as u64).min(MAX_BULK);
        let agents = spawn_many(api, pool, batch).await?;
        spawned.extend(agents.into_iter().map(|a| a.spec.agent_id));
    }
    Ok(spawned)
}

pub async fn pool_stats(api: &Api, pool: &str) -> Result<PoolStats> {
    api.get(&["pools", pool], &[]).await
}

/// Stops one agent at once; one already gone counts as stopped.
pub async fn terminate(api: &Api, id: &AgentId) -> Result<()> {
    let query = [("graceful", "false")];
    let path = ["agents", id.as_str()];
    match api.client().delete::<Agent>(&path, &query).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e).with_context(|| format!("terminating agent {id}")),
    }
    api.forget(id);
    Ok(())
}

/// Stops all the agents, [`CONCURRENCY`] at a time, trying every one even after a failure.
pub async fn terminate_all(api: &Api, ids: &[AgentId]) -> Result<Duration> {
    let start = Instant::now();
    // Owned ids: a closure over borrowed ones makes the future not `Send` for a spawned task.
    let mut errors: Vec<anyhow::Error> = stream::iter(ids.to_vec())
        .map(|id| async move { terminate(api, &id).await })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async { r.err() })
        .collect()
        .await;
    if errors.is_empty() {
        return Ok(start.elapsed());
    }
    let failed = errors.len();
    let first = errors.swap_remove(0);
    let all = count(ids.len() as u64, "agent");
    Err(first.context(format!("{failed} of {all} could not be terminated")))
}

/// Cancels tasks the bench left unfinished, [`CONCURRENCY`] at a time; one already finished
/// or gone counts as done. Returns how many could not be cancelled, with the first error.
pub async fn cancel_all(api: &Api, ids: &[TaskId]) -> Result<()> {
    let mut errors: Vec<anyhow::Error> = stream::iter(ids.to_vec())
        .map(|id| async move {
            let path = ["tasks", id.as_str()];
            match api.client().delete::<Task>(&path, &[]).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.context(format!("cancelling task {id}"))),
            }
            api.finished([&id]);
            Ok(())
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async { r.err() })
        .collect()
        .await;
    if errors.is_empty() {
        return Ok(());
    }
    let failed = errors.len();
    let first = errors.swap_remove(0);
    let all = count(ids.len() as u64, "task");
    Err(first.context(format!("{failed} of {all} could not be cancelled")))
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiError>()
        .is_some_and(|a| a.status == StatusCode::NOT_FOUND)
}
