//! `agentpool terminate`: stops one agent and prints its final state.

use super::{CommonArgs, agents, client::Client, emit};
use agentpool_types::Agent;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct TerminateArgs {
    /// Id of the agent.
    id: String,
    /// Stop at once instead of letting the agent finish its current work.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: TerminateArgs) -> Result<()> {
    let client = Client::new(&args.common.url)?;
    let graceful = if args.force { "false" } else { "true" };
    let path = ["agents", args.id.as_str()];
    let response = client.delete(&path, &[("graceful", graceful)]).await?;
    emit(response, args.common.json, |a: Agent| {
        agents::table(vec![a])
    })
}
