//! `agentpool terminate`: stops one agent, or many of a pool (`--pool P --all` or `--count N`,
//! the oldest first), and prints their final state.

use super::{CommonArgs, NO_BODY, agents, emit};
use agentpool_types::Agent;
use anyhow::{Result, bail};
use reqwest::Method;

#[derive(clap::Args, Debug)]
pub struct TerminateArgs {
    /// Id of the agent; or use --pool with --all or --count.
    id: Option<String>,
    /// Terminate agents of this pool (with --all or --count).
    #[arg(long, conflicts_with = "id")]
    pool: Option<String>,
    /// Every agent of --pool.
    #[arg(long, requires = "pool", conflicts_with = "count")]
    all: bool,
    /// The N oldest agents of --pool (1-1000).
    #[arg(long, requires = "pool", value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: Option<u32>,
    /// Stop at once instead of letting the agents finish their current work.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: TerminateArgs) -> Result<()> {
    let client = args.common.connection.client()?;
    let graceful = if args.force { "false" } else { "true" };
    match (&args.id, &args.pool) {
        (Some(id), None) => {
            let path = ["agents", id.as_str()];
            let query = [("graceful", graceful)];
            let response = client.fetch(Method::DELETE, &path, &query, NO_BODY).await?;
            emit(response, &args.common, |a: Agent| agents::table(vec![a]))
        }
        (None, Some(pool)) => {
            let count = args.count.map(|n| n.to_string());
            let which = match (&count, args.all) {
                (Some(n), false) => ("count", n.as_str()),
                (None, true) => ("all", "true"),
                _ => bail!("with --pool, give --all or --count N"),
            };
            let path = ["pools", pool.as_str(), "agents"];
            let query = [which, ("graceful", graceful)];
            let response = client.fetch(Method::DELETE, &path, &query, NO_BODY).await?;
            emit(response, &args.common, agents::table)
        }
        _ => bail!("give an agent id, or --pool P with --all or --count N"),
    }
}
