//! Client subcommands: thin wrappers over the master's REST API, one file per command.

mod agents;
pub(crate) mod client;
mod pools;
mod processes;
mod spawn;
pub(crate) mod table;
mod terminate;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use table::Table;

/// Where `agentpool serve` listens unless told otherwise.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Talk to a running master.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List pools with their workers, capacity and state.
    Pools(pools::PoolsArgs),
    /// List agents, optionally filtered by pool and status.
    Agents(agents::AgentsArgs),
    /// Spawn one or more agents into a pool.
    Spawn(spawn::SpawnArgs),
    /// Terminate one agent.
    Terminate(terminate::TerminateArgs),
    /// List worker processes.
    Processes(processes::ProcessesArgs),
}

/// Runs one client subcommand.
pub async fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Pools(args) => pools::run(args).await,
        Command::Agents(args) => agents::run(args).await,
        Command::Spawn(args) => spawn::run(args).await,
        Command::Terminate(args) => terminate::run(args).await,
        Command::Processes(args) => processes::run(args).await,
    }
}

/// Options every client subcommand takes.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Base URL of the master.
    #[arg(long, env = "AGENTPOOL_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the raw JSON response instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints a response: as received with `--json`, else decoded and rendered as a table.
///
/// The raw form is kept so `--json` shows fields this client does not know yet.
fn emit<T: DeserializeOwned>(
    response: serde_json::Value,
    json: bool,
    table: impl FnOnce(T) -> Table,
) -> Result<()> {
    let text = if json {
        serde_json::to_string_pretty(&response)? + "\n"
    } else {
        let typed = serde_json::from_value(response).context("unexpected response shape")?;
        table(typed).render()
    };
    write_stdout(&text);
    Ok(())
}

/// Writes to stdout; a reader that went away (`agentpool agents | head`) is not an error.
pub(crate) fn write_stdout(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
}
