//! `agentpool spawn`: one agent through `POST /agents`, several through the pool's bulk route.
//! Every spawn carries an `Idempotency-Key` and is retried once with it if the connection
//! drops, so a retry never spawns twice.

use super::client::{Body, Client};
use super::progress::Progress;
use super::table::count;
use super::{CommonArgs, NO_BODY, agents, emit};
use agentpool_types::{Agent, PoolStats};
use anyhow::{Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// How often the progress bar of a bulk spawn reads the pool.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug)]
pub struct SpawnArgs {
    /// Pool to spawn into.
    #[arg(long)]
    pool: String,
    /// Number of agents (more than one uses the bulk route, which waits for all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: u32,
    /// Agent name (single spawn only).
    #[arg(long)]
    name: Option<String>,
    /// Role, when it differs from the pool's.
    #[arg(long)]
    role: Option<String>,
    /// Agent config as a JSON object.
    #[arg(long, value_parser = parse_object)]
    config: Option<Value>,
    /// Return as soon as the agent is placed, without waiting for it to run (single spawn only).
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: SpawnArgs) -> Result<()> {
    let client = args.common.connection.client()?;
    if args.count == 1 {
        let query: &[(&str, &str)] = if args.no_wait {
            &[("wait", "false")]
        } else {
            &[]
        };
        let body = body(&args);
        let response = client
            .fetch_once(Method::POST, &["agents"], query, Some(&body))
            .await?;
        return emit(response, &args.common, |a: Agent| agents::table(vec![a]));
    }
    // The bulk route names no agent and always waits, so these would be silently dropped.
    if args.name.is_some() || args.no_wait {
        bail!(
            "--name and --no-wait apply to a single agent, not to --count {}",
            args.count
        );
    }
    let path = ["pools", args.pool.as_str(), "agents"];
    let body = body(&args);
    let what = format!(
        "spawning {} into pool {}",
        count(args.count, "agent"),
        args.pool
    );
    let progress = Progress::bar(args.count.into(), &what);
    let request = client.fetch_once(Method::POST, &path, &[], Some(&body));
    let response = if progress.is_drawn() {
        follow_placement(&client, &args.pool, args.count.into(), &progress, request).await
    } else {
        request.await
    };
    match response {
        Ok(response) => {
            progress.finish(&format!("{} running", count(args.count, "agent")));
            emit(response, &args.common, agents::table)
        }
        Err(e) => {
            progress.abandon();
            Err(e)
        }
    }
}

/// Moves the bar with the pool's agent count while the bulk request runs: the route answers
/// only once every agent runs, and most of that time goes to starting workers and placing.
/// Others spawning into the same pool at the same time move it too; it is a progress bar.
async fn follow_placement(
    client: &Client,
    pool: &str,
    total: u64,
    progress: &Progress,
    request: impl Future<Output = Result<Body>>,
) -> Result<Body> {
    let placed = async || -> Option<u64> {
        let body = client
            .fetch(Method::GET, &["pools", pool], &[], NO_BODY)
            .await
            .ok()?;
        Some(body.decode::<PoolStats>().ok()?.agent_count)
    };
    let before = placed().await.unwrap_or(0);
    tokio::pin!(request);
    loop {
        tokio::select! {
            response = &mut request => return response,
            () = tokio::time::sleep(PROGRESS_POLL) => {}
        }
        if let Some(now) = placed().await {
            progress.set_position(now.saturating_sub(before).min(total));
        }
    }
}

/// The request body, with optional fields left out rather than sent as null.
fn body(args: &SpawnArgs) -> Value {
    let mut body = if args.count == 1 {
        json!({ "pool": args.pool })
    } else {
        json!({ "count": args.count })
    };
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    if let Some(role) = &args.role {
        body["role"] = json!(role);
    }
    if let Some(config) = &args.config {
        body["config"] = config.clone();
    }
    body
}

fn parse_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object, e.g. '{\"model\": \"small\"}'".to_owned()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}
