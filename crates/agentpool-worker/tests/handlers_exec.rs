//! The `exec` handler in `persistent` mode, against real child processes: the example agent
//! `examples/agents/echo_agent.py` and small inline programs.

mod common;

use agentpool_types::WORKER_CONFIG_ENV;
use agentpool_worker::handlers::{AgentHandler, Outcome};
use common::{LONG, alive, eventually, example, pids_in, run, scratch, start, start_as, task};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The example agent, with one extra variable from the handler's `env`.
fn echo_agent_config() -> Value {
    json!({
        "type": "exec",
        "command": ["python3", example("echo_agent.py")],
        "env": {"AGENTPOOL_EXTRA": "from the handler"},
    })
}

async fn echo_agent() -> Box<dyn AgentHandler> {
    start(echo_agent_config()).await
}

/// An inline persistent program in Python.
async fn python(code: &str) -> Box<dyn AgentHandler> {
    start(json!({"type": "exec", "command": ["python3", "-c", code]})).await
}

#[tokio::test]
async fn results_and_progress_come_back_per_task() {
    let mut h = echo_agent().await;
    let input = json!({"progress": 3, "n": 1});
    let (outcome, progress) = run(&mut h, input.clone(), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(input));
    let steps: Vec<Value> = progress.iter().map(|(_, d)| d["step"].clone()).collect();
    assert_eq!(steps, [json!(1), json!(2), json!(3)]);
    // The same child serves the next task.
    let (outcome, _) = run(&mut h, json!({"n": 2}), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!({"n": 2})));
    h.shutdown().await;
}

