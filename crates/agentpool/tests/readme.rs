//! The README's samples against a real master, so they cannot drift.
//!
//! A short walk-through against the real binary and a private Redis (spawn one, spawn one with
//! its own restart policy, bulk spawn, drain a worker, terminate an agent, crash a worker; then
//! tasks: one waited for, a batch, a broadcast, one that fails, is retried after a backoff and
//! opens the pool's circuit, a retry by hand, one cancelled while its event stream is open,
//! tasks asked of one agent), then:
//!
//! - the redis-cli key table (marked `<!-- sample: redis-keys -->`): every key Redis holds
//!   matches a documented pattern of the documented type, every hash field is named in its row,
//!   every pub/sub channel with subscribers matches a documented channel, and every documented
//!   key pattern (pub/sub channels aside) was seen. A row whose content cell says "only while"
//!   documents a key that exists only for moments (a retry waiting out its backoff): it is
//!   exempt from "was seen", and checked like the others when it is;
//! - the JSON samples (marked `<!-- sample: NAME -->`): the field names of the first JSON object
//!   in the first output block after the marker equal those of the real answer, nested objects
//!   included (`metadata`, `input` and `output` are the user's own and count as one field);
//! - the event stream sample (marked `<!-- sample: task-events -->`): each `event:` it shows
//!   has the fields of that event in a real stream.
//!
//! Adding a key, a hash field or a JSON field without documenting it fails this test.

mod common;

