//! Runs the real `agentpool` binary as a client: to completion, or in the background for
//! tests that signal it or close its pipes.

#![allow(dead_code)]

use agentpool_testkit::{TempDir, wait_for};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Variables of the test's own environment that would change what the CLI does.
const CLEARED_ENV: [&str; 6] = [
    "AGENTPOOL_URL",
    "AGENTPOOL_TIMEOUT",
    "COLUMNS",
    "REDIS_URL",
    "http_proxy",
    "HTTP_PROXY",
];

/// `agentpool <args>` with a clean environment plus `env`.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentpool"));
    cmd.args(args).stdin(Stdio::null());
    for k in CLEARED_ENV {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs to completion and returns its output.
pub fn output(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run agentpool")
}

/// Runs to completion, asserts success and returns stdout.
pub fn stdout(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = output(args, env);
    assert!(
        out.status.success(),
        "agentpool {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The binary running in the background; dropping it kills it. Its stderr goes to a file,
/// so nothing blocks on a full pipe.
pub struct Background {
    child: Option<Child>,
    dir: TempDir,
}

impl Background {
    /// Starts `agentpool <args>` with the given stdout.
    pub fn start(args: &[&str], env: &[(&str, &str)], stdout: Stdio) -> Background {
        let dir = TempDir::new("cli");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = command(args, env)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn agentpool");
        Background {
            child: Some(child),
            dir,
        }
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("still owned")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("still owned").id() as i32
    }

    /// Waits for the exit, failing the test after `within`.
    pub async fn wait(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("still owned");
        let status = wait_for("agentpool to exit", within, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await;
        self.child = None;
        status
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- agentpool stderr ---\n{}", self.stderr());
        }
    }
}
