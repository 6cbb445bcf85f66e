//! `agentpool pools`: one row per pool.

use super::{CommonArgs, client::Client, emit, table::Table};
use agentpool_types::{PoolState, PoolStats};
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct PoolsArgs {
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: PoolsArgs) -> Result<()> {
    let client = Client::new(&args.common.url)?;
    let response = client.get(&["pools"], &[]).await?;
    emit(response, args.common.json, table)
}

fn table(pools: Vec<PoolStats>) -> Table {
    let mut t = Table::new(&[
        "POOL",
        "PROCESSES",
        "AGENTS",
        "CAPACITY",
        "UTIL",
        "PENDING",
        "STATE",
    ]);
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
