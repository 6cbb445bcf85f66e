//! The handlers end to end, through real workers: the example Python agent kept per agent
//! (results, progress on the event stream, its environment, a crash retried elsewhere), the
//! example shell agent run per task, and a user's HTTP service.

mod common;

use agentpool_testkit::wait_for;
use common::{Backend, Cluster, WAIT, pool_config};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    format!(
        "{}/../../examples/agents/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

async fn cluster(handler: &str, agents: u32) -> Cluster {
    let pool = format!("handler = {handler}\ncircuit = {{ failures = 100 }}");
    let c = Cluster::start_on(Backend::Embedded, pool_config(10, 2, "", &pool), &[]).await;
    let body = json!({"count": agents, "config": {"model": "small"}});
    let (status, spawned) = c.master.post("/api/v1/pools/p/agents", body).await;
    assert_eq!(status, 201, "{spawned}");
    c
}

async fn run(c: &Cluster, input: Value) -> Value {
    let (status, t) = c
        .master
        .post("/api/v1/pools/p/tasks?wait=20", json!({ "input": input }))
        .await;
    assert_eq!(status, 200, "{t}");
    t
}

#[tokio::test]
async fn a_persistent_python_agent_answers_reports_progress_and_sees_its_settings() {
    let handler = format!(
        r#"{{ type = "exec", command = ["python3", "{}"], env = {{ EXTRA = "1" }} }}"#,
        example("echo_agent.py")
    );
    let c = cluster(&handler, 1).await;
    let t = run(&c, json!({"q": "hi"})).await;
    assert_eq!(
        (t["status"].as_str(), t["output"].clone()),
        (Some("succeeded"), json!({"q": "hi"}))
    );
    let env = run(&c, json!({"env": true})).await["output"].clone();
    assert_eq!(env["AGENTPOOL_POOL"], "p", "{env}");
    assert_eq!(env["AGENTPOOL_AGENT_ID"], t["agent_id"], "{env}");
    let config: Value = serde_json::from_str(env["AGENTPOOL_CONFIG"].as_str().unwrap()).unwrap();
    assert_eq!(config["model"], "small");
    assert!(
        env.get("AGENTPOOL_WORKER_CONFIG").is_none(),
        "no registry URL for user code: {env}"
    );
    let (_, failed) = c
        .master
        .post(
            "/api/v1/pools/p/tasks?wait=20",
            json!({"input": {"fail": "nope"}, "max_attempts": 1}),
        )
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some("nope"))
    );
}

#[tokio::test]
async fn progress_reports_reach_the_event_stream() {
    let handler = format!(
        r#"{{ type = "exec", command = ["python3", "{}"] }}"#,
        example("echo_agent.py")
    );
    let c = cluster(&handler, 1).await;
    let (_, t) = c
        .master
        .post(
            "/api/v1/pools/p/tasks",
            json!({"input": {"progress": 3, "sleep_ms": 300}}),
        )
        .await;
    let body = c.task_stream(t["task_id"].as_str().unwrap()).await;
    let progress = body.lines().filter(|l| *l == "event: progress").count();
    assert!(progress >= 1, "progress on the stream: {body}");
    assert!(body.contains("\"status\":\"succeeded\""), "{body}");
}

#[tokio::test]
async fn a_crashed_persistent_child_fails_the_attempt_and_the_task_is_retried() {
    let handler = format!(
        r#"{{ type = "exec", command = ["python3", "{}"] }}"#,
        example("echo_agent.py")
    );
    let c = cluster(&handler, 2).await;
    let (_, t) = c
        .master
        .post(
            "/api/v1/pools/p/tasks",
            json!({"input": {"crash": true}, "max_attempts": 2}),
        )
        .await;
    let id = t["task_id"].as_str().unwrap().to_owned();
    let done = wait_for("the crashing task to end", WAIT, || async {
        let (_, t) = c.master.get(&format!("/api/v1/tasks/{id}")).await;
        (t["status"] == "failed").then_some(t)
    })
    .await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert!(done["error"].as_str().unwrap().contains("exited"), "{done}");
    // The agents restarted their children and work.
    assert_eq!(run(&c, json!("ok")).await["status"], "succeeded");
}

#[tokio::test]
async fn a_per_task_shell_agent_answers_each_task_in_its_own_process() {
    let handler = format!(
        r#"{{ type = "exec", mode = "per_task", command = ["{}"] }}"#,
        example("upper.sh")
    );
    let c = cluster(&handler, 1).await;
    let t = run(&c, json!({"text": "hi"})).await;
    assert_eq!(t["output"], json!({"TEXT": "HI"}), "{t}");
    let (_, t) = c
        .master
        .post(
            "/api/v1/pools/p/tasks?wait=20",
            json!({"input": "please fail", "max_attempts": 1}),
        )
        .await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(
        t["error"].as_str().unwrap().contains("failing on purpose"),
        "{t}"
    );
}

#[tokio::test]
async fn an_http_handler_posts_each_task_to_the_service() {
    use axum::routing::post;
    let service = axum::Router::new().route(
        "/run",
        post(|axum::Json(body): axum::Json<Value>| async move {
            if body["input"] == "boom" {
                return (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"e": 1})),
                );
            }
            (
                axum::http::StatusCode::OK,
                axum::Json(json!({"seen": body})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/run", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await });
    let c = cluster(&format!(r#"{{ type = "http", url = "{url}" }}"#), 1).await;
    let t = run(&c, json!("hello")).await;
    assert_eq!(t["output"]["seen"]["input"], "hello", "{t}");
    assert_eq!(t["output"]["seen"]["task_id"], t["task_id"]);
    let (_, t) = c
        .master
        .post(
            "/api/v1/pools/p/tasks?wait=20",
            json!({"input": "boom", "max_attempts": 1}),
        )
        .await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("500"), "{t}");
}
