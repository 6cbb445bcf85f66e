//! The `http` handler against a real HTTP server started on 127.0.0.1 for each test.

mod common;

use agentpool_worker::handlers::{AgentHandler, Outcome};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::{LONG, run, start, task};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events the server reports for the `/slow` route.
#[derive(Debug, PartialEq)]
enum Slow {
    Arrived,
    /// The request's handler was dropped: the client went away.
    Dropped,
}

struct OnDrop(mpsc::UnboundedSender<Slow>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Slow::Dropped);
    }
}

/// Starts the test service; returns its base URL and the `/slow` route's events.
async fn serve() -> (String, mpsc::UnboundedReceiver<Slow>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/echo",
            post(|axum::Json(body): axum::Json<Value>| async { axum::Json(body) }),
        )
        .route(
            "/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom: no disk") }),
        )
        .route(
            "/long",
            post(|| async { (StatusCode::BAD_GATEWAY, "x".repeat(1_000)) }),
        )
        .route("/text", post(|| async { "plain words" }))
        .route(
            "/slow",
            post(move || async move {
                let _guard = OnDrop(tx.clone());
                let _ = tx.send(Slow::Arrived);
                std::future::pending::<()>().await;
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn client(url: &str) -> Box<dyn AgentHandler> {
    start(json!({"type": "http", "url": url})).await
}

#[tokio::test]
async fn a_2xx_json_body_is_the_output() {
    let (base, _) = serve().await;
    let agent = common::agent();
    let mut h = common::start_as(
        json!({"type": "http", "url": format!("{base}/echo")}),
        &agent,
    )
    .await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let t = task(json!({"q": "hi"}));
    let id = t.task_id.to_string();
    let outcome = h.run(t, LONG, &tx, CancellationToken::new()).await;
    let Outcome::Succeeded(body) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        body,
        json!({"task_id": id, "agent_id": agent.agent_id, "input": {"q": "hi"}})
    );
    // One client serves the agent's next task.
    let (again, _) = run(&mut h, json!(2), LONG).await;
    assert!(matches!(again, Outcome::Succeeded(b) if b["input"] == json!(2)));
}

#[tokio::test]
async fn other_answers_fail_with_status_and_body() {
    let (base, _) = serve().await;
    let mut h = client(&format!("{base}/fail")).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    assert_eq!(
        outcome,
        Outcome::Failed("HTTP 500 Internal Server Error: boom: no disk".into())
    );
    let mut h = client(&format!("{base}/text")).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    assert_eq!(outcome, Outcome::Failed("HTTP 200 OK: plain words".into()));
    let mut h = client(&format!("{base}/long")).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    let Outcome::Failed(why) = outcome else {
        panic!("{outcome:?}")
    };
    let body = why.strip_prefix("HTTP 502 Bad Gateway: ").expect(&why);
    assert_eq!(body, format!("{}…", "x".repeat(300)));
}

#[tokio::test]
async fn a_slow_service_times_out() {
    let (base, mut events) = serve().await;
    let mut h = client(&format!("{base}/slow")).await;
    let (outcome, _) = run(&mut h, json!(1), Duration::from_millis(300)).await;
    assert_eq!(outcome, Outcome::Failed("timed out after 0.3 s".into()));
    assert_eq!(events.recv().await, Some(Slow::Arrived));
}

#[tokio::test]
async fn cancel_aborts_the_request() {
    let (base, mut events) = serve().await;
    let mut h = client(&format!("{base}/slow")).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let (outcome, cancelled_at) =
        tokio::join!(h.run(task(json!(1)), LONG, &tx, cancel.clone()), async {
            assert_eq!(events.recv().await, Some(Slow::Arrived));
            cancel.cancel();
            Instant::now()
        });
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    // The connection closed, so the server gave up on the request too.
    let dropped = tokio::time::timeout(LONG, events.recv()).await;
    assert_eq!(dropped.ok().flatten(), Some(Slow::Dropped));
}

#[tokio::test]
async fn a_refused_connection_fails_naming_the_url_without_its_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut h = client(&format!("http://user:pw@127.0.0.1:{port}/tasks")).await;
    let (outcome, _) = run(&mut h, json!(1), LONG).await;
    let Outcome::Failed(why) = outcome else {
        panic!("{outcome:?}")
    };
    let url = format!("POST http://user:***@127.0.0.1:{port}/tasks failed: ");
    assert!(why.starts_with(&url), "{why}");
    assert!(why.contains("onnect") && !why.contains("pw"), "{why}");
}

#[tokio::test]
async fn an_agent_with_secrets_sends_them_in_each_body() {
    let (base, _) = serve().await;
    let agent = common::agent();
    let secret = agentpool_types::SecretConfig::new(json!({"api_key": "sk-1"}));
    let handler = common::handler(json!({"type": "http", "url": format!("{base}/echo")}));
    let mut h = agentpool_worker::handlers::start(&handler, &agent, Some(&secret))
        .await
        .expect("handler starts");
    let (outcome, _) = run(&mut h, json!({"q": 1}), LONG).await;
    let Outcome::Succeeded(body) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(body["secret_config"], json!({"api_key": "sk-1"}), "{body}");
    assert_eq!(body["input"], json!({"q": 1}), "{body}");
}
