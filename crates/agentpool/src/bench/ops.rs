//! The API calls the benchmarks repeat.

use crate::cli::client::{ApiError, Client};
use agentpool_types::{Agent, AgentId, PoolStats};
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
pub async fn spawn_one(api: &Client, pool: &str) -> Result<Agent> {
    api.post(&["agents"], &[], &json!({ "pool": pool })).await
}

/// Spawns `count` (at most [`MAX_BULK`]) agents and returns once all are running.
pub async fn spawn_many(api: &Client, pool: &str, count: u64) -> Result<Vec<Agent>> {
    api.post(&["pools", pool, "agents"], &[], &json!({ "count": count }))
        .await
}

pub async fn pool_stats(api: &Client, pool: &str) -> Result<PoolStats> {
    api.get(&["pools", pool], &[]).await
}

/// Stops one agent at once; one already gone counts as stopped.
pub async fn terminate(api: &Client, id: &AgentId) -> Result<()> {
    let query = [("graceful", "false")];
    match api.delete::<Agent>(&["agents", id.as_str()], &query).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("terminating agent {id}")),
    }
}

/// Stops all the agents, [`CONCURRENCY`] at a time, trying every one even after a failure.
pub async fn terminate_all(api: &Client, ids: &[AgentId]) -> Result<Duration> {
    let start = Instant::now();
    let mut errors: Vec<anyhow::Error> = stream::iter(ids)
        .map(|id| terminate(api, id))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async { r.err() })
        .collect()
        .await;
    if errors.is_empty() {
        return Ok(start.elapsed());
    }
    let failed = errors.len();
    let first = errors.swap_remove(0);
    Err(first.context(format!(
        "{failed} of {} agents could not be terminated",
        ids.len()
    )))
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiError>()
        .is_some_and(|a| a.status == StatusCode::NOT_FOUND)
}
