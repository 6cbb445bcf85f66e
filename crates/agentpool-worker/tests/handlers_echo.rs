//! The `echo` handler, and `start` for every kind of handler.

mod common;

use agentpool_worker::handlers::Outcome;
use common::{LONG, run, start, task};
use futures::FutureExt;
use serde_json::json;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn echo_answers_with_the_input_unchanged() {
    let mut h = start(json!({"type": "echo"})).await;
    let input = json!({"a": [1, 2], "sleep_ms": 1, "fail": null});
    assert_eq!(
        run(&mut h, input.clone(), LONG).await.0,
        Outcome::Succeeded(input)
    );
    assert_eq!(
        run(&mut h, json!("text"), LONG).await.0,
        Outcome::Succeeded(json!("text"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn echo_fails_when_asked() {
    let mut h = start(json!({"type": "echo"})).await;
    let (outcome, _) = run(&mut h, json!({"fail": "no luck"}), LONG).await;
    assert_eq!(outcome, Outcome::Failed("no luck".into()));
}

#[tokio::test]
async fn echo_sleep_honours_cancel_at_once() {
    let mut h = start(json!({"type": "echo"})).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    // `join!` polls the run first, so the cancel lands while it sleeps.
    let (outcome, ()) = tokio::join!(
        h.run(task(json!({"sleep_ms": 60_000})), LONG, &tx, cancel.clone()),
        async { cancel.cancel() },
    );
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn echo_sleep_honours_the_timeout() {
    let mut h = start(json!({"type": "echo"})).await;
    let input = json!({"sleep_ms": 60_000});
    let (outcome, _) = run(&mut h, input, Duration::from_millis(100)).await;
    assert_eq!(outcome, Outcome::Failed("timed out after 0.1 s".into()));
}

#[tokio::test]
async fn echo_panics_when_asked() {
    let mut h = start(json!({"type": "echo"})).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = h.run(
        task(json!({"panic": true})),
        LONG,
        &tx,
        CancellationToken::new(),
    );
    let panic = AssertUnwindSafe(run).catch_unwind().await.unwrap_err();
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("panicked"), "{message}");
}

#[tokio::test]
async fn start_refuses_an_invalid_handler_and_a_missing_program() {
    let agent = common::agent();
    let bad = common::handler(json!({"type": "http", "url": "ftp://x"}));
    let err = agentpool_worker::handlers::start(&bad, &agent, None)
        .await
        .err()
        .unwrap();
    assert!(err.contains("handler.url"), "{err}");
    let missing = common::handler(json!({"type": "exec", "command": ["no-such-program-here"]}));
    let err = agentpool_worker::handlers::start(&missing, &agent, None)
        .await
        .err()
        .unwrap();
    assert!(err.contains("cannot start `no-such-program-here`"), "{err}");
}
