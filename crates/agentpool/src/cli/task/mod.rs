//! `agentpool task …`: submit work to a pool or one agent, follow it, cancel or retry it.
//!
//! - `submit`: submit, ask and broadcast, with the options they share.
//! - `manage`: show, cancel, retry.
//! - `watch`: following a task's event stream until it finishes.

mod manage;
mod submit;
mod watch;

use super::client::Body;
use super::{CommonArgs, write_stdout};
use agentpool_types::{Task, TaskState};
use anyhow::{Context, Result};
use std::process::ExitCode;

/// The exit statuses of the commands that wait for a task; shown in their help.
const EXIT_STATUS: &str = "\
Exit status: 0 the task succeeded; 3 it failed (its last attempt failed and none is left);
4 it was cancelled; 5 it had not finished when the wait ended; 1 the command failed (the
master could not be reached or refused the request, with its message); 2 bad usage.";

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Submit a task to a pool; any of its agents runs it.
    #[command(after_help = EXIT_STATUS)]
    Submit(submit::SubmitArgs),
    /// Submit a task that one agent must run (its pool is the agent's).
    #[command(after_help = EXIT_STATUS)]
    Ask(submit::AskArgs),
    /// Submit one task to every running agent of a pool (one attempt each).
    #[command(after_help = EXIT_STATUS)]
    Broadcast(submit::BroadcastArgs),
    /// Show a task: status, attempts, agent, input, output or error.
    Show(manage::IdArgs),
    /// Cancel a task: a queued one never runs, a running one is stopped by its worker.
    Cancel(manage::IdArgs),
    /// Queue a failed task again, its attempts reset.
    Retry(manage::IdArgs),
    /// Follow a task until it finishes: each status change and progress report, one a line.
    #[command(after_help = EXIT_STATUS)]
    Watch(watch::WatchArgs),
}

pub async fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Submit(args) => submit::submit(args).await,
        Command::Ask(args) => submit::ask(args).await,
        Command::Broadcast(args) => submit::broadcast(args).await,
        Command::Show(args) => manage::show(args).await,
        Command::Cancel(args) => manage::cancel(args).await,
        Command::Retry(args) => manage::retry(args).await,
        Command::Watch(args) => watch::run(args).await,
    }
}

/// How a task (or a broadcast's tasks) ended, as the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Succeeded,
    Cancelled,
    Failed,
    /// Still queued or running when the wait ended.
    Unfinished,
}

impl Outcome {
    pub fn of(status: TaskState) -> Self {
        match status {
            TaskState::Succeeded => Outcome::Succeeded,
            TaskState::Failed => Outcome::Failed,
            TaskState::Cancelled => Outcome::Cancelled,
            TaskState::Queued | TaskState::Running => Outcome::Unfinished,
        }
    }

    /// The worst of several tasks' outcomes (unfinished, then failed, then cancelled).
    pub fn worst(tasks: &[Task]) -> Self {
        tasks
            .iter()
            .map(|t| Outcome::of(t.status))
            .max()
            .unwrap_or(Outcome::Succeeded)
    }

    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 3,
            Outcome::Cancelled => 4,
            Outcome::Unfinished => 5,
        })
    }
}

/// Prints one task: with `--json` the body as received, else [`detail`].
fn print_task(body: &Body, common: &CommonArgs) -> Result<Task> {
    let task: Task = body.decode().context("unexpected response shape")?;
    if common.json {
        super::write_stdout_bytes(&[&body.bytes[..], b"\n"].concat());
    } else {
        write_stdout(&detail(&task));
    }
    Ok(task)
}

/// One task as `field: value` lines; the input, output and error in full.
pub(super) fn detail(t: &Task) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let agent = match (&t.agent_id, &t.spec.target_agent_id) {
        (Some(a), Some(_)) => format!("{a} (asked of it)"),
        (Some(a), None) => a.to_string(),
        (None, _) => "-".to_owned(),
    };
    let timeout = t
        .spec
        .timeout_secs
        .map_or_else(|| "the pool handler's".to_owned(), |s| format!("{s} s"));
    let mut rows = vec![
        ("task_id", t.spec.task_id.to_string()),
        ("pool", t.spec.pool_name.clone()),
        ("status", t.status.to_string()),
        ("agent", agent),
        ("priority", t.spec.priority.to_string()),
        (
            "attempts",
            format!("{}/{}", t.attempts, t.spec.max_attempts),
        ),
        ("timeout", timeout),
    ];
    if let Some(key) = &t.spec.idempotency_key {
        rows.push(("key", key.clone()));
    }
    rows.extend([
        ("created", t.created_at.clone()),
        ("started", or_dash(t.started_at.as_deref())),
        ("finished", or_dash(t.finished_at.as_deref())),
        ("input", t.spec.input.to_string()),
        (
            "output",
            t.output.as_ref().map_or("-".into(), |o| o.to_string()),
        ),
        ("error", or_dash(t.error.as_deref())),
    ]);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}