use agentpool_testkit::wait_until;
use common::{Backend, Cluster, WAIT, pool_config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const README: &str = include_str!("../../../README.md");

/// Objects whose keys are the user's, not the program's.
const OPAQUE: [&str; 3] = ["metadata", "input", "output"];

#[tokio::test]
async fn readme_samples_match_a_real_master() {
    // Heartbeats every second, as by default: the reaper's lock then lives 3 s, and a loaded
    // machine is unlikely to let it lapse between the SCAN and the checks. Two failed attempts
    // in a row open the circuit, for an hour: the tasks queued after it stay queued.
    let c = Cluster::start_on(
        Backend::Redis,
        pool_config(
            2,
            6,
            "heartbeat_interval_ms = 1000",
            "circuit = { failures = 2, cooldown_secs = 3600 }",
        ),
        &[],
    )
    .await;
    let m = &c.master;

    let (status, health) = m.get("/health").await;
    assert_eq!(status, 200, "{health}");

    let (status, one) = m.post("/api/v1/agents", json!({"pool": "p"})).await;
    assert_eq!(status, 201, "{one}");
    let own_policy = json!({"pool": "p", "config": {"model": "small"}, "restart": "transient"});
    let (status, with_restart) = m.post("/api/v1/agents?wait=false", own_policy).await;
    assert_eq!(status, 202, "{with_restart}");
    let (status, bulk) = m.post("/api/v1/pools/p/agents", json!({"count": 3})).await;
    assert_eq!(status, 201, "{bulk}");
    c.wait_all_running("p", 5).await;

    let row = c.pool_row("p").await;
    let (status, processes) = m.get("/api/v1/processes?pool=p").await;
    assert_eq!(status, 200, "{processes}");
    let processes = processes.as_array().cloned().expect("an array of workers");
    assert!(
        processes.len() >= 3,
        "5 agents in workers of 2: {processes:?}"
    );

    // Drain the emptiest worker, terminate the oldest agent, crash a worker.
    let drained = processes
        .iter()
        .min_by_key(|p| p["agent_count"].as_u64())
        .expect("a worker");
    let (status, body) = m
        .delete(&format!(
            "/api/v1/processes/{}",
            text(&drained["process_id"])
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = m
        .delete(&format!("/api/v1/agents/{}", text(&one["agent_id"])))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, workers) = m.get("/api/v1/processes?pool=p").await;
    let victim = workers
        .as_array()
        .and_then(|w| w.iter().find(|p| p["agent_count"].as_u64() > Some(0)))
        .cloned()
        .expect("a worker with agents");
    let pid = victim["pid"].as_i64().expect("a pid") as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL a worker");
    let tombstone = format!("reaped:{}", text(&victim["process_id"]));
    let mut redis = c.conn().await;
    wait_until(
        "the crashed worker's tombstone and the reaper's lock in Redis",
        WAIT,
        || {
            let mut r = redis.clone();
            let tombstone = tombstone.clone();
            async move {
                let n: u32 = r
                    .exists(&[tombstone.as_str(), "lock:reaper"])
                    .await
                    .unwrap();
                n == 2
            }
        },
    )
    .await;
    c.wait_all_running("p", 4).await;
    let tasks = walk_tasks(&c).await;

    // The key table against what Redis holds.
    let table = key_table();
    let keys = scan(&mut redis).await;
    let mut seen = BTreeSet::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("TYPE");
        if kind == "none" {
            continue; // expired between SCAN and TYPE
        }
        let row = table
            .iter()
            .find(|r| r.kind != "pub/sub" && matches(&r.pattern, key))
            .unwrap_or_else(|| panic!("key {key:?} ({kind}) is not in the README's key table"));
        assert_eq!(
            row.kind, kind,
            "the README's key table says `{}` is a {}, Redis has {key:?} as a {kind}",
            row.pattern, row.kind
        );
        if kind == "hash" {
            let fields: BTreeMap<String, String> = redis.hgetall(key).await.expect("HGETALL");
            for field in fields.keys() {
                assert!(
                    row.names.contains(field),
                    "field {field:?} of {key:?} is not named in the README's row for `{}`",
                    row.pattern
                );
            }
        }
        seen.insert(row.pattern.clone());
    }
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query_async(&mut redis)
        .await
        .expect("PUBSUB CHANNELS");
    assert!(!channels.is_empty(), "workers subscribe to their channels");
    for channel in &channels {
        assert!(
            table
                .iter()
                .any(|r| r.kind == "pub/sub" && matches(&r.pattern, channel)),
            "channel {channel:?} is not in the README's key table"
        );
    }
    for row in table.iter().filter(|r| r.kind != "pub/sub" && !r.transient) {
        assert!(
            seen.contains(&row.pattern),
            "the README documents `{}`, but Redis held no such key after the walk-through: {keys:?}",
            row.pattern
        );
    }

    // The JSON samples against the real answers.
    let (status, health_now) = m.get("/health").await;
    assert_eq!(status, 200, "{health_now}");
    same_fields("health", &health);
    same_fields("health", &health_now);
    same_fields("pool-row", &row);
    for p in &processes {
        same_fields("process", p);
    }
    same_fields("agent", &one);
    same_fields("agent-with-restart", &with_restart);
    for a in bulk.as_array().expect("an array of agents") {
        same_fields("agent", a);
    }
    let (status, agents) = m.get("/api/v1/agents?pool=p").await;
    assert_eq!(status, 200, "{agents}");
    for a in agents.as_array().expect("an array of agents") {
        let sample = if a.get("restart").is_some() {
            "agent-with-restart"
        } else {
            "agent"
        };
        same_fields(sample, a);
    }
    same_fields("pool-row", &c.pool_row("p").await);
    for t in &tasks.tasks {
        same_fields(task_sample(t), t);
    }
    for list in &tasks.lists {
        same_fields("task-list", list);
    }
    let (status, listed) = m.get("/api/v1/tasks?pool=p&limit=1000").await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().cloned().expect("an array of tasks");
    assert!(listed.len() >= 10, "the walk-through's tasks: {listed:?}");
    for t in &listed {
        same_fields(task_sample(t), t);
    }
    same_fields("task-stats", &tasks.stats);
    same_events("task-events", &tasks.events);
}

/// What the tasks of the walk-through answered.
struct TaskAnswers {
    /// Every task answer (one task each).
    tasks: Vec<Value>,
    /// Answers of a batch and a broadcast: `{"tasks": [...]}`.
    lists: Vec<Value>,
    stats: Value,
    /// A task's event stream: (event name, data).
    events: Vec<(String, Value)>,
}

/// Tasks on pool `p` (4 idle agents, a circuit of 2 failures): one waited for, a batch, a
/// broadcast; one failing twice (a retry after a backoff), which opens the circuit and lands
/// in the dead set, then a retry of it by hand, which stays queued behind the open circuit; a
/// task cancelled while its event stream is open; a long task asked of one agent, with another
/// asked after it, and a failing one asked of another agent. Redis then holds every task key.
async fn walk_tasks(c: &Cluster) -> TaskAnswers {
    let m = &c.master;
    let mut tasks = Vec::new();
    let mut lists = Vec::new();

    let (status, waited) = m
        .post(
            "/api/v1/pools/p/tasks?wait=10",
            json!({"input": {"question": 42}}),
        )
        .await;
    assert_eq!(
        (status, text(&waited["status"])),
        (200, "succeeded"),
        "{waited}"
    );
    tasks.push(waited);

    let batch = json!({"tasks": [
        {"input": {"n": 1}},
        {"input": {"n": 2}, "priority": 9},
        {"input": {"n": 3}, "idempotency_key": "readme-3", "timeout_secs": 30, "max_attempts": 5},
    ]});
    let (status, list) = m.post("/api/v1/pools/p/tasks/batch", batch).await;
    assert_eq!(status, 202, "{list}");
    for t in list["tasks"].as_array().expect("the batch's tasks") {
        tasks.push(c.finished(text(&t["task_id"])).await);
    }
    lists.push(list);

    let (status, list) = m
        .post(
            "/api/v1/pools/p/broadcast?wait=10",
            json!({"input": "ping"}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let each = list["tasks"].as_array().expect("the broadcast's tasks");
    assert_eq!(each.len(), 4, "one task per running agent: {list}");
    assert!(each.iter().all(|t| t["status"] == "succeeded"), "{list}");
    tasks.extend(each.iter().cloned());
    lists.push(list);

    // Fails, waits out a backoff in `pool:p:delayed`, fails again: dead, and the circuit open.
    let (status, failing) = m
        .post(
            "/api/v1/pools/p/tasks",
            json!({"input": {"fail": "boom"}, "max_attempts": 2}),
        )
        .await;
    assert_eq!(status, 202, "{failing}");
    let dead_id = text(&failing["task_id"]).to_owned();
    let dead = c.finished(&dead_id).await;
    assert_eq!(
        (text(&dead["status"]), dead["attempts"].as_u64()),
        ("failed", Some(2)),
        "{dead}"
    );
    tasks.push(dead);
    assert_eq!(c.pool_row("p").await["circuit"], "open");
    let (status, retried) = m
        .post(&format!("/api/v1/tasks/{dead_id}/retry"), json!({}))
        .await;
    assert_eq!(
        (status, text(&retried["status"])),
        (200, "queued"),
        "{retried}"
    );
    tasks.push(retried);

    // Queued behind the open circuit, watched, cancelled.
    let (status, doomed) = m
        .post("/api/v1/pools/p/tasks", json!({"input": "never runs"}))
        .await;
    assert_eq!(
        (status, text(&doomed["status"])),
        (202, "queued"),
        "{doomed}"
    );
    let doomed_id = text(&doomed["task_id"]).to_owned();
    let stream = m
        .http()
        .get(format!("{}/api/v1/tasks/{doomed_id}/events", m.url()))
        .send()
        .await
        .expect("the event stream");
    assert_eq!(stream.status(), 200);
    // The stream answered, so it listens: the cancel's news reaches it.
    let (status, cancelled) = m.delete(&format!("/api/v1/tasks/{doomed_id}")).await;
    assert_eq!(
        (status, text(&cancelled["status"])),
        (200, "cancelled"),
        "{cancelled}"
    );
    tasks.push(cancelled);
    let body = tokio::time::timeout(WAIT, stream.text())
        .await
        .expect("the stream ends with the task")
        .expect("the stream's body");
    let events = sse(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["task", "status", "task"], "{body}");

    // An agent asked for a long task, and for another after it; another agent asked for one
    // that fails (asked tasks pass an open circuit).
    let (_, agents) = m.get("/api/v1/agents?pool=p&status=idle").await;
    let agents = agents.as_array().cloned().expect("an array of agents");
    assert!(agents.len() >= 2, "idle agents to ask: {agents:?}");
    let (busy, other) = (text(&agents[0]["agent_id"]), text(&agents[1]["agent_id"]));
    let (status, long) = m
        .post(
            &format!("/api/v1/agents/{busy}/tasks"),
            json!({"input": {"sleep_ms": 600_000}}),
        )
        .await;
    assert_eq!((status, text(&long["status"])), (202, "running"), "{long}");
    tasks.push(long);
    let (status, waits) = m
        .post(
            &format!("/api/v1/agents/{busy}/tasks"),
            json!({"input": "next"}),
        )
        .await;
    assert_eq!((status, text(&waits["status"])), (202, "queued"), "{waits}");
    tasks.push(waits);
    let (status, refused) = m
        .post(
            &format!("/api/v1/agents/{other}/tasks?wait=10"),
            json!({"input": {"fail": "no"}, "max_attempts": 1}),
        )
        .await;
    assert_eq!(
        (status, text(&refused["status"])),
        (200, "failed"),
        "{refused}"
    );
    tasks.push(refused);

    let (status, stats) = m.get("/api/v1/pools/p/stats?window=1h").await;
    assert_eq!(status, 200, "{stats}");
    TaskAnswers {
        tasks,
        lists,
        stats,
        events,
    }
}

/// The sample a task's fields are documented by: its optional fields pick it.
fn task_sample(t: &Value) -> &'static str {
    if t.get("target_agent_id").is_some() {
        "task-asked"
    } else if t.get("idempotency_key").is_some() {
        "task-with-key"
    } else {
        "task"
    }
}

/// Server-Sent Events as (event, data) pairs; keep-alive comments and blank lines skipped.
fn sse(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::from("message");
    for line in body.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:") {
            let data = serde_json::from_str(d.trim())
                .unwrap_or_else(|e| panic!("an event's data is not JSON ({e}): {line}"));
            out.push((std::mem::replace(&mut name, "message".into()), data));
        }
    }
    out
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("a string, got {v}"))
}

