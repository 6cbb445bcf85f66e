//! One home for the server children the testkit runs (`redis-server`, `pgbouncer`): start on a
//! free port with a readiness wait, kill, restart on the same port, kill on drop.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net::free_port;
use crate::tempdir::{TempDir, tail};
use crate::wait::wait_for;

/// How long a fresh server gets to answer its probe; it normally takes a few ms, but a debug
/// test binary on a loaded 2-core machine can starve it for seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Launch attempts before giving up. A retry only happens when the server exits early, which
/// on a busy machine usually means another process took the port between pick and bind.
const ATTEMPTS: usize = 5;
/// Log lines shown when a server fails to start.
const TAIL_LINES: usize = 20;

/// One kind of server: how to run it on a port and how to tell that it answers.
pub(crate) trait ServerKind {
    /// Name in messages, e.g. `redis-server`.
    fn name(&self) -> &'static str;

    /// Writes whatever a launch on `port` needs into `dir` and returns the command. Its stdin,
    /// stdout and stderr are set by [`Server`].
    fn command(&self, port: u16, dir: &Path) -> Command;

    /// Whether the server on `port` answers as a client would use it.
    fn ready(&self, port: u16) -> impl Future<Output = bool> + Send;

    /// Log files the server writes itself, shown after its output when it fails to start.
    fn own_logs(&self, _dir: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// A server child on 127.0.0.1 with its scratch directory; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Server<K: ServerKind> {
    kind: K,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl<K: ServerKind> Server<K> {
    /// Starts the server on a free port (a fresh one per attempt) and waits until it answers.
    pub(crate) async fn start(kind: K, dir: TempDir) -> Server<K> {
        let mut server = Server {
            kind,
            port: 0,
            child: None,
            dir,
        };
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            server.port = free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "{} did not start:\n{}",
            server.kind.name(),
            failures.join("\n")
        );
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }

    /// Pid of the running server; `None` once killed.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILLs the server and reaps it: clients see an abrupt outage, not a clean shutdown.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (killing it first if it runs), so clients
    /// configured with its URL reconnect, and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "{} did not restart on port {}:\n{}",
            self.kind.name(),
            self.port,
            failures.join("\n")
        );
    }

    fn output_log(&self) -> PathBuf {
        self.dir.path().join(format!("{}.out", self.kind.name()))
    }

    /// Spawns the server on `self.port` and waits until it answers. `Err` (with the end of its
    /// logs) if it exited first.
    async fn launch(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.output_log())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.output_log().display()));
        let name = self.kind.name();
        let child = self
            .kind
            .command(self.port, self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn {name} ({e}); is it installed? scripts/test installs it")
            });
        // Owned by self before waiting, so a timeout panic still kills it on drop.
        self.child = Some(child);

        let what = format!("{name} on port {} to answer", self.port);
        let exited = wait_ready(&what, &mut self.child, || self.kind.ready(self.port)).await;
        exited.map_err(|status| {
            self.child = None;
            let mut logs = vec![self.output_log()];
            logs.extend(self.kind.own_logs(self.dir.path()));
            let tails: Vec<String> = logs.iter().map(|l| tail(l, TAIL_LINES)).collect();
            format!(
                "port {}: {name} exited with {status}; log tail:\n{}",
                self.port,
                tails.join("\n")
            )
        })
    }
}

impl<K: ServerKind> Drop for Server<K> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until a freshly spawned server answers `probe`, or fails with its exit status as soon
/// as it exits: a server that died at start must not cost the whole timeout.
async fn wait_ready<F, Fut>(
    what: &str,
    child: &mut Option<Child>,
    mut probe: F,
) -> Result<(), std::process::ExitStatus>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, READY_TIMEOUT, || {
        let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        let answered = probe();
        async move {
            match exited {
                Some(status) => Some(Err(status)),
                None => answered.await.then_some(Ok(())),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "server" that exits at once, complaining on stderr, as one whose port was taken does.
    struct ExitsAtStart;

    impl ServerKind for ExitsAtStart {
        fn name(&self) -> &'static str {
            "exits-at-start"
        }

        fn command(&self, port: u16, _dir: &Path) -> Command {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &format!("echo cannot bind {port} >&2; exit 3")]);
            cmd
        }

        async fn ready(&self, _port: u16) -> bool {
            false
        }
    }

    #[tokio::test]
    #[should_panic(expected = "exits-at-start exited with exit status: 3; log tail:\ncannot bind")]
    async fn a_server_that_exits_at_start_fails_with_its_log() {
        Server::start(ExitsAtStart, TempDir::new("server")).await;
    }
}
