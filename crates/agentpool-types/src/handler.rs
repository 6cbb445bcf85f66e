//! [`Handler`]: what an agent of a pool runs for each task it is given.
//!
//! - `echo`: answers with the task's input (for tests and benchmarks).
//! - `exec`: the user's program, kept running per agent and spoken to in JSON lines
//!   (`persistent`), or started once per task (`per_task`).
//! - `http`: a POST of each task to the user's service.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How long one attempt of a task may run when neither the task nor the handler says.
pub const DEFAULT_TASK_TIMEOUT_SECS: u64 = 300;
/// The `http` handler's default per-request timeout.
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 30;

/// What an agent of the pool does with a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Handler {
    /// Output = input. `{"sleep_ms": N}` sleeps first, `{"fail": "msg"}` fails the attempt,
    /// `{"panic": true}` panics inside the agent.
    #[default]
    Echo,
    Exec(ExecHandler),
    Http(HttpHandler),
}

/// The user's program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecHandler {
    /// Program and arguments, e.g. `["python3", "agent.py"]`; never run through a shell.
    pub command: Vec<String>,
    #[serde(default)]
    pub mode: ExecMode,
    /// One attempt's limit, unless the task sets its own.
    #[serde(default = "default_task_timeout")]
    pub timeout_secs: u64,
    /// Extra environment of the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the program; the worker's when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// How an `exec` handler runs its program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// One long-lived child per agent, JSON lines on stdin and stdout.
    #[default]
    Persistent,
    /// One child per task: the input on stdin, the output on stdout.
    PerTask,
}

/// The user's HTTP service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHandler {
    /// `http://` or `https://` URL that each task is POSTed to.
    pub url: String,
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
}

fn default_task_timeout() -> u64 {
    DEFAULT_TASK_TIMEOUT_SECS
}

fn default_http_timeout() -> u64 {
    DEFAULT_HTTP_TIMEOUT_SECS
}

impl Handler {
    /// One attempt's limit when the task does not set one.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(match self {
            Handler::Echo => DEFAULT_TASK_TIMEOUT_SECS,
            Handler::Exec(e) => e.timeout_secs,
            Handler::Http(h) => h.timeout_secs,
        })
    }

    /// What is wrong with this handler, if anything: `(field, problem)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match self {
            Handler::Echo => None,
            Handler::Exec(e) if e.command.is_empty() || e.command[0].is_empty() => Some((
                "handler.command",
                "must name a program, e.g. [\"python3\", \"agent.py\"]".into(),
            )),
            Handler::Exec(e) if e.timeout_secs == 0 => {
                Some(("handler.timeout_secs", "must be at least 1".into()))
            }
            Handler::Http(h)
                if !(h.url.starts_with("http://") || h.url.starts_with("https://")) =>
            {
                Some((
                    "handler.url",
                    format!("must be an http:// or https:// URL, got {:?}", h.url),
                ))
            }
            Handler::Http(h) if h.timeout_secs == 0 => {
                Some(("handler.timeout_secs", "must be at least 1".into()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_read_from_toml_like_json() {
        let exec: Handler = serde_json::from_str(
            r#"{"type":"exec","command":["python3","agent.py"],"mode":"per_task","env":{"A":"1"}}"#,
        )
        .unwrap();
        let Handler::Exec(e) = &exec else {
            panic!("{exec:?}")
        };
        assert_eq!((e.mode, e.timeout_secs), (ExecMode::PerTask, 300));
        assert_eq!(exec.problem(), None);
        let http: Handler = serde_json::from_str(r#"{"type":"http","url":"ftp://x"}"#).unwrap();
        assert_eq!(http.problem().unwrap().0, "handler.url");
        assert!(serde_json::from_str::<Handler>(r#"{"type":"exec","command":"a.py"}"#).is_err());
        assert_eq!(Handler::default().timeout(), Duration::from_secs(300));
    }
}