/// Every key of the Redis, by `SCAN`.
async fn scan(redis: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Where a marked sample starts: just after its `<!-- sample: NAME -->` marker.
fn after_marker(name: &str) -> &'static str {
    let marker = format!("<!-- sample: {name} -->");
    let at = README
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"));
    &README[at + marker.len()..]
}

/// One row of the redis-cli key table.
struct KeyRow {
    /// As written, e.g. `pool:<pool>:processes`.
    pattern: String,
    /// `set`, `zset`, `hash`, `string` or `pub/sub`.
    kind: String,
    /// The names in backticks in its content cell (a hash's fields).
    names: BTreeSet<String>,
    /// Its content cell says "only while": the key exists only for moments, so the
    /// walk-through need not catch it.
    transient: bool,
}

/// The table right after `<!-- sample: redis-keys -->`.
fn key_table() -> Vec<KeyRow> {
    let rows: Vec<KeyRow> = after_marker("redis-keys")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a key table row of 3 cells: {line}");
            let pattern = backticked(cells[0]);
            assert_eq!(pattern.len(), 1, "one key in backticks per row: {line}");
            KeyRow {
                pattern: pattern.into_iter().next().unwrap_or_default(),
                kind: cells[1].to_owned(),
                names: backticked(cells[2]).into_iter().collect(),
                transient: cells[2].contains("only while"),
            }
        })
        .collect();
    assert!(rows.len() >= 10, "the key table has its rows");
    rows
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether `key` fits `pattern`, where each `<…>` stands for one or more characters other than
/// `:` (a pool name, an id).
fn matches(pattern: &str, key: &str) -> bool {
    match pattern.find('<') {
        None => pattern == key,
        Some(open) => {
            let Some(rest) = key.strip_prefix(&pattern[..open]) else {
                return false;
            };
            let close = pattern[open..].find('>').expect("a closing >") + open;
            let tail = &pattern[close + 1..];
            let word = rest.find(':').unwrap_or(rest.len());
            (1..=word).any(|n| matches(tail, &rest[n..]))
        }
    }
}

