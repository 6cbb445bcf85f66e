//! `exec` in `per_task` mode: one child per task. The input JSON goes on its stdin, which is
//! then closed; its stdout is the output, as JSON, or as a JSON string when it is not JSON.
//! A non-zero exit fails the attempt with the end of its stderr. The child's whole process
//! group is killed when the attempt ends, however it ends, so nothing it started lingers.

use super::{
    Group, MAX_OUTPUT, SharedTail, Tail, command, describe, drain_stderr, program, read_capped,
};
use crate::handlers::{AgentHandler, BoxFuture, Outcome, Progress, TaskInput, timed_out};
use agentpool_types::{AgentSpec, ExecHandler, SecretConfig};
use serde_json::Value;
use std::io::ErrorKind;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio_util::sync::CancellationToken;

/// An agent's settings; each task starts its own program.
pub struct PerTask {
    exec: ExecHandler,
    agent: AgentSpec,
    secret: Option<SecretConfig>,
}

/// What a program left behind once it exited.
struct Finished {
    status: std::io::Result<ExitStatus>,
    stdout: std::io::Result<(Vec<u8>, bool)>,
}

impl PerTask {
    pub fn new(exec: &ExecHandler, agent: &AgentSpec, secret: Option<&SecretConfig>) -> Self {
        Self {
            exec: exec.clone(),
            agent: agent.clone(),
            secret: secret.cloned(),
        }
    }

    async fn attempt(
        &self,
        task: TaskInput,
        limit: Duration,
        cancel: CancellationToken,
    ) -> Outcome {
        // A task cancelled before it starts does not start a program.
        if cancel.is_cancelled() {
            return Outcome::Cancelled;
        }
        let program = program(&self.exec);
        let mut cmd = match command(&self.exec, &self.agent, self.secret.as_ref()) {
            Ok(cmd) => cmd,
            Err(e) => return Outcome::Failed(e),
        };
        cmd.env("AGENTPOOL_TASK_ID", task.task_id.as_str());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Outcome::Failed(format!("cannot start {program}: {e}")),
        };
        let mut group = Group::of(&child);
        let tail = SharedTail::default();
        let input = match serde_json::to_vec(&task.input) {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Failed(format!("cannot encode the input: {e}")),
        };
        let ended = tokio::select! {
            finished = finish(&mut child, &mut group, input, tail.clone()) => Ok(finished),
            _ = tokio::time::sleep(limit) => Err(timed_out(limit)),
            _ = cancel.cancelled() => Err(Outcome::Cancelled),
        };
        // Whatever happened, nothing of this attempt may keep running; the dropped `Child`
        // is reaped by tokio.
        group.kill();
        match ended {
            Ok(finished) => judge(&program, finished, &tail),
            Err(outcome) => outcome,
        }
    }
}

// The default shutdown: between tasks nothing runs, each attempt cleans up after itself.
impl AgentHandler for PerTask {
    fn run<'a>(
        &'a mut self,
        task: TaskInput,
        timeout: Duration,
        _progress: &'a Progress,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.attempt(task, timeout, cancel))
    }
}

/// Feeds the input, reads both outputs and waits for the exit, all at once so that no pipe
/// fills up and blocks the program. Once the program exits its group is killed: a background
/// process it left holding stdout open would otherwise keep the attempt waiting.
async fn finish(
    child: &mut Child,
    group: &mut Group,
    input: Vec<u8>,
    tail: SharedTail,
) -> Finished {
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
        return Finished {
            status: Err(std::io::Error::other("it started without its pipes")),
            stdout: Ok((Vec::new(), true)),
        };
    };
    let exit = async {
        let status = child.wait().await;
        group.kill();
        status
    };
    let (status, stdout, (), ()) = tokio::join!(
        exit,
        read_capped(stdout, MAX_OUTPUT),
        drain_stderr(stderr, tail, None),
        feed(stdin, input),
    );
    Finished { status, stdout }
}

/// Writes the input and closes stdin. A program that exits without reading all of its input
/// is not an error here: its exit status says how it went.
async fn feed(mut stdin: ChildStdin, input: Vec<u8>) {
    if let Err(e) = stdin.write_all(&input).await
        && e.kind() != ErrorKind::BrokenPipe
    {
        tracing::debug!(error = %e, "cannot write a task's input");
    }
}

/// The outcome of a program that exited.
fn judge(program: &str, finished: Finished, tail: &SharedTail) -> Outcome {
    let status = match finished.status {
        Ok(status) => status,
        Err(e) => return Outcome::Failed(format!("cannot wait for {program}: {e}")),
    };
    if !status.success() {
        return Outcome::Failed(format!("{}: {}", describe(&status), Tail::excerpt(tail)));
    }
    match finished.stdout {
        Ok((_, false)) => Outcome::Failed(format!(
            "{program} wrote more than {} MiB to stdout",
            MAX_OUTPUT >> 20
        )),
        Ok((bytes, true)) => Outcome::Succeeded(output(&bytes)),
        Err(e) => Outcome::Failed(format!("cannot read the stdout of {program}: {e}")),
    }
}

/// Stdout as JSON when it is JSON, else as a (trimmed) JSON string.
fn output(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::output;
    use serde_json::json;

    #[test]
    fn output_is_json_or_a_trimmed_string() {
        assert_eq!(output(b" {\"a\": 1}\n"), json!({"a": 1}));
        assert_eq!(output(b"HELLO WORLD\n"), json!("HELLO WORLD"));
        assert_eq!(output(b""), json!(""));
    }
}
