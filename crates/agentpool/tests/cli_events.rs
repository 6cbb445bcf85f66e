//! `agentpool events`, run as the real binary against a real master: the buffered events
//! then exit, filters, `--json`, and `--follow` printing a spawn as it happens.

mod cli_support;
mod common;

use agentpool_testkit::{TempDir, wait_for};
use cli_support::Background;
use common::{Backend, Cluster, WAIT, config};
use serde_json::{Value, json};
use std::process::Stdio;

fn events(c: &Cluster, extra: &[&str]) -> String {
    let url = c.master.url();
    let mut args = vec!["events", "--url", &url];
    args.extend_from_slice(extra);
    cli_support::stdout(&args, &[])
}

both_backends!(prints_events_one_line_each: cli_events_redis, cli_events_embedded);

async fn prints_events_one_line_each(backend: Backend) {
    let c = Cluster::start_on(backend, config(10, 2, ""), &[]).await;
    let (status, agents) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": 2 }))
        .await;
    assert_eq!(status, 201, "{agents}");
    let (status, t) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=10", json!({ "input": 1 }))
        .await;
    assert_eq!(status, 200, "{t}");
    let task = t["task_id"].as_str().unwrap().to_owned();
    // The finish reaches the feed as an event, a moment after the answer.
    let out = wait_for("the task's finish in the feed", WAIT, || async {
        let out = events(&c, &["--pool", "p"]);
        out.contains("task_finished").then_some(out)
    })
    .await;
    for a in agents.as_array().unwrap() {
        let id = a["agent_id"].as_str().unwrap();
        assert!(
            out.lines()
                .any(|l| l.contains("agent_started") && l.contains(id)),
            "{out}"
        );
    }
    let finished = out.lines().find(|l| l.contains("task_finished")).unwrap();
    assert!(finished.contains(&format!("task_id={task}")) && finished.contains("status=succeeded"));
    assert!(
        out.lines().all(|l| l.contains(" p ")),
        "every line names pool p: {out}"
    );

    // --json and --kind: one JSON object a line, only tasks.
    let json_out = events(&c, &["--kind", "task", "--json"]);
    let lines: Vec<Value> = json_out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= 3, "{json_out}");
    assert!(
        lines
            .iter()
            .all(|v| v["kind"].as_str().unwrap().starts_with("task_"))
    );

    // --follow: a spawn made after it started shows up.
    let dir = TempDir::new("events-follow");
    let path = dir.path().join("out");
    let file = std::fs::File::create(&path).unwrap();
    let url = c.master.url();
    let _follow = Background::start(
        &["events", "--follow", "--kind", "agent", "--url", &url],
        &[],
        Stdio::from(file),
    );
    let (status, more) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": 1 }))
        .await;
    assert_eq!(status, 201, "{more}");
    let id = more[0]["agent_id"].as_str().unwrap().to_owned();
    wait_for("the new agent in the followed feed", WAIT, || async {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("agent_started") && l.contains(&id))
            .then_some(())
    })
    .await;
}
