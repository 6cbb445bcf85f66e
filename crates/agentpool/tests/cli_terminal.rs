//! The CLI under a real terminal: tmux gives it a pty of a known size, the test reads the
//! screen back with `capture-pane` and types with `send-keys`. `agentpool top` redraws as the
//! pool changes and quits on `q`; a bulk spawn draws a progress bar there and prints plain
//! lines into a pipe.

mod common;

use agentpool_testkit::{TempDir, wait_for, wait_until};
use common::{Backend, Cluster, WAIT, config};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A tmux server of the test's own (its own socket), killed on drop however the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Self {
        Self {
            socket: format!("agentpool-{name}-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux (scripts/test installs it)")
    }

    /// Runs `script` with `sh` in a session named `name`, on a 160x40 terminal.
    fn start(&self, name: &str, script: &str) {
        let started = self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "40",
            "sh",
            "-c",
            script,
        ]);
        assert!(started.status.success(), "{started:?}");
    }

    /// What the pane of session `name` shows now, as text.
    fn screen(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", name]).stdout).into_owned()
    }
}

/// The exit status `sh` wrote to `file` once its command ended.
async fn exit_status(file: &std::path::Path) -> String {
    wait_for("the command to exit", WAIT, || {
        let code = std::fs::read_to_string(file).ok();
        async move { code.filter(|c| c.ends_with('\n')) }
    })
    .await
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test]
async fn top_shows_the_pool_live_and_quits_on_q() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, ""), &[]).await;
    let (status, body) = c
        .master
        .post("/api/v1/agents", json!({"pool": "p", "name": "top-first"}))
        .await;
    assert_eq!(status, 201, "{body}");

    let dir = TempDir::new("top");
    let exit_file: PathBuf = dir.path().join("exit");
    // The shell records top's exit status, since the pane closes with it.
    let script = format!(
        "{} top --url {} --interval 0.2; echo $? > {}",
        env!("CARGO_BIN_EXE_agentpool"),
        c.master.url(),
        exit_file.display()
    );
    let tmux = Tmux::new("top");
    tmux.start("top", &script);

    wait_until("top to show the first agent", WAIT, || {
        let screen = tmux.screen("top");
        async move { screen.contains("top-first") && screen.contains("1 agent ") }
    })
    .await;
    let (status, body) = c
        .master
        .post("/api/v1/agents", json!({"pool": "p", "name": "top-second"}))
        .await;
    assert_eq!(status, 201, "{body}");
    // Redrawn without a key or a restart.
    wait_until("top to show the second agent", WAIT, || {
        let screen = tmux.screen("top");
        async move { screen.contains("top-second") && screen.contains("2 agents") }
    })
    .await;
    let screen = tmux.screen("top");
    assert!(
        screen.contains("pools") && screen.contains("workers"),
        "{screen}"
    );

    let sent = tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(sent.status.success(), "{sent:?}");
    assert_eq!(
        exit_status(&exit_file).await.trim(),
        "0",
        "top's exit status"
    );
}

#[tokio::test]
async fn a_bulk_spawn_shows_progress_on_a_terminal_and_lines_in_a_pipe() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 4, ""), &[]).await;
    let bin = env!("CARGO_BIN_EXE_agentpool");
    let url = c.master.url();
    let dir = TempDir::new("spawn-progress");
    let exit_file = dir.path().join("exit");
    let tmux = Tmux::new("spawn");
    // Kept open after the command ends, so its last lines can be read.
    let script = format!(
        "{bin} spawn --pool p --count 12 --url {url}; echo $? > {}; sleep 600",
        exit_file.display()
    );
    tmux.start("spawn", &script);
    assert_eq!(exit_status(&exit_file).await.trim(), "0");
    let screen = tmux.screen("spawn");
    assert!(screen.contains("12 agents running in"), "{screen}");

    let out = Command::new(bin)
        .args([
            "spawn", "--pool", "p", "--count", "3", "--json", "--url", &url,
        ])
        .output()
        .expect("run agentpool");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spawning 3 agents into pool p\n"),
        "{stderr}"
    );
    assert!(stderr.contains("3 agents running in"), "{stderr}");
    let agents: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(agents.as_array().map(Vec::len), Some(3), "{agents}");
}

#[tokio::test]
async fn top_refuses_a_pipe_with_a_hint() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentpool"))
        .args(["top", "--url", "http://127.0.0.1:9"])
        .output()
        .expect("run agentpool");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agentpool pools"), "{stderr}");
}
