//! The `exec` handler in `per_task` mode, against real child processes: the example agent
//! `examples/agents/upper.sh` and inline shell scripts.

mod common;

use agentpool_worker::handlers::{AgentHandler, Outcome, Progress};
use common::{LONG, alive, eventually, example, pids_in, run, scratch, start, task};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn per_task(command: serde_json::Value) -> Box<dyn AgentHandler> {
    start(json!({"type": "exec", "mode": "per_task", "command": command})).await
}

/// A per-task `sh -c script`, with `PIDFILE` in its environment.
async fn script(script: &str, pidfile: &PathBuf) -> Box<dyn AgentHandler> {
    start(json!({
        "type": "exec", "mode": "per_task", "command": ["sh", "-c", script],
        "env": {"PIDFILE": pidfile},
    }))
    .await
}

/// Forks a `sleep` grandchild, notes its pid and waits for it: only a kill of the whole
/// process group stops it.
const FORKS_A_SLEEPER: &str = r#"sleep 300 & echo $! > "$PIDFILE"; wait"#;

#[tokio::test]
async fn json_output_comes_back_as_json() {
    let mut h = per_task(json!([example("upper.sh")])).await;
    let (outcome, _) = run(&mut h, json!({"text": "hi"}), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!({"TEXT": "HI"})));
}

#[tokio::test]
async fn other_output_comes_back_as_a_trimmed_string() {
    let mut h = per_task(json!([example("upper.sh"), "text"])).await;
    let (outcome, _) = run(&mut h, json!("hello world"), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!("HELLO WORLD")));
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_end_of_stderr() {
    let mut h = per_task(json!([example("upper.sh")])).await;
    let (outcome, _) = run(&mut h, json!({"fail": true}), LONG).await;
    let Outcome::Failed(why) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        why.starts_with("exit status 3: upper.sh: failing on purpose"),
        "{why}"
    );
    // The agent is fine: the next task runs.
    let (outcome, _) = run(&mut h, json!("ok"), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!("OK")));
}

#[tokio::test]
async fn the_program_sees_its_task_id() {
    let env = r#"printf '{"task":"%s","pool":"%s"}' "$AGENTPOOL_TASK_ID" "$AGENTPOOL_POOL""#;
    let mut h = per_task(json!(["sh", "-c", env])).await;
    let (tx, _rx): (Progress, _) = mpsc::unbounded_channel();
    let t = task(json!(null));
    let id = t.task_id.to_string();
    let outcome = h.run(t, LONG, &tx, CancellationToken::new()).await;
    assert_eq!(
        outcome,
        Outcome::Succeeded(json!({"task": id, "pool": "dev"}))
    );
}

#[tokio::test]
async fn a_missing_program_fails_the_attempt() {
    let mut h = per_task(json!(["no-such-program-here"])).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    let Outcome::Failed(why) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        why.starts_with("cannot start `no-such-program-here`"),
        "{why}"
    );
}

#[tokio::test]
async fn output_past_the_limit_fails_the_attempt() {
    let mut h = per_task(json!(["sh", "-c", "head -c 17000000 /dev/zero"])).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    assert_eq!(
        outcome,
        Outcome::Failed("`sh` wrote more than 16 MiB to stdout".into())
    );
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let pidfile = scratch("per-task-timeout");
    let mut h = script(FORKS_A_SLEEPER, &pidfile).await;
    let limit = Duration::from_millis(1_500);
    let started = Instant::now();
    let (outcome, _) = run(&mut h, json!(1), limit).await;
    assert_eq!(outcome, Outcome::Failed("timed out after 1.5 s".into()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let sleeper = pids_in(&pidfile, 1).await[0];
    assert!(
        eventually(LONG, || !alive(sleeper)).await,
        "grandchild {sleeper} lives on"
    );
    let _ = std::fs::remove_file(pidfile);
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group_at_once() {
    let pidfile = scratch("per-task-cancel");
    let mut h = script(FORKS_A_SLEEPER, &pidfile).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    // Cancel once the grandchild runs.
    let (outcome, sleeper) =
        tokio::join!(h.run(task(json!(1)), LONG, &tx, cancel.clone()), async {
            let sleeper = pids_in(&pidfile, 1).await[0];
            cancel.cancel();
            (sleeper, Instant::now())
        });
    let (sleeper, cancelled_at) = sleeper;
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert!(
        eventually(LONG, || !alive(sleeper)).await,
        "grandchild {sleeper} lives on"
    );
    let _ = std::fs::remove_file(pidfile);
}

#[tokio::test]
async fn a_background_process_left_behind_does_not_hold_the_attempt() {
    // The program exits at once, but its grandchild keeps stdout open.
    let pidfile = scratch("per-task-leftover");
    let left = r#"sleep 300 & echo $! > "$PIDFILE"; echo '"done"'"#;
    let mut h = script(left, &pidfile).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!("done")));
    let sleeper = pids_in(&pidfile, 1).await[0];
    assert!(
        eventually(LONG, || !alive(sleeper)).await,
        "grandchild {sleeper} lives on"
    );
    let _ = std::fs::remove_file(pidfile);
}
