//! The round trip of one echo task: submitted with `?wait=`, answered once it succeeded.

use crate::bench::progress;
use crate::bench::report::{Report, count};
use crate::bench::stats::{Summary, ms};
use crate::bench::tracked::Api;
use agentpool_types::{Task, TaskRequest, TaskState};
use anyhow::Result;
use serde_json::json;
use std::time::{Duration, Instant};

/// Untimed round trips first: the first tasks open connections and warm the agents up.
const WARM_UP: u64 = 10;
/// How long the master holds each request for its task; an echo task takes far less.
const WAIT: Duration = Duration::from_secs(10);

pub async fn run(api: &Api, pool: &str, n: u64, report: &mut Report) -> Result<()> {
    progress!(
        "round trip: {}, one at a time, each submitted with ?wait=",
        count(n, "echo task")
    );
    for i in 0..WARM_UP {
        one(api, pool, i).await?;
    }
    let (mut samples, mut succeeded) = (Vec::new(), 0);
    for i in 0..n {
        let start = Instant::now();
        let task = one(api, pool, i).await?;
        samples.push(start.elapsed());
        if task.status == TaskState::Succeeded {
            succeeded += 1;
        }
    }
    if let Some(s) = Summary::of(samples) {
        report.target("task round trip p50", ms(s.p50), 1.0, "ms");
        report.target("task round trip p99", ms(s.p99), 5.0, "ms");
        report.info("task round trip max", format!("{:.2} ms", ms(s.max)));
    }
    report.info("round trips succeeded", format!("{succeeded}/{n}"));
    Ok(())
}

async fn one(api: &Api, pool: &str, i: u64) -> Result<Task> {
    let body = TaskRequest {
        input: json!({ "i": i }),
        ..TaskRequest::default()
    };
    api.submit(&["pools", pool, "tasks"], Some(WAIT), &body)
        .await
}
