//! Bad input gets a 4xx naming the problem, and the registry is left exactly as it was.
//! A Redis outage gets a 503 that says so.

mod common;

use common::{Cluster, config, spawn};
use serde_json::{Value, json};

/// One bad request: how it is sent and what must come back.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    content_type: &'static str,
    status: u16,
    code: &'static str,
    /// A word the message must contain, naming the problem.
    names: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &str,
    body: Value,
    status: u16,
    code: &'static str,
    names: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        body: body.to_string().into_bytes(),
        content_type: "application/json",
        status,
        code,
        names,
    }
}

fn cases(agent: &str, process: &str) -> Vec<Case> {
    let big_name = "n".repeat(200);
    let big_config = json!({ "blob": "x".repeat(20_000) });
    let mut list = vec![
        case(
            "unknown pool",
            "POST",
            "/api/v1/agents",
            json!({"pool": "nope"}),
            404,
            "unknown_pool",
            "nope",
        ),
        case(
            "unknown pool, bulk",
            "POST",
            "/api/v1/pools/nope/agents",
            json!({"count": 1}),
            404,
            "unknown_pool",
            "nope",
        ),
        case(
            "unknown agent",
            "GET",
            "/api/v1/agents/01a2-no-such",
            json!(null),
            404,
            "unknown_agent",
            "01a2-no-such",
        ),
        case(
            "unknown agent, delete",
            "DELETE",
            "/api/v1/agents/no-such-agent",
            json!(null),
            404,
            "unknown_agent",
            "no-such-agent",
        ),
        case(
            "unknown process",
            "DELETE",
            "/api/v1/processes/no-such-process",
            json!(null),
            404,
            "unknown_process",
            "no-such-process",
        ),
        case(
            "unknown pool, show",
            "GET",
            "/api/v1/pools/nope",
            json!(null),
            404,
            "unknown_pool",
            "nope",
        ),
        case(
            "unknown pool filter",
            "GET",
            "/api/v1/agents?pool=nope",
            json!(null),
            404,
            "unknown_pool",
            "nope",
        ),
        case(
            "missing pool",
            "POST",
            "/api/v1/agents",
            json!({"name": "x"}),
            400,
            "invalid_body",
            "pool",
        ),
        case(
            "pool of wrong type",
            "POST",
            "/api/v1/agents",
            json!({"pool": 7}),
            400,
            "invalid_body",
            "pool",
        ),
        case(
            "unknown field",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "colour": "red"}),
            400,
            "invalid_body",
            "colour",
        ),
        case(
            "count of wrong type",
            "POST",
            "/api/v1/pools/p/agents",
            json!({"count": "ten"}),
            400,
            "invalid_body",
            "count",
        ),
        case(
            "negative count",
            "POST",
            "/api/v1/pools/p/agents",
            json!({"count": -1}),
            400,
            "invalid_body",
            "count",
        ),
        case(
            "count zero",
            "POST",
            "/api/v1/pools/p/agents",
            json!({"count": 0}),
            422,
            "invalid_value",
            "count",
        ),
        case(
            "count above the limit",
            "POST",
            "/api/v1/pools/p/agents",
            json!({"count": 1001}),
            422,
            "invalid_value",
            "count",
        ),
        case(
            "count above what the pool holds",
            "POST",
            "/api/v1/pools/p/agents",
            json!({"count": 500}),
            422,
            "invalid_value",
            "count",
        ),
        case(
            "config not an object",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "config": [1]}),
            422,
            "invalid_value",
            "config",
        ),
        case(
            "config too large",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "config": big_config}),
            422,
            "invalid_value",
            "config",
        ),
        case(
            "name too long",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "name": big_name}),
            422,
            "invalid_value",
            "name",
        ),
        case(
            "name with a right-to-left override",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "name": "invoice\u{202E}fdp.exe"}),
            422,
            "invalid_value",
            "name",
        ),
        case(
            "name with a zero-width space",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "name": "ad\u{200B}min"}),
            422,
            "invalid_value",
            "name",
        ),
        case(
            "bad role",
            "POST",
            "/api/v1/agents",
            json!({"pool": "p", "role": "Bad Role!"}),
            422,
            "invalid_value",
            "role",
        ),
        case(
            "bad wait flag",
            "POST",
            "/api/v1/agents?wait=maybe",
            json!({"pool": "p"}),
            400,
            "bad_request",
            "wait",
        ),
        case(
            "bad status filter",
            "GET",
            "/api/v1/agents?status=zombie",
            json!(null),
            400,
            "bad_request",
            "status",
        ),
        case(
            "bad graceful flag",
            "DELETE",
            &format!("/api/v1/agents/{agent}?graceful=perhaps"),
            json!(null),
            400,
            "bad_request",
            "graceful",
        ),
        case(
            "unknown route",
            "GET",
            "/api/v1/nothing",
            json!(null),
            404,
            "not_found",
            "route",
        ),
        case(
            "drain with bad id chars",
            "DELETE",
            &format!("/api/v1/processes/{process}%20x"),
            json!(null),
            404,
            "unknown_process",
            "process",
        ),
    ];
    let raw = |what, body: &[u8], content_type, status, code, names| Case {
        what,
        method: "POST",
        path: "/api/v1/agents".into(),
        body: body.to_vec(),
        content_type,
        status,
        code,
        names,
    };
    list.push(raw(
        "malformed JSON",
        b"{\"pool\": ",
        "application/json",
        400,
        "malformed_json",
        "JSON",
    ));
    list.push(raw(
        "not JSON at all",
        b"pool=p",
        "application/json",
        400,
        "malformed_json",
        "JSON",
    ));
    list.push(raw(
        "wrong content type",
        b"{\"pool\":\"p\"}",
        "text/plain",
        415,
        "unsupported_media_type",
        "Content-Type",
    ));
    let oversized = format!(
        "{{\"pool\":\"p\",\"name\":\"{}\"}}",
        "x".repeat(agentpool_master::api::MAX_BODY_BYTES)
    );
    list.push(raw(
        "oversized body",
        oversized.as_bytes(),
        "application/json",
        413,
        "body_too_large",
        "bytes",
    ));
    list
}

