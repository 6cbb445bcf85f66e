//! The benches against a real master: they never panic on a closed pipe, and whatever ends
//! them (success, an error, SIGINT, SIGTERM) no agent they spawned is left running and no
//! task they submitted is left queued.

mod cli_support;
mod common;

use agentpool_testkit::wait_until;
use cli_support::Background;
use common::{Backend, Cluster, WAIT};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

/// A bench of a few dozen agents on a debug build, with margin for a loaded machine.
const BENCH_EXIT: Duration = Duration::from_secs(60);

/// Pool `p`: 10 agents per worker, so `bench recovery` finds full workers.
async fn cluster(max_processes: u32, extra: &str) -> Cluster {
    let toml = common::config(10, max_processes, extra);
    Cluster::start_on(Backend::Embedded, toml, &[]).await
}

async fn agents(c: &Cluster) -> Vec<Value> {
    let (status, list) = c.master.get("/api/v1/agents").await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

async fn assert_no_agent_left(c: &Cluster) {
    wait_until("no agent left running", WAIT, || async {
        agents(c).await.is_empty()
    })
    .await;
}

fn bench(c: &Cluster, args: &[&str], stdout: Stdio) -> Background {
    let url = c.master.url();
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", &url]);
    Background::start(&all, &[], stdout)
}

const POOLS: [&str; 7] = ["pools", "--pool", "p", "--agents", "30", "--requests", "20"];

#[tokio::test]
async fn a_closed_stdout_neither_panics_nor_leaves_agents() {
    let c = cluster(10, "").await;
    let mut run = bench(&c, &POOLS, Stdio::piped());
    drop(run.child().stdout.take()); // the reader is gone before the bench prints anything
    let status = run.wait(BENCH_EXIT).await;
    let stderr = run.stderr();
    assert_ne!(status.code(), Some(101), "a panic: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("30/30 agents running"), "{stderr}");
    assert_no_agent_left(&c).await;
}

#[tokio::test]
async fn closed_stdout_and_stderr_neither_panic_nor_leave_agents() {
    let c = cluster(10, "").await;
    let url = c.master.url();
    let mut args = vec!["bench"];
    args.extend_from_slice(&POOLS);
    args.extend_from_slice(&["--url", &url]);
    let mut child = cli_support::command(&args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agentpool");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = agentpool_testkit::wait_for("the bench to exit", BENCH_EXIT, || {
        let status = child.try_wait().expect("try_wait");
        async move { status }
    })
    .await;
    assert!(status.success(), "{status} (101 is a panic)");
    assert_no_agent_left(&c).await;
}

/// Sends `signal` once the bench has agents running, and checks it cleans them up.
async fn signalled_bench_cleans_up(args: &[&str], signal: Signal, name: &str) {
    let c = cluster(10, "").await;
    let mut run = bench(&c, args, Stdio::null());
    wait_until("the bench to have agents running", WAIT, || async {
        !agents(&c).await.is_empty()
    })
    .await;
    kill(Pid::from_raw(run.pid()), signal).expect("signal the bench");
    let status = run.wait(BENCH_EXIT).await;
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_no_agent_left(&c).await;
}

#[tokio::test]
async fn sigint_ends_a_bench_and_terminates_its_agents() {
    // Enough requests that the bench is still measuring when the signal comes.
    let args = [
        "pools",
        "--pool",
        "p",
        "--agents",
        "30",
        "--requests",
        "100000000",
    ];
    signalled_bench_cleans_up(&args, Signal::SIGINT, "SIGINT").await;
}

#[tokio::test]
async fn sigterm_ends_a_bench_and_terminates_its_agents() {
    // Spawns and terminates in a loop, so a spawn may well be in flight at the signal.
    let args = ["spawn", "--pool", "p", "--warm", "100000000", "--cold", "1"];
    signalled_bench_cleans_up(&args, Signal::SIGTERM, "SIGTERM").await;
}

#[tokio::test]
async fn a_failed_bench_terminates_its_agents() {
    // One worker at most: the new-worker spawn fails with pool_full after filling it.
    let c = cluster(1, "").await;
    let args = ["spawn", "--pool", "p", "--warm", "2", "--cold", "1"];
    let mut run = bench(&c, &args, Stdio::null());
    let status = run.wait(BENCH_EXIT).await;
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pool_full"), "names the cause: {stderr}");
    assert!(stderr.contains("terminating the 10 agents"), "{stderr}");
    assert_no_agent_left(&c).await;
}

#[tokio::test]
async fn recovery_kills_and_freezes_a_worker_and_cleans_up() {
    let c = cluster(10, "heartbeat_timeout_ms = 1000").await;
    let args = [
        "recovery",
        "--pool",
        "p",
        "--runs",
        "1",
        "--stop-runs",
        "1",
        "--heartbeat-timeout-ms",
        "1000",
    ];
    let mut run = bench(&c, &args, Stdio::piped());
    let mut stdout = run.child().stdout.take().expect("stdout");
    let status = run.wait(BENCH_EXIT).await;
    let stderr = run.stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("SIGKILL: 1 run, 10 agents each"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SIGSTOP: 1 run, 10 agents each"),
        "{stderr}"
    );
    assert!(!stderr.contains("1 runs"), "{stderr}");
    let mut report = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut report).expect("read report");
    for row in ["SIGKILL runs recovered  1/1", "SIGSTOP runs recovered  1/1"] {
        assert!(report.contains(row), "{row:?} in:\n{report}");
    }
    assert_no_agent_left(&c).await;
}

