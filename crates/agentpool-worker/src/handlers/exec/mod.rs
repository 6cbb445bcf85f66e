//! The `exec` handler: the user's program, run without a shell.
//!
//! - [`persistent`]: one child per agent, JSON lines on stdin and stdout.
//! - [`per_task`]: one child per task, the input on stdin and the output on stdout.
//!
//! What both share lives here: the child's command line and environment, its process group
//! (killed as a whole, so a program's own children go with it), bounded reads of its output,
//! and the tail of its stderr for error messages.

pub mod per_task;
pub mod persistent;

use agentpool_types::{AgentId, AgentSpec, ExecHandler, SecretConfig, WORKER_CONFIG_ENV};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

/// Longest stdout line (persistent) or whole stdout (per task) read from a program: a runaway
/// child cannot make the worker buffer more than this.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Longest stderr line kept; the rest of the line is dropped.
const MAX_STDERR_LINE: usize = 8 << 10;
/// Bytes of stderr remembered for error messages.
const STDERR_TAIL_BYTES: usize = 4 << 10;
/// Characters of stderr quoted in an error message.
const STDERR_EXCERPT: usize = 1_000;
/// The environment variable that hands a program its agent's `secret_config` (JSON text):
/// the environment of a process is readable by its user only, unlike its argv.
pub const SECRET_CONFIG_ENV: &str = "AGENTPOOL_SECRET_CONFIG";

/// The program's command: never a shell, in its own process group, the three pipes, and the
/// agent's identity and secrets in its environment.
pub(crate) fn command(
    exec: &ExecHandler,
    agent: &AgentSpec,
    secret: Option<&SecretConfig>,
) -> Result<Command, String> {
    let Some((program, args)) = exec.command.split_first() else {
        return Err("handler.command names no program".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        // The worker's settings hold the registry URL, possibly with a password: the user's
        // program has no business with them.
        .env_remove(WORKER_CONFIG_ENV)
        .env_remove(SECRET_CONFIG_ENV)
        .envs(&exec.env)
        // Set after the handler's own `env` so a pool cannot misstate who the agent is.
        .env("AGENTPOOL_AGENT_ID", agent.agent_id.as_str())
        .env("AGENTPOOL_AGENT_NAME", &agent.name)
        .env("AGENTPOOL_POOL", &agent.pool_name)
        .env("AGENTPOOL_ROLE", &agent.role_type)
        .env("AGENTPOOL_CONFIG", agent.metadata.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(secret) = secret {
        cmd.env(SECRET_CONFIG_ENV, secret.expose_json());
    }
    if let Some(cwd) = &exec.cwd {
        cmd.current_dir(cwd);
    }
    Ok(cmd)
}

/// `program` as error messages name it.
pub(crate) fn program(exec: &ExecHandler) -> String {
    format!("`{}`", exec.command.first().map_or("", String::as_str))
}

/// A child's process group, killed with SIGKILL when dropped, so that an abandoned attempt or
/// a handler dropped without `shutdown` leaves no process behind.
pub(crate) struct Group(Option<Pid>);

impl Group {
    /// The group of a child started by [`command`], which leads its own group.
    pub(crate) fn of(child: &Child) -> Self {
        Self(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        )
    }

    /// Kills every process of the group, once. A group already gone is not an error.
    pub(crate) fn kill(&mut self) {
        let Some(pgid) = self.0.take() else { return };
        match killpg(pgid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!(%pgid, error = %e, "cannot kill a handler's process group"),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a program ended, in words: `exit status 3`, `signal 9 (SIGKILL)`.
pub(crate) fn describe(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(name) => format!("signal {sig} ({name})"),
            Err(_) => format!("signal {sig}"),
        },
        None => status.to_string(),
    }
}

/// Reads one line into `buf` without its `\n`, keeping at most `max` bytes of it and dropping
/// the rest. `None` at the end of input; `Some(false)` when the line was cut.
pub(crate) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut whole, mut any) = (true, false);
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then_some(whole));
        }
        any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let room = max.saturating_sub(buf.len());
        whole &= part.len() <= room;
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(whole));
        }
    }
}

/// All of `reader`, keeping at most `max` bytes: the rest is read and dropped so the program
/// is not left blocked on a full pipe. The flag says whether everything was kept.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(
    mut reader: R,
    max: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut whole = true;
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, whole));
        }
        let room = max.saturating_sub(kept.len());
        whole &= n <= room;
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// The last lines a program wrote to stderr, bounded in bytes.
#[derive(Default)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