both_backends!(every_bad_input_gets_a_named_4xx_and_changes_nothing: every_bad_input_gets_a_named_4xx_and_changes_nothing_redis, every_bad_input_gets_a_named_4xx_and_changes_nothing_embedded);

async fn every_bad_input_gets_a_named_4xx_and_changes_nothing(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(10, 2, ""), &[]).await;
    // Some state to protect: one agent in one worker.
    let (status, agent) = spawn(&c.master, "p").await;
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let process_id = agent["process_id"].as_str().unwrap().to_owned();

    for case in cases(&agent_id, &process_id) {
        let before = c.snapshot().await;
        let url = format!("{}{}", c.master.url(), case.path);
        let req = match case.method {
            "GET" => c.master.http().get(&url),
            "DELETE" => c.master.http().delete(&url),
            _ => c
                .master
                .http()
                .post(&url)
                .header("content-type", case.content_type)
                .body(case.body.clone()),
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.what);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.names),
            "{}: message {message:?} should name {:?}",
            case.what,
            case.names
        );
        assert_eq!(
            c.snapshot().await,
            before,
            "{} changed the registry",
            case.what
        );
    }
}

both_backends!(a_full_pool_answers_409_and_places_nothing: a_full_pool_answers_409_and_places_nothing_redis, a_full_pool_answers_409_and_places_nothing_embedded);

async fn a_full_pool_answers_409_and_places_nothing(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(2, 1, ""), &[]).await;
    assert_eq!(spawn(&c.master, "p").await.0, 201);

    // All or nothing: one of these two fits, the other does not; neither stays.
    let before = c.snapshot().await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 2}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "pool_full");
    assert_eq!(
        c.snapshot().await,
        before,
        "the agent that fitted was rolled back"
    );

    assert_eq!(spawn(&c.master, "p").await.0, 201);
    let before = c.snapshot().await;
    let (status, body) = spawn(&c.master, "p").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "pool_full");
    assert!(body["error"]["message"].as_str().unwrap().contains("full"));
    assert_eq!(c.snapshot().await, before);
    assert_eq!(c.pool_row("p").await["state"], "full");
}

/// Redis only: a Redis outage.
#[tokio::test]
async fn redis_down_answers_503_naming_redis() {
    let mut c = Cluster::start(config(10, 2, "")).await;
    c.redis_mut().stop();
    for (what, answer) in [
        ("spawn", spawn(&c.master, "p").await),
        ("pools", c.master.get("/api/v1/pools").await),
        ("agents", c.master.get("/api/v1/agents").await),
        ("health", c.master.get("/health").await),
    ] {
        let (status, body) = answer;
        assert_eq!(status, 503, "{what}: {body}");
        let text = body.to_string();
        assert!(text.contains("redis unavailable"), "{what}: {text}");
    }
    // Redis returns: the master serves again without a restart.
    c.redis_mut().restart().await;
    agentpool_testkit::wait_until("the master to reach redis again", common::WAIT, || async {
        c.master.get("/health").await.0 == 200
    })
    .await;
}