/// Runs a bench with `--json` and returns its one JSON document.
async fn json_report(c: &Cluster, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let mut run = bench(c, &all, Stdio::piped());
    let mut stdout = run.child().stdout.take().expect("stdout");
    let status = run.wait(BENCH_EXIT).await;
    assert!(status.success(), "{status}: {}", run.stderr());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).expect("read report");
    assert_eq!(text.lines().count(), 1, "one document on one line: {text}");
    let rows: Value = serde_json::from_str(&text).expect("the report is JSON");
    rows.as_array().cloned().expect("an array")
}

fn row<'a>(rows: &'a [Value], measure: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["measure"] == measure)
        .unwrap_or_else(|| panic!("no {measure:?} in {rows:?}"))
}

#[tokio::test]
async fn every_bench_prints_its_report_as_json() {
    let c = cluster(10, "heartbeat_timeout_ms = 1000").await;
    let keys = [
        "measure", "result", "value", "unit", "target", "bound", "met",
    ];
    let spawn = [
        "spawn", "--pool", "p", "--warm", "5", "--cold", "2", "--bulk", "25",
    ];
    let pools = ["pools", "--pool", "p", "--agents", "15", "--requests", "5"];
    let recovery = ["recovery", "--pool", "p", "--runs", "1", "--stop-runs", "0"];
    for args in [&spawn[..], &pools, &recovery] {
        let rows = json_report(&c, args).await;
        assert!(!rows.is_empty(), "{args:?}");
        for r in &rows {
            let obj = r.as_object().expect("an object");
            assert_eq!(obj.keys().count(), keys.len(), "{r}");
            assert!(keys.iter().all(|k| obj.contains_key(*k)), "{r}");
        }
        assert_no_agent_left(&c).await;
    }
    let rows = json_report(&c, &spawn).await;
    let p50 = row(&rows, "warm spawn p50");
    assert_eq!(p50["unit"], "ms");
    assert_eq!(
        (&p50["target"], &p50["bound"]),
        (&json!(2.0), &json!("at_most"))
    );
    let value = p50["value"].as_f64().expect("a number");
    assert_eq!(p50["met"], value <= 2.0);
    let runs = row(&rows, "runs that started a worker");
    assert_eq!(runs["result"], "2/2");
    for key in ["value", "target", "bound", "met"] {
        assert!(runs[key].is_null(), "{runs}");
    }
    assert_eq!(row(&rows, "25 agents spawned")["target"], Value::Null);
}

/// No task of pool `p` is queued or running.
async fn assert_no_task_left(c: &Cluster) {
    wait_until("no task left queued or running", WAIT, || async {
        let row = c.pool_row("p").await;
        row["queued_tasks"] == 0 && row["running_tasks"] == 0
    })
    .await;
}

#[tokio::test]
async fn the_tasks_bench_counts_every_task_and_cleans_up() {
    let c = cluster(10, "").await;
    let args = [
        "tasks",
        "--pool",
        "p",
        "--agents",
        "5",
        "--round-trips",
        "5",
        "--tasks",
        "300",
        "--batch",
        "100",
        "--kill-runs",
        "1",
        "--slow-ms",
        "200",
    ];
    let rows = json_report(&c, &args).await;
    let keys = [
        "measure", "result", "value", "unit", "target", "bound", "met",
    ];
    for r in &rows {
        let obj = r.as_object().expect("an object");
        assert!(
            obj.len() == keys.len() && keys.iter().all(|k| obj.contains_key(*k)),
            "{r}"
        );
    }
    let p50 = row(&rows, "task round trip p50");
    assert_eq!(
        (&p50["target"], &p50["bound"]),
        (&json!(1.0), &json!("at_most"))
    );
    assert!(p50["value"].as_f64().is_some(), "{p50}");
    let result = |measure: &str| row(&rows, measure)["result"].as_str().unwrap().to_owned();
    assert_eq!(result("round trips succeeded"), "5/5");
    // Not the target's shape (100 agents, batches of 1,000): a figure without a target.
    let rate = row(&rows, "300 tasks over 5 agents");
    assert!(rate["target"].is_null(), "{rate}");
    assert!(
        result("300 tasks over 5 agents").ends_with(" tasks/s"),
        "{rate}"
    );
    assert_eq!(result("300 tasks over 5 agents: succeeded"), "300/300");
    assert!(result("300 tasks over 5 agents: accepted in").starts_with("3 requests in "));
    assert_eq!(
        result("SIGKILL, tasks lost / finished twice"),
        "0 / 0 of 10"
    );
    assert_eq!(result("SIGKILL, tasks run again"), "10/10");
    assert!(result("SIGKILL, tasks in flight succeeded").starts_with("p50 "));
    assert_eq!(result("agents spawned"), "15, all terminated");
    assert_no_agent_left(&c).await;
    assert_no_task_left(&c).await;
}

