//! `task submit`, `task ask` and `task broadcast`: a task to a pool, to one agent, to every
//! running agent of a pool; each optionally waiting for the outcome.

use super::{Outcome, print_task, watch};
use crate::cli::client::{Body, Client};
use crate::cli::progress::Progress;
use crate::cli::{CommonArgs, connect::parse_secs, tasks, write_stderr, write_stdout};
use agentpool_types::{BroadcastRequest, Task, TaskList, TaskRequest};
use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Longest `?wait=` the master holds a request open; a longer wait follows the event stream.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(300);

/// What a task is made of, shared by `submit` and `ask`.
#[derive(clap::Args, Debug)]
pub struct TaskOptions {
    /// The task's input: JSON text, @FILE for a file's content, or - for stdin [default: null].
    #[arg(long, value_name = "JSON|@FILE|-")]
    input: Option<String>,
    /// 0-9: higher runs first, in submission order within a priority [default: 5].
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i64>,
    /// Attempts before the task fails for good, 1-100; a failed attempt is retried after a
    /// doubling pause [default: 3].
    #[arg(long, allow_negative_numbers = true)]
    max_attempts: Option<i64>,
    /// Seconds one attempt may run, 1-86400 [default: the pool handler's]. (--timeout is how
    /// long this command waits for each answer of the master.)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    task_timeout: Option<i64>,
    /// Idempotency key: submitting the same key to the same pool again answers the first task
    /// instead of adding another.
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    wait: WaitArg,
}