pub(crate) type SharedTail = Arc<Mutex<Tail>>;

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    /// The end of stderr for an error message, or a note that there was none.
    pub(crate) fn excerpt(tail: &SharedTail) -> String {
        let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        let text = Vec::from(tail.lines.clone()).join("\n");
        match text.trim() {
            "" => "(nothing on stderr)".into(),
            text => super::tail_excerpt(text, STDERR_EXCERPT),
        }
    }
}

/// Reads stderr to its end into `tail`. With `log_as`, each line is also logged, prefixed by
/// the agent id: a persistent program's stderr is its log.
pub(crate) async fn drain_stderr(stderr: ChildStderr, tail: SharedTail, log_as: Option<AgentId>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while let Ok(Some(_)) = read_line_bounded(&mut reader, &mut buf, MAX_STDERR_LINE).await {
        let line = String::from_utf8_lossy(&buf).into_owned();
        if let Some(agent) = &log_as {
            tracing::info!(agent_id = %agent, "[agent {agent}] {line}");
        }
        tail.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentpool_types::PoolSpec;
    use std::collections::HashMap;
    use std::ffi::OsStr;

    #[test]
    fn the_child_gets_the_agent_identity_and_not_the_worker_config() {
        let exec: ExecHandler = serde_json::from_value(serde_json::json!({
            "command": ["python3", "agent.py"], "env": {"EXTRA": "1", "AGENTPOOL_POOL": "spoofed"},
        }))
        .unwrap();
        let pool = PoolSpec::new("dev", "developer");
        let agent = AgentSpec::new(&pool, None, None, serde_json::json!({"token": "t"}));
        let secret = SecretConfig::new(serde_json::json!({"api_key": "k"}));
        let cmd = command(&exec, &agent, Some(&secret)).unwrap();
        let envs: HashMap<&OsStr, Option<&OsStr>> = cmd.as_std().get_envs().collect();
        let get = |k: &str| envs.get(OsStr::new(k)).copied();
        assert_eq!(get(WORKER_CONFIG_ENV), Some(None), "removed, not inherited");
        assert_eq!(get("AGENTPOOL_POOL"), Some(Some(OsStr::new("dev"))));
        assert_eq!(get("AGENTPOOL_ROLE"), Some(Some(OsStr::new("developer"))));
        assert_eq!(
            get("AGENTPOOL_CONFIG"),
            Some(Some(OsStr::new(r#"{"token":"t"}"#)))
        );
        assert_eq!(get("EXTRA"), Some(Some(OsStr::new("1"))));
        assert_eq!(
            get(SECRET_CONFIG_ENV),
            Some(Some(OsStr::new(r#"{"api_key":"k"}"#)))
        );
        assert_eq!(cmd.as_std().get_program(), "python3");
    }

    #[test]
    fn an_agent_without_secrets_inherits_none() {
        let exec: ExecHandler =
            serde_json::from_value(serde_json::json!({"command": ["true"]})).unwrap();
        let agent = AgentSpec::new(
            &PoolSpec::new("dev", "d"),
            None,
            None,
            serde_json::json!({}),
        );
        let cmd = command(&exec, &agent, None).unwrap();
        let secret = cmd
            .as_std()
            .get_envs()
            .find(|(k, _)| *k == OsStr::new(SECRET_CONFIG_ENV));
        assert_eq!(secret, Some((OsStr::new(SECRET_CONFIG_ENV), None)));
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_next_line_is_read_whole() {
        let data: &[u8] = b"0123456789\nabc\nlast";
        let mut reader = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 5).await.unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"01234");
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 5).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"abc");
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 5).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf, b"last");
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 5).await.unwrap(),
            None
        );
        let (kept, whole) = read_capped(&b"abcdef"[..], 4).await.unwrap();
        assert_eq!((kept.as_slice(), whole), (&b"abcd"[..], false));
    }

    #[test]
    fn the_stderr_tail_keeps_the_end() {
        let tail = SharedTail::default();
        for i in 0..2_000 {
            tail.lock().unwrap().push(format!("line {i}"));
        }
        let text = Tail::excerpt(&tail);
        assert!(
            text.ends_with("line 1999") && text.starts_with('…'),
            "{text}"
        );
        assert_eq!(Tail::excerpt(&SharedTail::default()), "(nothing on stderr)");
    }
}
