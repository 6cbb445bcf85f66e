//! Client subcommands: thin wrappers over the master's REST API, one file per command.

mod agents;
pub(crate) mod client;
pub(crate) mod connect;
mod event_log;
pub(crate) mod events;
mod fit;
mod pools;
mod processes;
mod progress;
mod spawn;
pub(crate) mod table;
pub(crate) mod task;
mod tasks;
mod terminate;
mod top;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Terminate one agent, or many of a pool (--pool P --all | --count N).
    Terminate(terminate::TerminateArgs),
    /// List worker processes.
    Processes(processes::ProcessesArgs),
    /// Submit, ask, broadcast, show, cancel, retry or watch tasks.
    #[command(subcommand)]
    Task(task::Command),
    /// List tasks, newest first, optionally filtered by pool and status.
    Tasks(tasks::TasksArgs),
    /// A live full-screen view of pools, workers and agents; q quits.
    Top(top::TopArgs),
    /// Print what happens in the pools, one line per event (--follow for live ones).
    Events(event_log::EventsArgs),
}

/// Runs one client subcommand; the commands that wait for a task exit by its outcome.
pub async fn run(cmd: Command) -> Result<ExitCode> {
    let done = match cmd {
        Command::Pools(args) => pools::run(args).await,
        Command::Agents(args) => agents::run(args).await,
        Command::Spawn(args) => spawn::run(args).await,
        Command::Terminate(args) => terminate::run(args).await,
        Command::Processes(args) => processes::run(args).await,
        Command::Tasks(args) => tasks::run(args).await,
        Command::Top(args) => top::run(args).await,
        Command::Events(args) => event_log::run(args).await,
        Command::Task(cmd) => return task::run(cmd).await,
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// The body of a request that sends none.
const NO_BODY: Option<&()> = None;

/// Options every client subcommand takes.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    #[command(flatten)]
    pub connection: connect::Connection,
    /// Print the response body as received (compact JSON) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print full ids and every column, however wide (tables otherwise fit the terminal).
    #[arg(long)]
    pub wide: bool,
}

/// Prints a response: with `--json` the body exactly as received (the master sends compact
/// JSON, one document) plus a newline, else decoded and rendered as a table.
fn emit<T: DeserializeOwned>(
    body: client::Body,
    common: &CommonArgs,
    table: impl FnOnce(T) -> Table,
) -> Result<()> {
    if common.json {
        let mut bytes = body.bytes;
        bytes.push(b'\n');
        write_stdout_bytes(&bytes);
    } else {
        let typed = body.decode().context("unexpected response shape")?;
        let width = fit::output_width(common.wide);
        write_stdout(&table(typed).render_within(width));
    }
    Ok(())
}

/// Writes to stdout. A reader that went away (`agentpool agents | head`) is not an error: the
/// first failed write stops all further printing, and the command goes on to its end (a bench
/// still cleans up).
pub(crate) fn write_stdout(text: &str) {
    write_stdout_bytes(text.as_bytes());
}

/// [`write_stdout`] for bytes that need not be UTF-8 text.
fn write_stdout_bytes(bytes: &[u8]) {
    write_or_stop(&mut std::io::stdout().lock(), &STDOUT_CLOSED, bytes);
}

/// Writes progress and diagnostics to stderr, with the same rule as [`write_stdout`]:
/// `agentpool bench pools 2>&1 | head` must not panic half-way and leave agents behind.
pub(crate) fn write_stderr(text: &str) {
    write_or_stop(
        &mut std::io::stderr().lock(),
        &STDERR_CLOSED,
        text.as_bytes(),
    );
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_or_stop(out: &mut impl Write, closed: &AtomicBool, bytes: &[u8]) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that went away: every write fails with EPIPE.
    struct ClosedPipe(usize);

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.0 += 1;
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_stops_printing_without_panicking() {
        let (mut pipe, closed) = (ClosedPipe(0), AtomicBool::new(false));
        write_or_stop(&mut pipe, &closed, b"one\n");
        write_or_stop(&mut pipe, &closed, b"two\n");
        assert!(closed.load(Ordering::Relaxed));
        assert_eq!(pipe.0, 1, "no write is tried after the first failure");
    }
}
