//! `agentpool agents`: one row per agent.

use super::{CommonArgs, client::Client, emit, table::Table};
use agentpool_types::{Agent, AgentState};
use anyhow::Result;
use clap::builder::PossibleValuesParser;

#[derive(clap::Args, Debug)]
pub struct AgentsArgs {
    /// Only agents of this pool.
    #[arg(long)]
    pool: Option<String>,
    /// Only agents in this status.
    #[arg(long, value_parser = PossibleValuesParser::new(AgentState::ALL.iter().map(|s| s.as_str())))]
    status: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: AgentsArgs) -> Result<()> {
    let client = Client::new(&args.common.url)?;
    let filters = [("pool", &args.pool), ("status", &args.status)];
    let query: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
        .collect();
    let response = client.get(&["agents"], &query).await?;
    emit(response, args.common.json, table)
}

/// Shared with `spawn` and `terminate`, which print the agents they acted on.
pub(super) fn table(agents: Vec<Agent>) -> Table {
    let mut t = Table::new(&["AGENT_ID", "POOL", "NAME", "STATUS", "PROCESS", "RESTARTS"]);
    for a in agents {
        t.row(vec![
            a.agent_id.to_string(),
            a.pool_name,
            a.name,
            a.status.to_string(),
            a.process_id
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            a.restarts.to_string(),
        ]);
    }
    t
}
