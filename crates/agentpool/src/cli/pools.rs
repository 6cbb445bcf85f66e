//! `agentpool pools`: one row per pool.

use super::{CommonArgs, NO_BODY, emit, fit::Fit, table::Table};
use agentpool_types::{PoolState, PoolStats};
use anyhow::Result;
use reqwest::Method;

#[derive(clap::Args, Debug)]
pub struct PoolsArgs {
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: PoolsArgs) -> Result<()> {
    let client = args.common.connection.client()?;
    let response = client.fetch(Method::GET, &["pools"], &[], NO_BODY).await?;
    emit(response, &args.common, table)
}

/// What each column gives up on a narrow terminal: pending spawns go first, then utilization.
const COLUMNS: [(&str, Fit); 7] = [
    ("POOL", Fit::SHRINK),
    ("PROCESSES", Fit::FIXED),
    ("AGENTS", Fit::FIXED),
    ("CAPACITY", Fit::FIXED),
    ("UTIL", Fit::drop(1)),
    ("PENDING", Fit::drop(0)),
    ("STATE", Fit::FIXED),
];

fn table(pools: Vec<PoolStats>) -> Table {
    let mut t = Table::fitted(&COLUMNS);
    for p in pools {
        t.row(vec![
            p.pool_name,
            p.process_count.to_string(),
            p.agent_count.to_string(),
            format!("{}/{}", p.used_capacity, p.total_capacity),
            format!("{:.1}%", p.utilization * 100.0),
            p.pending_spawns.to_string(),
            state_name(p.state).to_owned(),
        ]);
    }
    t
}

/// `PoolState` has no `Display`; these are its JSON names.
fn state_name(state: PoolState) -> &'static str {
    match state {
        PoolState::Ready => "ready",
        PoolState::Full => "full",
        PoolState::Scaling => "scaling",
    }
}
