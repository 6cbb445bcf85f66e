//! `agentpool spawn`: one agent through `POST /agents`, several through the pool's bulk route.
//! Every spawn carries an `Idempotency-Key` and is retried once with it if the connection
//! drops, so a retry never spawns twice.

use super::{CommonArgs, agents, emit};
use agentpool_types::Agent;
use anyhow::{Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

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
    let response = client
        .fetch_once(Method::POST, &path, &[], Some(&body))
        .await?;
    emit(response, &args.common, agents::table)
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