#[tokio::test]
async fn an_interrupted_tasks_bench_cancels_its_queued_tasks() {
    let c = cluster(10, "").await;
    // One agent cannot keep up with the batches, so tasks queue up.
    let args = [
        "tasks",
        "--pool",
        "p",
        "--agents",
        "1",
        "--round-trips",
        "0",
        "--tasks",
        "100000000",
        "--kill-runs",
        "0",
    ];
    let mut run = bench(&c, &args, Stdio::null());
    wait_until("tasks queued by the bench", WAIT, || async {
        c.pool_row("p").await["queued_tasks"].as_u64() > Some(0)
    })
    .await;
    kill(Pid::from_raw(run.pid()), Signal::SIGINT).expect("signal the bench");
    let status = run.wait(BENCH_EXIT).await;
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(stderr.contains("the bench left unfinished"), "{stderr}");
    assert_no_task_left(&c).await;
    assert_no_agent_left(&c).await;
}

#[tokio::test]
async fn the_autoscale_bench_times_a_cold_start_and_a_burst() {
    let pool = "idle_worker_ttl_secs = 1\n\n[pools.autoscale]\nmax_agents = 20\n\
                scale_down_idle_secs = 0.2";
    let toml = common::pool_config(10, 2, "", pool);
    let c = Cluster::start_on(Backend::Embedded, toml, &[]).await;
    let args = [
        "autoscale",
        "--pool",
        "p",
        "--cold-runs",
        "2",
        "--burst",
        "60",
        "--task-ms",
        "50",
    ];
    let rows = json_report(&c, &args).await;
    let wait = row(&rows, "cold start: queue wait p50");
    assert_eq!(
        (&wait["target"], &wait["bound"], &wait["unit"]),
        (&json!(50.0), &json!("at_most"), &json!("ms"))
    );
    assert!(wait["value"].as_f64().is_some_and(|v| v >= 0.0), "{wait}");
    let grown = row(&rows, "burst of 60 tasks: 20 agents running");
    assert!(
        grown["result"].as_str().unwrap().ends_with(" ms"),
        "{grown}"
    );
    row(&rows, "burst of 60 tasks: all done");
    assert_no_task_left(&c).await;

    // A pool sized by hand is refused, naming what is missing.
    let c = cluster(2, "").await;
    let mut run = bench(&c, &["autoscale", "--pool", "p"], Stdio::null());
    assert!(!run.wait(BENCH_EXIT).await.success());
    assert!(
        run.stderr().contains("has no [pools.autoscale]"),
        "{}",
        run.stderr()
    );
}

#[tokio::test]
async fn the_flood_gets_4xx_never_5xx_while_pools_still_answers() {
    let c = cluster(10, "").await;
    let args = [
        "flood",
        "--requests",
        "100",
        "--flooders",
        "3",
        "--slow",
        "4",
    ];
    let rows = json_report(&c, &args).await;
    let answered = row(&rows, "bad requests answered 4xx / 5xx / dropped")["result"]
        .as_str()
        .expect("a text result")
        .to_owned();
    let counts: Vec<u64> = answered
        .split(" / ")
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(counts.len(), 3, "{answered}");
    assert!(counts[0] > 0, "the flood was answered with 4xx: {answered}");
    assert_eq!(counts[1], 0, "no bad request got a 5xx: {answered}");
    let p99 = row(&rows, "GET /pools under the flood: p99");
    assert_eq!(p99["unit"], "ms");
    assert!(p99["value"].as_f64().is_some(), "{p99}");
    // The master is still whole afterwards.
    assert_eq!(c.master.get("/api/v1/pools").await.0, 200);
}