/// The first JSON object of the first output block after the marker (shell blocks, the
/// commands, are skipped): from its first `{` to the end of that object.
fn sample(name: &str) -> Value {
    let block = output_block(name);
    let start = block
        .find('{')
        .unwrap_or_else(|| panic!("no JSON object in the {name} sample"));
    let mut values = serde_json::Deserializer::from_str(&block[start..]).into_iter::<Value>();
    values
        .next()
        .expect("a JSON value")
        .unwrap_or_else(|e| panic!("the {name} sample's first object is not complete JSON: {e}"))
}

/// The first output block after the marker: shell blocks (the commands) are skipped.
fn output_block(name: &str) -> &'static str {
    let mut rest = after_marker(name);
    loop {
        let open = rest
            .find("```")
            .unwrap_or_else(|| panic!("no output block after the {name} marker"));
        let info_end = rest[open..].find('\n').expect("a fence line") + open;
        let info = rest[open + 3..info_end].trim();
        let close = rest[info_end..].find("```").expect("a closing fence") + info_end;
        let block = &rest[info_end..close];
        rest = &rest[close + 3..];
        if info == "sh" {
            continue;
        }
        return block;
    }
}

/// Field names with their path (`master.pid`); `OPAQUE` objects count as one field.
fn field_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = format!("{prefix}{k}");
            if child.is_object() && !OPAQUE.contains(&k.as_str()) {
                field_paths(child, &format!("{path}."), out);
            } else {
                out.insert(path);
            }
        }
    }
}

