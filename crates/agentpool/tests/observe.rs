//! Seeing the pools move: `GET /metrics` values follow real spawns and tasks, and
//! `GET /api/v1/events` streams them, filters by pool and replays after `Last-Event-ID`.

mod common;

use agentpool_testkit::wait_for;
use common::{Backend, Cluster, WAIT, config};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One sample of a scrape: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let labels = labels
                .split("\",")
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Sum of the samples of `name` whose labels include all of `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(c: &Cluster) -> Vec<Sample> {
    let resp = c
        .master
        .http()
        .get(format!("{}/metrics", c.master.url()))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    parse(&resp.text().await.expect("scrape body"))
}

both_backends!(metrics_follow_spawns_and_tasks: metrics_redis, metrics_embedded);

async fn metrics_follow_spawns_and_tasks(backend: Backend) {
    let c = Cluster::start_on(backend, config(10, 4, ""), &[]).await;
    let before = scrape(&c).await;
    let agents_before = sum(&before, "agentpool_agents", &[("pool", "p")]);
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": 3 }))
        .await;
    assert_eq!(status, 201, "{body}");
    let after = scrape(&c).await;
    assert_eq!(
        sum(&after, "agentpool_agents", &[("pool", "p")]) - agents_before,
        3.0
    );
    assert_eq!(
        sum(
            &after,
            "agentpool_agents",
            &[("pool", "p"), ("status", "idle")]
        ),
        3.0
    );
    assert_eq!(sum(&after, "agentpool_workers", &[("pool", "p")]), 1.0);
    assert_eq!(
        sum(&after, "agentpool_pool_free_slots", &[("pool", "p")]),
        7.0
    );
    assert!(
        sum(
            &after,
            "agentpool_agent_spawns_total",
            &[("pool", "p"), ("outcome", "ok")]
        ) >= 3.0
    );
    assert!(
        sum(
            &after,
            "agentpool_spawn_duration_seconds_count",
            &[("pool", "p")]
        ) >= 1.0
    );
    assert!(
        sum(
            &after,
            "agentpool_worker_resident_memory_bytes",
            &[("pool", "p")]
        ) > 0.0
    );
    assert_eq!(
        sum(
            &after,
            "agentpool_pool_circuit_state",
            &[("pool", "p"), ("state", "closed")]
        ),
        1.0
    );

    let finished = |s: &[Sample]| {
        sum(
            s,
            "agentpool_tasks_finished_total",
            &[("pool", "p"), ("outcome", "succeeded")],
        )
    };
    let done_before = finished(&after);
    let (status, t) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=10", json!({ "input": "hi" }))
        .await;
    assert_eq!(
        (status, t["status"].as_str()),
        (200, Some("succeeded")),
        "{t}"
    );
    // The finish reaches the master as an event, a moment after the answer.
    wait_for("the tasks counter to move", WAIT, || async {
        let s = scrape(&c).await;
        (finished(&s) == done_before + 1.0).then_some(())
    })
    .await;
    let s = scrape(&c).await;
    assert!(sum(&s, "agentpool_task_run_seconds_count", &[("pool", "p")]) >= 1.0);
    assert!(
        sum(
            &s,
            "agentpool_task_queue_wait_seconds_count",
            &[("pool", "p")]
        ) >= 1.0
    );
    assert!(sum(&s, "agentpool_tasks_submitted_total", &[("pool", "p")]) >= 1.0);
}

/// One event of a stream.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<u64>,
    name: String,
    data: Value,
}

/// An open event stream, read into events as chunks arrive.
struct Stream {
    resp: reqwest::Response,
    buf: String,
    events: Vec<Sse>,
}

impl Stream {
    async fn open(c: &Cluster, query: &str, last_id: Option<u64>) -> Stream {
        let mut req = c
            .master
            .http()
            .get(format!("{}/api/v1/events{query}", c.master.url()));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("the event stream");
        assert_eq!(resp.status(), 200);
        Stream {
            resp,
            buf: String::new(),
            events: Vec::new(),
        }
    }

    /// Reads until `done` holds for the events so far; panics past the deadline.
    async fn until(&mut self, what: &str, done: impl Fn(&[Sse]) -> bool) -> Vec<Sse> {
        let read = async {
            while !done(&self.events) {
                let Some(chunk) = self.resp.chunk().await.expect("reading the stream") else {
                    break;
                };
                self.buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    self.events.extend(block_event(&block));
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no {what} in time; got {:?}", self.events));
        assert!(
            done(&self.events),
            "stream ended before {what}: {:?}",
            self.events
        );
        self.events.clone()
    }
}

fn block_event(block: &str) -> Option<Sse> {
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim());
        }
    }
    (!data.is_empty()).then(|| Sse {
        id,
        name,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

fn has(events: &[Sse], kind: &str, key: &str, value: &str) -> bool {
    events
        .iter()
        .any(|e| e.name == kind && e.data[key] == value)
}

/// Two pools, `p` and `q`, one worker of 10 each at most.
fn two_pools() -> String {
    format!(
        "{}\n[[pools]]\nname = \"q\"\nrole = \"tester\"\nmax_agents_per_process = 10\nmax_processes = 2\n",
        config(10, 2, "")
    )
}

both_backends!(events_stream_spawns_and_tasks: events_redis, events_embedded);

async fn events_stream_spawns_and_tasks(backend: Backend) {
    let c = Cluster::start_on(backend, two_pools(), &[]).await;
    let mut all = Stream::open(&c, "", None).await;
    let mut only_q = Stream::open(&c, "?pool=q", None).await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({ "count": 1 }))
        .await;
    assert_eq!(status, 201, "{body}");
    let agent = body[0]["agent_id"].as_str().expect("agent id").to_owned();
    let (status, t) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=10", json!({ "input": 1 }))
        .await;
    assert_eq!(status, 200, "{t}");
    let task = t["task_id"].as_str().unwrap().to_owned();
    let seen = all
        .until("the spawn and the task", |e| {
            has(e, "agent_started", "agent_id", &agent) && has(e, "task_finished", "task_id", &task)
        })
        .await;
    for kind in ["process_started", "task_queued", "task_started"] {
        assert!(seen.iter().any(|e| e.name == kind), "no {kind}: {seen:?}");
    }
    assert!(seen.iter().all(|e| e.id.is_some()), "every event has an id");
    let at = |kind: &str| {
        seen.iter()
            .position(|e| e.name == kind && e.data["task_id"] == task)
            .unwrap_or_else(|| panic!("no {kind} of the task: {seen:?}"))
    };
    assert!(at("task_queued") < at("task_started") && at("task_started") < at("task_finished"));
    let started = seen.iter().find(|e| e.name == "process_started").unwrap();
    assert_eq!(started.data["pool"], "p", "{started:?}");
    let finished = seen.iter().find(|e| e.name == "task_finished").unwrap();
    assert_eq!(
        (
            finished.data["status"].as_str(),
            finished.data["pool"].as_str()
        ),
        (Some("succeeded"), Some("p"))
    );

    // The pool filter: a spawn into q comes through, nothing of p does.
    let (status, body) = c
        .master
        .post("/api/v1/pools/q/agents", json!({ "count": 1 }))
        .await;
    assert_eq!(status, 201, "{body}");
    let q_agent = body[0]["agent_id"].as_str().unwrap().to_owned();
    let q_seen = only_q
        .until("q's agent", |e| {
            has(e, "agent_started", "agent_id", &q_agent)
        })
        .await;
    assert!(q_seen.iter().all(|e| e.data["pool"] == "q"), "{q_seen:?}");

    // Reconnect: what came after the last id seen is replayed, in order, nothing before it.
    let last = seen.last().and_then(|e| e.id).unwrap();
    let (status, t2) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=10", json!({ "input": 2 }))
        .await;
    assert_eq!(status, 200, "{t2}");
    let task2 = t2["task_id"].as_str().unwrap().to_owned();
    let mut again = Stream::open(&c, "?kind=task", Some(last)).await;
    let replayed = again
        .until("the missed task", |e| {
            has(e, "task_finished", "task_id", &task2)
        })
        .await;
    assert!(
        replayed
            .iter()
            .all(|e| e.id.unwrap() > last && e.name.starts_with("task_")),
        "{replayed:?}"
    );
    let ids: Vec<u64> = replayed.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");

    // Bad filters name the problem.
    let (status, body) = c.master.get("/api/v1/events?kind=nope").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = c.master.get("/api/v1/events?pool=nope").await;
    assert_eq!(status, 404, "{body}");
}
