//! `agentpool task …` and `agentpool tasks`, run as the real binary against a real master
//! with echo agents: submit, ask and broadcast with and without --wait, watch, cancel, retry,
//! the listing, the exit statuses, and the errors of the API shown as the master gave them.

mod cli_support;
mod common;

use agentpool_testkit::wait_until;
use agentpool_types::{Task, TaskState};
use cli_support::Background;
use common::{Backend, Cluster, WAIT, pool_config};
use serde_json::{Value, json};
use std::process::{Output, Stdio};

/// Pool `p` with `agents` echo agents running.
async fn cluster(backend: Backend, agents: u32) -> Cluster {
    let c = Cluster::start_on(backend, pool_config(10, 4, "", ""), &[]).await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": agents }))
        .await;
    assert_eq!(status, 201, "{body}");
    c
}

/// `agentpool <args> --url <master>`.
fn run(c: &Cluster, args: &[&str]) -> Output {
    let url = c.master.url();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--url", &url]);
    cli_support::output(&all, &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs, expects exit status `code`, returns stdout.
fn expect(c: &Cluster, args: &[&str], code: i32) -> String {
    let out = run(c, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "agentpool {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs with `--json` and decodes the one task printed.
fn task_json(c: &Cluster, args: &[&str], code: i32) -> Task {
    let mut all = args.to_vec();
    all.push("--json");
    let out = expect(c, &all, code);
    assert_eq!(out.lines().count(), 1, "one document: {out}");
    serde_json::from_str(&out).expect("a task")
}

both_backends!(tasks_round_trip_through_the_cli: round_trip_redis, round_trip_embedded);

async fn tasks_round_trip_through_the_cli(backend: Backend) {
    let c = cluster(backend, 2).await;
    let input = r#"{"q": 42}"#;
    let shown = expect(
        &c,
        &["task", "submit", "--pool", "p", "--input", input, "--wait"],
        0,
    );
    assert!(shown.contains("status:   succeeded\n"), "{shown}");
    assert!(shown.contains("output:   {\"q\":42}\n"), "{shown}");

    let t = task_json(&c, &["task", "submit", "--pool", "p", "--priority", "7"], 0);
    assert_eq!((t.spec.priority, t.spec.input.clone()), (7, Value::Null));
    wait_until("the queued task to succeed", WAIT, || async {
        c.task(t.id().as_str()).await["status"] == "succeeded"
    })
    .await;

    // It fails slowly, so its retry below is seen before it fails again.
    let failing = r#"{"fail": "nope", "sleep_ms": 300}"#;
    let args = [
        "task",
        "submit",
        "--pool",
        "p",
        "--input",
        failing,
        "--max-attempts",
        "1",
        "--wait=20",
    ];
    let failed = task_json(&c, &args, 3);
    assert_eq!(failed.status, TaskState::Failed);
    assert_eq!(failed.error.as_deref(), Some("nope"));

    let slow = r#"{"sleep_ms": 5000}"#;
    let args = [
        "task",
        "submit",
        "--pool",
        "p",
        "--input",
        slow,
        "--wait=0.3",
    ];
    let unfinished = task_json(&c, &args, 5);
    assert!(!unfinished.status.is_final(), "{unfinished:?}");
    let id = unfinished.id().to_string();
    let cancelled = task_json(&c, &["task", "cancel", &id], 0);
    assert_eq!(cancelled.id().as_str(), id);
    let watched = expect(&c, &["task", "watch", &id], 4);
    assert!(watched.contains("cancelled"), "{watched}");

    let retried = task_json(&c, &["task", "retry", failed.id().as_str()], 0);
    assert!(
        !retried.status.is_final() && retried.attempts <= 1,
        "{retried:?}"
    );
}

#[tokio::test]
async fn ask_runs_on_the_agent_named_and_broadcast_on_every_agent() {
    let c = cluster(Backend::Embedded, 3).await;
    let (_, agents) = c.master.get("/api/v1/agents?pool=p").await;
    let agent = agents[1]["agent_id"].as_str().unwrap().to_owned();
    let args = ["task", "ask", &agent, "--input", "[1]", "--wait=20"];
    let t = task_json(&c, &args, 0);
    assert_eq!(t.agent_id.map(|a| a.to_string()), Some(agent.clone()));
    assert_eq!(t.output, Some(json!([1])));

    let table = expect(
        &c,
        &[
            "task",
            "broadcast",
            "--pool",
            "p",
            "--input",
            "\"hi\"",
            "--wait",
        ],
        0,
    );
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "one task per agent:\n{table}");
    assert!(
        rows.iter()
            .all(|r| r.contains("succeeded") && r.contains("\"hi\"")),
        "{table}"
    );

    let out = run(&c, &["task", "ask", "01a20921-0000-7000-8000-000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown_agent"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn watch_prints_each_change_and_the_output_then_exits_by_the_outcome() {
    let c = cluster(Backend::Embedded, 1).await;
    let t = task_json(
        &c,
        &[
            "task",
            "submit",
            "--pool",
            "p",
            "--input",
            r#"{"sleep_ms": 400}"#,
        ],
        0,
    );
    let id = t.id().to_string();
    let url = c.master.url();
    let mut watch = Background::start(&["task", "watch", &id, "--url", &url], &[], Stdio::piped());
    let mut stdout = watch.child().stdout.take().expect("stdout");
    let status = watch.wait(WAIT).await;
    let mut lines = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut lines).unwrap();
    assert!(status.success(), "{status}: {lines}{}", watch.stderr());
    let succeeded = lines.lines().filter(|l| l.contains(" succeeded ")).count();
    assert_eq!(succeeded, 1, "the end once:\n{lines}");
    assert!(lines.contains(" running "), "{lines}");
    assert!(lines.ends_with("output: {\"sleep_ms\":400}\n"), "{lines}");

    // A finished task: one task event as JSON, the same task the API shows.
    let json = expect(&c, &["task", "watch", &id, "--json"], 0);
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().expect("an event");
    assert_eq!(last["event"], "task", "{json}");
    assert_eq!(last["data"], c.task(&id).await, "{json}");

    let failing = r#"{"fail": "boom"}"#;
    let args = [
        "task",
        "submit",
        "--pool",
        "p",
        "--input",
        failing,
        "--max-attempts",
        "1",
    ];
    let failed = task_json(&c, &args, 0);
    let watched = expect(&c, &["task", "watch", failed.id().as_str()], 3);
    assert!(watched.ends_with("error: boom\n"), "{watched}");
    let waited = ["task", "watch", &id, "--within", "5"];
    expect(&c, &waited, 0);
}

#[tokio::test]
async fn tasks_lists_by_pool_and_status_fitted_or_as_json() {
    let c = cluster(Backend::Embedded, 1).await;
    for input in ["1", "2", r#"{"fail": "x"}"#] {
        let args = [
            "task",
            "submit",
            "--pool",
            "p",
            "--input",
            input,
            "--max-attempts",
            "1",
            "--wait",
        ];
        run(&c, &args);
    }
    // The listing reads the store, which the registry's changes reach a moment later.
    wait_until("three finished tasks listed", WAIT, || async {
        let list = expect(&c, &["tasks", "--pool", "p", "--json"], 0);
        let tasks: Vec<Task> = serde_json::from_str(&list).unwrap();
        tasks.len() == 3 && tasks.iter().all(|t| t.status.is_final())
    })
    .await;
    let failed = expect(&c, &["tasks", "--status", "failed"], 0);
    assert_eq!(failed.lines().count(), 2, "{failed}");
    assert!(failed.lines().nth(1).unwrap().contains(" x"), "{failed}");
    let one = expect(&c, &["tasks", "--limit", "1", "--json"], 0);
    assert_eq!(serde_json::from_str::<Vec<Task>>(&one).unwrap().len(), 1);

    let url = c.master.url();
    let narrow = cli_support::stdout(&["tasks", "--url", &url], &[("COLUMNS", "80")]);
    assert_eq!(narrow.lines().count(), 4, "{narrow}");
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    assert!(
        narrow.lines().next().unwrap().contains("RESULT"),
        "{narrow}"
    );

    let out = run(&c, &["tasks", "--status", "lost"]);
    assert_eq!(out.status.code(), Some(2), "a value clap refuses");
    let out = run(&c, &["tasks", "--limit", "5000"]);
    assert!(
        text(&out.stderr).contains("limit: must be between 1 and 1000"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_masters_refusals_are_shown_as_it_gave_them() {
    let c = cluster(Backend::Embedded, 1).await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["task", "submit", "--pool", "nope"],
            "HTTP 404 Not Found: unknown_pool: unknown pool \"nope\"",
        ),
        (
            &["task", "submit", "--pool", "p", "--priority", "12"],
            "HTTP 422 Unprocessable Entity: invalid_value: priority: must be between 0 and 9, got 12",
        ),
        (
            &["task", "show", "nope"],
            "unknown_task: unknown task \"nope\"",
        ),
        (
            &["task", "submit", "--pool", "p", "--input", "hello"],
            "a string must be quoted",
        ),
        (
            &["task", "submit", "--pool", "p", "--max-attempts", "0"],
            "max_attempts: must be between 1 and 100, got 0",
        ),
    ];
    for (args, message) in cases {
        let out = run(&c, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let done = task_json(&c, &["task", "submit", "--pool", "p", "--wait"], 0);
    let out = run(&c, &["task", "retry", done.id().as_str()]);
    assert!(
        text(&out.stderr).contains("HTTP 409 Conflict: task_not_failed"),
        "{out:?}"
    );

    let dead = format!("http://127.0.0.1:{}", agentpool_testkit::free_port());
    let out = cli_support::output(&["task", "watch", done.id().as_str(), "--url", &dead], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("could not reach {dead}/api/v1/tasks/")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_registry_outage_is_a_503_that_names_redis() {
    let mut c = cluster(Backend::Redis, 1).await;
    c.redis_mut().stop();
    let out = run(&c, &["task", "submit", "--pool", "p", "--input", "1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 503 Service Unavailable: redis_unavailable: redis unavailable"),
        "{stderr}"
    );
}