/// The README's `name` sample has exactly the fields of `real`.
fn same_fields(name: &str, real: &Value) {
    let (mut documented, mut actual) = (BTreeSet::new(), BTreeSet::new());
    field_paths(&sample(name), "", &mut documented);
    field_paths(real, "", &mut actual);
    let undocumented: Vec<_> = actual.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&actual).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "the README's `{name}` sample is out of date: the master sends {undocumented:?} that it \
         lacks, and it shows {stale:?} that the master does not send; real answer: {real}"
    );
}

/// The README's `name` event stream shows the same events as `real`, each with its fields.
fn same_events(name: &str, real: &[(String, Value)]) {
    let documented = sse(output_block(name));
    let names = |events: &[(String, Value)]| -> BTreeSet<String> {
        events.iter().map(|(n, _)| n.clone()).collect()
    };
    let shown = names(&documented);
    assert!(
        names(real).is_subset(&shown),
        "the README's `{name}` sample shows the events {shown:?}, the master sent {real:?}"
    );
    for (event, data) in real {
        let (_, doc) = documented
            .iter()
            .find(|(n, _)| n == event)
            .expect("shown, as checked");
        let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
        field_paths(doc, "", &mut want);
        field_paths(data, "", &mut got);
        assert_eq!(
            want, got,
            "the README's `{name}` sample shows `{event}` events with other fields than the \
             master sends: {data}"
        );
    }
}

#[test]
fn key_patterns_match_whole_segments() {
    assert!(matches("pool:<pool>:processes", "pool:dev:processes"));
    assert!(matches("process:<id>", "process:01a2-ff"));
    assert!(!matches("process:<id>", "process:01a2:agents"));
    assert!(matches("process:<id>:agents", "process:01a2:agents"));
    assert!(!matches("pool:<pool>:agents", "pool::agents"));
    assert!(matches("lock:reaper", "lock:reaper"));
    assert!(!matches("pools", "pools:x"));
}
