//! Handlers: what an agent runs for each task it is given, as its pool's [`Handler`] says.
//!
//! - [`echo`]: output = input, with knobs for tests (`sleep_ms`, `fail`, `panic`).
//! - [`exec`]: the user's program, one child per agent speaking JSON lines (`persistent`), or
//!   one child per task (`per_task`).
//! - [`http`]: a POST of each task to the user's service.
//!
//! An agent builds its handler once with [`start`] and then calls [`AgentHandler::run`] for one
//! task at a time; [`AgentHandler::shutdown`] stops whatever the handler runs.

pub mod echo;
pub mod exec;
pub mod http;

use agentpool_types::{AgentSpec, ExecMode, Handler, SecretConfig, TaskId};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One task as a handler sees it.
pub struct TaskInput {
    pub task_id: TaskId,
    pub input: Value,
}

/// How one attempt ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// The attempt failed; the agent is fine and takes the next task.
    Failed(String),
    /// Stopped because `cancel` fired.
    Cancelled,
    /// The agent itself broke (e.g. the persistent exec child exited): this attempt failed
    /// and the agent must be restarted before it takes another task.
    AgentFailed(String),
}

/// Where a running task's progress reports go: (task, data).
pub type Progress = tokio::sync::mpsc::UnboundedSender<(TaskId, Value)>;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One agent's handler instance. One task at a time per agent.
pub trait AgentHandler: Send {
    /// Runs one attempt; honours `timeout` (→ `Outcome::Failed("timed out after N s")`) and
    /// `cancel` (→ `Outcome::Cancelled`) promptly.
    fn run<'a>(
        &'a mut self,
        task: TaskInput,
        timeout: Duration,
        progress: &'a Progress,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Outcome>;

    /// Stops whatever the handler runs (the persistent child: close stdin, wait briefly, then
    /// kill its process group). Handlers that keep nothing between attempts have nothing to
    /// stop.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Builds an agent's handler; for persistent exec this starts the child. Err = the agent fails
/// to start. `secret` is the agent's opened `secret_config`, handed to its program only.
pub async fn start(
    handler: &Handler,
    agent: &AgentSpec,
    secret: Option<&SecretConfig>,
) -> Result<Box<dyn AgentHandler>, String> {
    if let Some((field, problem)) = handler.problem() {
        return Err(format!("invalid handler: {field} {problem}"));
    }
    Ok(match handler {
        Handler::Echo => Box::new(echo::Echo),
        Handler::Exec(exec) if exec.mode == ExecMode::Persistent => {
            Box::new(exec::persistent::Persistent::start(exec, agent, secret)?)
        }
        Handler::Exec(exec) => Box::new(exec::per_task::PerTask::new(exec, agent, secret)),
        Handler::Http(http) => Box::new(http::Http::new(http, agent, secret)?),
    })
}

/// The failure of an attempt that ran out of time.
pub fn timed_out(timeout: Duration) -> Outcome {
    Outcome::Failed(format!("timed out after {} s", seconds(timeout)))
}

/// `timeout` in seconds as a person writes it: `30`, or `0.25` for test-sized limits.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        text.trim_end_matches('0').to_owned()
    }
}

/// At most `max` characters of the start of `text`, marked when cut. Error messages quote
/// bodies and output through this so one task cannot flood the registry or a log.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// At most `max` characters of the end of `text`, marked when cut: the end of a program's
/// stderr is where it says why it failed.
pub(crate) fn tail_excerpt(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let skip = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    format!("…{}", &text[skip..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_naturally() {
        assert_eq!(
            timed_out(Duration::from_secs(30)),
            Outcome::Failed("timed out after 30 s".into())
        );
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hé", 2), "hé");
        assert_eq!(tail_excerpt("héllo", 3), "…llo");
        assert_eq!(tail_excerpt("lo", 3), "lo");
    }
}