#[tokio::test]
async fn an_error_message_fails_the_attempt_only() {
    let mut h = echo_agent().await;
    let (outcome, _) = run(&mut h, json!({"fail": "bad input"}), LONG).await;
    assert_eq!(outcome, Outcome::Failed("bad input".into()));
    assert_eq!(
        run(&mut h, json!(7), LONG).await.0,
        Outcome::Succeeded(json!(7))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn cancel_returns_at_once_and_the_agent_goes_on() {
    let mut h = echo_agent().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let input = json!({"progress": 1, "sleep_ms": 60_000});
    let t = task(input);
    let id = t.task_id.clone();
    // Cancel once the agent shows it is working on the task.
    let (outcome, cancelled_at) = tokio::join!(h.run(t, LONG, &tx, cancel.clone()), async {
        let (task_id, _) = rx.recv().await.expect("a progress report");
        assert_eq!(task_id, id);
        cancel.cancel();
        Instant::now()
    });
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    // The agent's "cancelled" error for the old task is dropped; the next task is answered.
    assert_eq!(
        run(&mut h, json!("next"), LONG).await.0,
        Outcome::Succeeded(json!("next"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_attempt_cancelled_before_it_starts_or_dropped_leaves_the_agent_working() {
    let mut h = echo_agent().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let outcome = h.run(task(json!(1)), LONG, &tx, cancelled).await;
    assert_eq!(outcome, Outcome::Cancelled);
    // An attempt whose future is dropped mid-task (its agent task aborted, say): no cancel
    // is sent, so the child finishes it and its answer comes late.
    let working = task(json!({"progress": 1, "sleep_ms": 300}));
    tokio::select! {
        _ = h.run(working, LONG, &tx, CancellationToken::new()) => panic!("it cannot finish"),
        report = rx.recv() => assert!(report.is_some()),
    }
    assert_eq!(
        run(&mut h, json!(2), LONG).await.0,
        Outcome::Succeeded(json!(2))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_timeout_fails_the_attempt_and_its_late_answer_is_dropped() {
    let mut h = echo_agent().await;
    // The agent keeps working through the cancel and answers the abandoned task late.
    let slow = json!({"sleep_ms": 700, "ignore_cancel": true, "which": "late"});
    let started = Instant::now();
    let (outcome, _) = run(&mut h, slow, Duration::from_millis(200)).await;
    assert_eq!(outcome, Outcome::Failed("timed out after 0.2 s".into()));
    assert!(started.elapsed() < Duration::from_secs(1));
    // The agent answers the abandoned task first; that answer must not end this attempt.
    let (outcome, _) = run(&mut h, json!({"which": "current"}), LONG).await;
    assert_eq!(outcome, Outcome::Succeeded(json!({"which": "current"})));
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_fails_the_agent_for_this_and_every_later_task() {
    let mut h = echo_agent().await;
    let (outcome, _) = run(&mut h, json!({"crash": true}), LONG).await;
    let Outcome::AgentFailed(why) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(why.contains("`python3` exited with exit status 3"), "{why}");
    assert!(why.contains("crashing on purpose"), "stderr quoted: {why}");
    let (again, _) = run(&mut h, json!("next"), LONG).await;
    assert_eq!(again, Outcome::AgentFailed(why));
    h.shutdown().await;
}

#[tokio::test]
async fn a_program_that_exits_at_once_fails_the_agent() {
    let mut h =
        start(json!({"type": "exec", "command": ["sh", "-c", "echo no config >&2; exit 5"]})).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    let Outcome::AgentFailed(why) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        why.contains("exit status 5") && why.contains("no config"),
        "{why}"
    );
}

#[tokio::test]
async fn lines_that_are_not_messages_are_skipped() {
    let code = r#"
import json, sys
for line in sys.stdin:
    tid = json.loads(line)["task_id"]
    print("hello, this is not JSON", flush=True)
    print(json.dumps({"type": "unknown", "task_id": tid}), flush=True)
    print(json.dumps({"type": "result", "task_id": tid, "output": "ok"}), flush=True)
"#;
    let mut h = python(code).await;
    assert_eq!(
        run(&mut h, json!(1), LONG).await.0,
        Outcome::Succeeded(json!("ok"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_child_sees_its_agentpool_environment() {
    let agent = common::agent();
    let mut h = start_as(echo_agent_config(), &agent).await;
    let (outcome, _) = run(&mut h, json!({"env": true}), LONG).await;
    let Outcome::Succeeded(env) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(env["AGENTPOOL_AGENT_ID"], agent.agent_id.as_str());
    assert_eq!(env["AGENTPOOL_AGENT_NAME"], agent.name);
    assert_eq!(env["AGENTPOOL_POOL"], "dev");
    assert_eq!(env["AGENTPOOL_ROLE"], "developer");
    assert_eq!(env["AGENTPOOL_CONFIG"], agent.metadata.to_string());
    assert_eq!(env["AGENTPOOL_EXTRA"], "from the handler");
    assert!(env.get(WORKER_CONFIG_ENV).is_none(), "{env}");
    h.shutdown().await;
}

/// The worker itself has `AGENTPOOL_WORKER_CONFIG` set; its agents' programs must not. This
/// test runs itself again in a child process that has the variable, as a worker does.
#[tokio::test]
async fn the_child_does_not_inherit_the_worker_config() {
    if std::env::var_os(WORKER_CONFIG_ENV).is_none() {
        let me = std::env::current_exe().expect("the test binary");
        let name = "the_child_does_not_inherit_the_worker_config";
        let out = tokio::process::Command::new(me)
            .args(["--exact", name, "--test-threads=1"])
            .env(
                WORKER_CONFIG_ENV,
                r#"{"control_url":"redis://:s3cret@db:6379"}"#,
            )
            .output()
            .await
            .expect("the test binary runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return;
    }
    let mut h = echo_agent().await;
    let (outcome, _) = run(&mut h, json!({"env": true}), LONG).await;
    let Outcome::Succeeded(env) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(env["AGENTPOOL_POOL"], "dev");
    assert!(env.get(WORKER_CONFIG_ENV).is_none(), "{env}");
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_a_willing_child_quickly() {
    let mut h = echo_agent().await;
    let (outcome, _) = run(&mut h, json!({"pid": true}), LONG).await;
    let Outcome::Succeeded(ids) = outcome else {
        panic!("{outcome:?}")
    };
    let pid = u32::try_from(ids["pid"].as_u64().unwrap()).unwrap();
    assert_eq!(
        ids["pid"], ids["pgid"],
        "the child leads its own process group"
    );
    let started = Instant::now();
    h.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(!alive(pid));
}

#[tokio::test]
async fn shutdown_kills_a_child_that_ignores_stdin_and_its_children() {
    let pidfile = scratch("persistent-pids");
    let script = r#"sleep 300 & echo $! > "$PIDFILE"; echo $$ >> "$PIDFILE"; wait"#;
    let h = start(json!({
        "type": "exec",
        "command": ["sh", "-c", script],
        "env": {"PIDFILE": pidfile},
    }))
    .await;
    let pids = pids_in(&pidfile, 2).await;
    h.shutdown().await;
    assert!(
        eventually(LONG, || pids.iter().all(|&p| !alive(p))).await,
        "{pids:?} still run"
    );
    let _ = std::fs::remove_file(pidfile);
}