#[derive(clap::Args, Debug)]
pub struct WaitArg {
    /// Wait until the task has finished (at most SECS seconds when given), print it and exit
    /// by its outcome; without --wait the task is printed as queued and the exit status is 0.
    #[arg(long, value_name = "SECS", num_args = 0..=1, require_equals = true, value_parser = parse_secs)]
    wait: Option<Option<Duration>>,
}

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// Pool whose agents may run the task.
    #[arg(long)]
    pool: String,
    #[command(flatten)]
    task: TaskOptions,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct AskArgs {
    /// The agent that must run the task.
    agent_id: String,
    #[command(flatten)]
    task: TaskOptions,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct BroadcastArgs {
    /// Pool whose running agents each get the task.
    #[arg(long)]
    pool: String,
    /// The input of every task: JSON text, @FILE, or - for stdin [default: null].
    #[arg(long, value_name = "JSON|@FILE|-")]
    input: Option<String>,
    /// Seconds each attempt may run, 1-86400 [default: the pool handler's].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    task_timeout: Option<i64>,
    #[command(flatten)]
    wait: WaitArg,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let path = ["pools", args.pool.as_str(), "tasks"];
    one(&path, &args.task, &args.common).await
}

pub async fn ask(args: AskArgs) -> Result<ExitCode> {
    let path = ["agents", args.agent_id.as_str(), "tasks"];
    one(&path, &args.task, &args.common).await
}

/// Submits one task and, with `--wait`, follows it to its end.
async fn one(path: &[&str], opts: &TaskOptions, common: &CommonArgs) -> Result<ExitCode> {
    let request = TaskRequest {
        input: read_input(opts.input.as_deref())?,
        priority: opts.priority,
        max_attempts: opts.max_attempts,
        timeout_secs: opts.task_timeout,
        idempotency_key: opts.key.clone(),
    };
    let client = common.connection.client()?;
    let Some(limit) = opts.wait.limit() else {
        let body = post(&client, path, None, &request).await?;
        print_task(&body, common)?;
        return Ok(ExitCode::SUCCESS);
    };
    let deadline = limit.map(|l| Instant::now() + l);
    let progress = Progress::spinner("waiting for the task to finish");
    let body = match submit_and_wait(&client, path, &request, deadline, &progress).await {
        Ok(body) => body,
        Err(e) => {
            progress.abandon();
            return Err(e);
        }
    };
    let task: Task = body.decode()?;
    progress.finish(&format!("task {} {}", task.id(), task.status));
    let task = print_task(&body, common)?;
    Ok(Outcome::of(task.status).code())
}

/// Submits with the master's wait, then follows the task if that wait was not enough.
async fn submit_and_wait(
    client: &Client,
    path: &[&str],
    request: &TaskRequest,
    deadline: Option<Instant>,
    progress: &Progress,
) -> Result<Body> {
    let body = post(client, path, Some(server_wait(deadline)), request).await?;
    let task: Task = body.decode()?;
    if task.status.is_final() {
        return Ok(body);
    }
    progress.set_message(format!("task {} {}", task.id(), task.status));
    finish(client, &task, deadline).await
}

/// POSTs, with `?wait=` when given; the request may take that much longer.
async fn post(
    client: &Client,
    path: &[&str],
    wait: Option<Duration>,
    body: &impl serde::Serialize,
) -> Result<Body> {
    let Some(wait) = wait else {
        return client.fetch(Method::POST, path, &[], Some(body)).await;
    };
    let secs = format!("{:.3}", wait.as_secs_f64());
    let query = [("wait", secs.as_str())];
    client
        .patient(wait)
        .fetch(Method::POST, path, &query, Some(body))
        .await
}

/// Follows a task the master's wait left unfinished, then reads it as it stands.
async fn finish(client: &Client, task: &Task, deadline: Option<Instant>) -> Result<Body> {
    let id = task.id().as_str();
    watch::follow(client, id, deadline, |_| {}).await?;
    client
        .fetch(Method::GET, &["tasks", id], &[], None::<&()>)
        .await
}

/// What to ask the master to wait: all that is left, up to its limit.
fn server_wait(deadline: Option<Instant>) -> Duration {
    deadline.map_or(MAX_SERVER_WAIT, |d| {
        d.saturating_duration_since(Instant::now())
            .min(MAX_SERVER_WAIT)
    })
}

impl WaitArg {
    /// `None`: no wait; `Some(None)`: wait however long it takes.
    fn limit(&self) -> Option<Option<Duration>> {
        self.wait
    }
}

pub async fn broadcast(args: BroadcastArgs) -> Result<ExitCode> {
    let request = BroadcastRequest {
        input: read_input(args.input.as_deref())?,
        timeout_secs: args.task_timeout,
    };
    let client = args.common.connection.client()?;
    let path = ["pools", args.pool.as_str(), "broadcast"];
    let limit = args.wait.limit();
    let deadline = limit.flatten().map(|l| Instant::now() + l);
    let wait = limit.map(|_| server_wait(deadline));
    let body = post(&client, &path, wait, &request).await?;
    let mut list: TaskList = body.decode().context("unexpected response shape")?;
    if list.tasks.is_empty() {
        write_stderr(&format!("pool {} has no running agent\n", args.pool));
    }
    let mut followed = false;
    if limit.is_some() {
        for task in list.tasks.iter_mut().filter(|t| !t.status.is_final()) {
            *task = finish(&client, task, deadline).await?.decode()?;
            followed = true;
        }
    }
    let code = limit.map_or(ExitCode::SUCCESS, |_| Outcome::worst(&list.tasks).code());
    if !args.common.json {
        tasks::print(list.tasks, &args.common);
    } else if followed {
        // The tasks as they ended, in the shape of the master's answer.
        let text = serde_json::to_string(&list).context("encoding the tasks")?;
        write_stdout(&(text + "\n"));
    } else {
        write_stdout(&(String::from_utf8_lossy(&body.bytes).into_owned() + "\n"));
    }
    Ok(code)
}

/// `--input`: JSON text, `@FILE`, or `-` for stdin; `null` when absent.
fn read_input(arg: Option<&str>) -> Result<Value> {
    let (text, source) = match arg {
        None => return Ok(Value::Null),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the input from stdin")?;
            (text, "stdin".to_owned())
        }
        Some(arg) => match arg.strip_prefix('@') {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the input from {path}"))?;
                (text, path.to_owned())
            }
            None => (arg.to_owned(), "--input".to_owned()),
        },
    };
    parse_json(&text, &source)
}

fn parse_json(text: &str, source: &str) -> Result<Value> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if text.trim_start().starts_with(['{', '[', '"']) => {
            bail!("{source} is not valid JSON: {e}")
        }
        Err(e) => {
            bail!("{source} is not valid JSON: {e} (a string must be quoted: --input '\"text\"')")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_json_and_a_bare_word_says_how_to_quote_it() {
        assert_eq!(read_input(None).unwrap(), Value::Null);
        let v = read_input(Some(r#"{"q": [1, 2]}"#)).unwrap();
        assert_eq!(v, serde_json::json!({"q": [1, 2]}));
        let e = read_input(Some("hello")).unwrap_err().to_string();
        assert!(e.contains("--input is not valid JSON"), "{e}");
        assert!(e.contains("quoted"), "{e}");
        let e = read_input(Some("@/nonexistent/input.json")).unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/input.json"),
            "{e:#}"
        );
    }

    #[test]
    fn the_master_is_asked_to_wait_at_most_its_limit() {
        assert_eq!(server_wait(None), MAX_SERVER_WAIT);
        let soon = Instant::now() + Duration::from_secs(2);
        assert!(server_wait(Some(soon)) <= Duration::from_secs(2));
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(server_wait(Some(past)), Duration::ZERO);
    }
}
