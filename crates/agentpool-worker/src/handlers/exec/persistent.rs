//! `exec` in `persistent` mode: one long-lived child per agent, spoken to in JSON lines.
//!
//! In (stdin): `{"type":"task","task_id":…,"input":…}` and `{"type":"cancel","task_id":…}`.
//! Out (stdout): `{"type":"progress","task_id":…,"data":…}`, `{"type":"result","task_id":…,
//! "output":…}` and `{"type":"error","task_id":…,"message":…}`. Stderr is the program's log.
//!
//! A reader task turns stdout into messages on a bounded channel, so a partly read line
//! survives a timeout and a chatty child is slowed down rather than buffered without end.
//! Once the child is gone the handler is broken for good: every later `run` fails the agent,
//! which must be restarted (with a fresh child) before it takes another task.

use super::{Group, MAX_OUTPUT, SharedTail, Tail, describe, drain_stderr, read_line_bounded};
use crate::handlers::{AgentHandler, BoxFuture, Outcome, Progress, TaskInput, timed_out};
use agentpool_types::{AgentId, AgentSpec, ExecHandler, SecretConfig, TaskId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;

/// How long a program gets to exit on its own after its stdin closes, at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long answers already written are still read once the child has exited, and how long
/// a child that closed its stdout gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long the last stderr lines get to arrive for the error message of a dead child.
const STDERR_GRACE: Duration = Duration::from_millis(500);
/// A cancel line is tiny: failing to write it this fast means the child stopped reading.
const CANCEL_WRITE: Duration = Duration::from_millis(200);
/// Messages read ahead of the handler before the child is made to wait.
const READ_AHEAD: usize = 64;

/// A message from the program.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Message {
    Progress {
        task_id: String,
        #[serde(default)]
        data: Value,
    },
    Result {
        task_id: String,
        #[serde(default)]
        output: Value,
    },
    Error {
        task_id: String,
        #[serde(default)]
        message: String,
    },
}

impl Message {
    fn task_id(&self) -> &str {
        match self {
            Message::Progress { task_id, .. }
            | Message::Result { task_id, .. }
            | Message::Error { task_id, .. } => task_id,
        }
    }
}

/// What the stdout reader passes on.
enum FromChild {
    Message(Message),
    /// A line over [`MAX_OUTPUT`], dropped.
    TooLong,
}

/// One agent's running program.
pub struct Persistent {
    agent: AgentId,
    program: String,
    child: Child,
    group: Group,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<FromChild>,
    stderr: SharedTail,
    readers: [JoinHandle<()>; 2],
    /// Why the agent can no longer work, once it cannot: every later `run` fails with it.
    broken: Option<String>,
    /// A line is being written. Still set at the next attempt, it means the last attempt was
    /// dropped mid-write and the child holds half a line.
    mid_write: bool,
}

