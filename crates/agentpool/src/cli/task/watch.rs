//! `task watch`: a task's event stream, one line per status change or progress report, until
//! the task has finished. Also how `--wait` follows a task past the master's longest wait.

use super::Outcome;
use crate::cli::client::Client;
use crate::cli::connect::{Connection, parse_secs};
use crate::cli::events::{EventStream, SseEvent};
use crate::cli::{write_stderr, write_stdout};
use agentpool_types::{Task, TaskChange, TaskState};
use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// After this long without an event the task is read directly: the stream only says what the
/// master saw happen, and a master that fell behind its events may never send the end.
const QUIET: Duration = Duration::from_secs(2);
/// Streams that may close on an unfinished task (a master restarting) before giving up.
const MAX_REOPEN: u32 = 5;
const REOPEN_PAUSE: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The task to follow.
    id: String,
    /// Give up after SECS seconds (exit status 5) [default: follow until it finishes].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    within: Option<Duration>,
    /// One JSON object a line, {"event": "task"|"status"|"progress", "data": …}: the task, each
    /// change as the master announces it, each progress report, and the finished task last.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// What the stream says.
#[derive(Debug, Serialize)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum Update {
    /// The task as it stands: first, and once more when it has finished.
    Task(Task),
    Status(TaskChange),
    Progress(Value),
}

pub async fn run(args: WatchArgs) -> Result<ExitCode> {
    let client = args.connection.client()?;
    let deadline = args.within.map(|d| Instant::now() + d);
    let mut printer = Printer::new(args.json);
    match follow(&client, &args.id, deadline, |u| printer.print(u)).await? {
        Some(task) => Ok(Outcome::of(task.status).code()),
        None => {
            write_stderr(&format!(
                "task {} had not finished after {:.1} s\n",
                args.id,
                printer.start.elapsed().as_secs_f64()
            ));
            Ok(Outcome::Unfinished.code())
        }
    }
}

/// Follows task `id` until it has finished, handing each update to `on_update`. Returns the
/// finished task, or `None` when `deadline` came first.
pub async fn follow(
    client: &Client,
    id: &str,
    deadline: Option<Instant>,
    mut on_update: impl FnMut(&Update),
) -> Result<Option<Task>> {
    let path = ["tasks", id, "events"];
    for _ in 0..=MAX_REOPEN {
        let mut stream = client.events(&path, &[]).await?;
        match follow_stream(client, id, &mut stream, deadline, &mut on_update).await? {
            End::Finished(task) => return Ok(Some(*task)),
            End::Deadline => return Ok(None),
            End::Closed => tokio::time::sleep(REOPEN_PAUSE).await,
        }
    }
    bail!("the event stream of task {id} closed {MAX_REOPEN} times before it finished")
}

enum End {
    Finished(Box<Task>),
    Deadline,
    /// The master closed the stream while the task was unfinished.
    Closed,
}

async fn follow_stream(
    client: &Client,
    id: &str,
    stream: &mut EventStream,
    deadline: Option<Instant>,
    on_update: &mut impl FnMut(&Update),
) -> Result<End> {
    loop {
        let left = deadline.map_or(QUIET, |d| d.saturating_duration_since(Instant::now()));
        // A stream that broke (the master went away) counts as closed: reopening it says why.
        let next = tokio::time::timeout(left.min(QUIET), stream.next()).await;
        let closed = matches!(next, Ok(Ok(None) | Err(_)));
        let update = match next {
            Ok(Ok(Some(event))) => decode(&event)?,
            _ => None,
        };
        if let Some(update) = update {
            on_update(&update);
            if let Update::Task(task) = update
                && task.status.is_final()
            {
                return Ok(End::Finished(Box::new(task)));
            }
            continue;
        }
        // Closed, silent, or an event of a kind this client does not know: read the task.
        if let Some(task) = read_finished(client, id).await? {
            on_update(&Update::Task(task.clone()));
            return Ok(End::Finished(Box::new(task)));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(End::Deadline);
        }
        if closed {
            return Ok(End::Closed);
        }
    }
}

/// The task if it has finished.
async fn read_finished(client: &Client, id: &str) -> Result<Option<Task>> {
    let task: Task = client
        .fetch(Method::GET, &["tasks", id], &[], None::<&()>)
        .await?
        .decode()?;
    Ok(task.status.is_final().then_some(task))
}

/// `None` for an event this client does not know.
fn decode(event: &SseEvent) -> Result<Option<Update>> {
    let what = || format!("decoding a {:?} event: {}", event.name, event.data);
    Ok(Some(match event.name.as_str() {
        "task" => Update::Task(serde_json::from_str(&event.data).with_context(what)?),
        "status" => Update::Status(serde_json::from_str(&event.data).with_context(what)?),
        "progress" => Update::Progress(serde_json::from_str(&event.data).with_context(what)?),
        _ => return Ok(None),
    }))
}

/// Prints updates as lines: `+0.012s  running    attempt 1/3  agent …`.
struct Printer {
    json: bool,
    start: Instant,
    max_attempts: u32,
    /// The last status line printed, so the finished task does not repeat it.
    last: Option<(TaskState, u32)>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self {
            json,
            start: Instant::now(),
            max_attempts: 0,
            last: None,
        }
    }

    fn print(&mut self, update: &Update) {
        if self.json {
            let line = serde_json::to_string(update).unwrap_or_default();
            write_stdout(&(line + "\n"));
            return;
        }
        match update {
            Update::Task(t) => {
                self.max_attempts = t.spec.max_attempts;
                self.status(t.status, t.attempts, t.agent_id.as_ref());
                if t.status.is_final() {
                    self.result(t);
                }
            }
            Update::Status(c) => self.status(c.status, c.attempts, c.agent_id.as_ref()),
            Update::Progress(v) => self.line("progress", &v.to_string()),
        }
    }

    fn status(&mut self, status: TaskState, attempts: u32, agent: Option<&impl ToString>) {
        if self.last == Some((status, attempts)) {
            return;
        }
        self.last = Some((status, attempts));
        let mut text = format!("attempt {attempts}/{}", self.max_attempts);
        if let Some(agent) = agent {
            text.push_str(&format!("  agent {}", agent.to_string()));
        }
        self.line(status.as_str(), &text);
    }

    fn result(&self, t: &Task) {
        if let Some(output) = &t.output {
            write_stdout(&format!("output: {output}\n"));
        }
        if let Some(error) = &t.error {
            write_stdout(&format!("error: {error}\n"));
        }
    }

    fn line(&self, what: &str, text: &str) {
        let at = self.start.elapsed().as_secs_f64();
        write_stdout(&format!("+{at:.3}s  {what:<9}  {text}\n"));
    }
}
