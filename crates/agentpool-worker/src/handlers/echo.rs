//! The `echo` handler: output = input, unchanged. For tests and benchmarks, an input object
//! may hold knobs: `"sleep_ms": N` sleeps N ms first, `"fail": "msg"` then fails the attempt,
//! `"panic": true` then panics inside `run` (the agent loop must survive that).

use super::{AgentHandler, BoxFuture, Outcome, Progress, TaskInput, timed_out};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Stateless: there is nothing to start or stop.
pub struct Echo;

impl AgentHandler for Echo {
    fn run<'a>(
        &'a mut self,
        task: TaskInput,
        timeout: Duration,
        _progress: &'a Progress,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(echo(task.input, timeout, cancel))
    }
}

async fn echo(input: Value, timeout: Duration, cancel: CancellationToken) -> Outcome {
    if let Some(ms) = input.get("sleep_ms").and_then(Value::as_u64) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = tokio::time::sleep(timeout) => return timed_out(timeout),
            _ = cancel.cancelled() => return Outcome::Cancelled,
        }
    }
    if input.get("panic").and_then(Value::as_bool) == Some(true) {
        panic!("echo handler panicked (the task asked for it)");
    }
    match input.get("fail") {
        None | Some(Value::Null | Value::Bool(false)) => Outcome::Succeeded(input),
        Some(Value::String(msg)) => Outcome::Failed(msg.clone()),
        Some(other) => Outcome::Failed(other.to_string()),
    }
}