impl Persistent {
    /// Starts the agent's program.
    pub fn start(
        exec: &ExecHandler,
        agent: &AgentSpec,
        secret: Option<&SecretConfig>,
    ) -> Result<Self, String> {
        let program = super::program(exec);
        let mut child = super::command(exec, agent, secret)?
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let group = Group::of(&child);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(format!("{program} started without its pipes"));
        };
        let id = agent.agent_id.clone();
        tracing::info!(agent_id = %id, %program, pid = child.id(), "agent program started");
        let (tx, messages) = mpsc::channel(READ_AHEAD);
        let tail = SharedTail::default();
        let readers = [
            tokio::spawn(read_stdout(stdout, tx, id.clone())),
            tokio::spawn(drain_stderr(stderr, tail.clone(), Some(id.clone()))),
        ];
        Ok(Self {
            agent: id,
            program,
            child,
            group,
            stdin: Some(stdin),
            messages,
            stderr: tail,
            readers,
            broken: None,
            mid_write: false,
        })
    }

    async fn attempt(
        &mut self,
        task: TaskInput,
        limit: Duration,
        progress: &Progress,
        cancel: CancellationToken,
    ) -> Outcome {
        if self.mid_write {
            self.abandon("was left with a half-written task", ());
        }
        if let Some(why) = &self.broken {
            return Outcome::AgentFailed(why.clone());
        }
        // A task cancelled before it starts must not cost the agent its child.
        if cancel.is_cancelled() {
            return Outcome::Cancelled;
        }
        let id = task.task_id;
        let deadline = sleep(limit);
        tokio::pin!(deadline);
        let line = json!({"type": "task", "task_id": id, "input": task.input});
        tokio::select! {
            // A write that completes at once wins over a deadline or cancel that is also due.
            biased;
            written = self.send(&line) => if let Err(e) = written {
                tracing::debug!(agent_id = %self.agent, error = %e, "cannot write a task");
                return self.died(None).await;
            },
            _ = &mut deadline => return self.abandon("timed out writing a task", timed_out(limit)),
            _ = cancel.cancelled() => return self.abandon("cancelled writing a task", Outcome::Cancelled),
        }
        loop {
            let next = tokio::select! {
                biased;
                next = self.messages.recv() => next,
                status = self.child.wait() => return self.exited(status.ok(), &id, progress).await,
                _ = &mut deadline => return self.cancel(&id, timed_out(limit)).await,
                _ = cancel.cancelled() => return self.cancel(&id, Outcome::Cancelled).await,
            };
            match next {
                None => return self.died(None).await,
                Some(FromChild::TooLong) => {
                    return Outcome::Failed(format!(
                        "the agent wrote a line longer than {} MiB",
                        MAX_OUTPUT >> 20
                    ));
                }
                Some(FromChild::Message(m)) => {
                    if let Some(outcome) = self.handle(m, &id, progress) {
                        return outcome;
                    }
                }
            }
        }
    }

    /// Acts on one message; `Some` once it ends the attempt.
    fn handle(&self, message: Message, id: &TaskId, progress: &Progress) -> Option<Outcome> {
        if message.task_id() != id.as_str() {
            let late = message.task_id();
            // Late progress can be plentiful; a late answer is worth a line at info.
            if matches!(message, Message::Progress { .. }) {
                tracing::debug!(agent_id = %self.agent, current = %id, late, "dropping late progress");
            } else {
                tracing::info!(agent_id = %self.agent, current = %id, late,
                    "dropping an answer for another task (an abandoned attempt)");
            }
            return None;
        }
        match message {
            Message::Progress { data, .. } => {
                // The receiver is gone only when nobody wants progress any more.
                let _ = progress.send((id.clone(), data));
                None
            }
            Message::Result { output, .. } => Some(Outcome::Succeeded(output)),
            Message::Error { message, .. } => Some(Outcome::Failed(message)),
        }
    }

    async fn send(&mut self, message: &Value) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        self.mid_write = true;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        self.mid_write = false;
        Ok(())
    }

    /// Tells the child to stop working on `id`, without waiting for it: `outcome` is returned
    /// at once, and a late answer is dropped by the next attempt.
    async fn cancel(&mut self, id: &TaskId, outcome: Outcome) -> Outcome {
        let line = json!({"type": "cancel", "task_id": id});
        match timeout(CANCEL_WRITE, self.send(&line)).await {
            Ok(Ok(())) => outcome,
            // A child that died shows it to the next attempt; one that stopped reading is
            // of no more use.
            Ok(Err(_)) => outcome,
            Err(_) => self.abandon("stopped reading its stdin", outcome),
        }
    }

    /// A half-written line garbles the protocol, and a child that does not read its stdin
    /// cannot be given work: either way the agent needs a fresh child.
    fn abandon<T>(&mut self, why: &str, outcome: T) -> T {
        self.broken = Some(format!(
            "{} {why}; the agent must be restarted",
            self.program
        ));
        outcome
    }

    /// The child exited during an attempt. Answers it wrote before exiting are still read for
    /// a moment, so a result followed by an exit is not lost; the agent is broken either way.
    async fn exited(&mut self, status: Option<ExitStatus>, id: &TaskId, p: &Progress) -> Outcome {
        let grace = sleep(EXIT_GRACE);
        tokio::pin!(grace);
        let mut answer = None;
        while answer.is_none() {
            tokio::select! {
                next = self.messages.recv() => match next {
                    Some(FromChild::Message(m)) => answer = self.handle(m, id, p),
                    Some(FromChild::TooLong) => {}
                    None => break,
                },
                _ = &mut grace => break,
            }
        }
        let failed = self.died(status).await;
        answer.unwrap_or(failed)
    }

    /// Makes sure the child is gone and says how it ended, for this and every later attempt.
    async fn died(&mut self, status: Option<ExitStatus>) -> Outcome {
        let how = match status {
            Some(status) => format!("exited with {}", describe(&status)),
            None => match timeout(EXIT_GRACE, self.child.wait()).await {
                Ok(Ok(status)) => format!("exited with {}", describe(&status)),
                _ => "closed its stdout and was killed".to_owned(),
            },
        };
        // Its own children must not outlive it, and stderr ends only once they are gone.
        self.group.kill();
        let _ = timeout(STDERR_GRACE, &mut self.readers[1]).await;
        let why = format!(
            "{} {how}; stderr ends with: {}",
            self.program,
            Tail::excerpt(&self.stderr)
        );
        tracing::warn!(agent_id = %self.agent, "agent program ended: {why}");
        self.broken = Some(why.clone());
        Outcome::AgentFailed(why)
    }

    /// Closes stdin, which asks the program to finish, then kills whatever is left of it.
    async fn stop(mut self) {
        drop(self.stdin.take());
        match timeout(SHUTDOWN_GRACE, self.child.wait()).await {
            Ok(_) => tracing::debug!(agent_id = %self.agent, "agent program exited"),
            Err(_) => tracing::info!(agent_id = %self.agent, grace = ?SHUTDOWN_GRACE,
                "agent program still running after its stdin closed: killing it"),
        }
        self.group.kill();
        let _ = timeout(EXIT_GRACE, self.child.wait()).await;
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl AgentHandler for Persistent {
    fn run<'a>(
        &'a mut self,
        task: TaskInput,
        timeout: Duration,
        progress: &'a Progress,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.attempt(task, timeout, progress, cancel))
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(self.stop())
    }
}

/// Turns the child's stdout into messages until it closes or the handler is gone. Lines that
/// are not messages are logged and skipped.
async fn read_stdout(stdout: ChildStdout, tx: mpsc::Sender<FromChild>, agent: AgentId) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        let item = match read_line_bounded(&mut reader, &mut line, MAX_OUTPUT).await {
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = %e, "cannot read the agent's stdout");
                return;
            }
            Ok(Some(false)) => {
                tracing::warn!(agent_id = %agent, "agent stdout line over {} MiB dropped", MAX_OUTPUT >> 20);
                FromChild::TooLong
            }
            Ok(Some(true)) => match parse(&line, &agent) {
                Some(message) => FromChild::Message(message),
                None => continue,
            },
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

fn parse(line: &[u8], agent: &AgentId) -> Option<Message> {
    if line.trim_ascii().is_empty() {
        return None;
    }
    match serde_json::from_slice(line) {
        Ok(message) => Some(message),
        Err(e) => {
            let text = crate::handlers::excerpt(&String::from_utf8_lossy(line), 200);
            let what = if e.is_data() {
                "not a known message"
            } else {
                "not JSON"
            };
            tracing::warn!(agent_id = %agent, error = %e, "agent stdout line skipped, {what}: {text}");
            None
        }
    }
}
