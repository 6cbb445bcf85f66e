//! Helpers shared by the handler tests: an agent, a task, a run that collects progress, the
//! example agents, and process checks through /proc.
#![allow(dead_code)]

use agentpool_types::{AgentSpec, Handler, PoolSpec, TaskId};
use agentpool_worker::handlers::{AgentHandler, Outcome, TaskInput};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Long enough never to fire in a passing test; a test that hangs fails by it instead.
pub const LONG: Duration = Duration::from_secs(30);

/// An agent of pool `dev` whose config holds a pretend secret.
pub fn agent() -> AgentSpec {
    let pool = PoolSpec::new("dev", "developer");
    AgentSpec::new(&pool, None, None, json!({"api_key": "k-123"}))
}

pub fn task(input: Value) -> TaskInput {
    TaskInput {
        task_id: TaskId::new(),
        input,
    }
}

/// A handler from its JSON form, as a pool config would give it.
pub fn handler(config: Value) -> Handler {
    serde_json::from_value(config).expect("a valid handler")
}

/// The example agents shipped at the repository root.
pub fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
    path.join(name).to_string_lossy().into_owned()
}

/// Starts a handler for a fresh [`agent`].
pub async fn start(config: Value) -> Box<dyn AgentHandler> {
    start_as(config, &agent()).await
}

/// Starts a handler for `agent`.
pub async fn start_as(config: Value, agent: &AgentSpec) -> Box<dyn AgentHandler> {
    agentpool_worker::handlers::start(&handler(config), agent, None)
        .await
        .expect("handler starts")
}

/// Runs one task to its end; returns the outcome and the progress reports it made.
pub async fn run(
    h: &mut Box<dyn AgentHandler>,
    input: Value,
    timeout: Duration,
) -> (Outcome, Vec<(TaskId, Value)>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = h
        .run(task(input), timeout, &tx, CancellationToken::new())
        .await;
    let mut progress = Vec::new();
    while let Ok(p) = rx.try_recv() {
        progress.push(p);
    }
    (outcome, progress)
}

/// Whether `pid` is a live process (a zombie counts as gone: it runs nothing).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A fresh path in the temp directory for a test's scratch file.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agentpool-{name}-{}", TaskId::new()))
}

/// The pids written one per line to `path`, once `count` of them are there.
pub async fn pids_in(path: &PathBuf, count: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    let found = eventually(LONG, || {
        pids = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        pids.len() >= count
    })
    .await;
    assert!(found, "{count} pids in {}", path.display());
    pids
}
