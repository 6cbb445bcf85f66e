//! `agentpool agents`: one row per agent.

use super::{CommonArgs, NO_BODY, emit, fit::Fit, table::Table};
use agentpool_types::{Agent, AgentState};
use anyhow::Result;
use clap::builder::PossibleValuesParser;
use reqwest::Method;

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
    let client = args.common.connection.client()?;
    let filters = [("pool", &args.pool), ("status", &args.status)];
    let query: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
        .collect();
    let response = client
        .fetch(Method::GET, &["agents"], &query, NO_BODY)
        .await?;
    emit(response, &args.common, table)
}

/// The columns, and what each gives up on a narrow terminal: the worker id goes first, then
/// the restart count; names are cut before the role is given up.
pub(super) const COLUMNS: [(&str, Fit); 7] = [
    ("AGENT_ID", Fit::ID),
    ("POOL", Fit::SHRINK),
    ("NAME", Fit::SHRINK),
    ("ROLE", Fit::SHRINK),
    ("STATUS", Fit::FIXED),
    ("PROCESS", Fit::ID.or_drop(0)),
    ("RESTARTS", Fit::drop(1)),
];

/// Shared with `spawn` and `terminate`, which print the agents they acted on.
pub(super) fn table(agents: Vec<Agent>) -> Table {
    let mut t = Table::fitted(&COLUMNS);
    for a in agents {
        t.row(vec![
            a.spec.agent_id.to_string(),
            a.spec.pool_name,
            a.spec.name,
            a.spec.role_type,
            a.status.to_string(),
            a.process_id
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            a.restarts.to_string(),
        ]);
    }
    t
}
