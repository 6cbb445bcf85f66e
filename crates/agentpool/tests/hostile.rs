//! Clients that do not play along: a connection that sends nothing, headers sent a byte at a
//! time, a body that stalls, a 60 KB name in a query string. None of them holds a connection
//! for long, and no error quotes the whole input back.

mod common;

use common::{Backend, Cluster, WAIT, config};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TIMEOUTS: &str = "http_header_timeout_ms = 300\nhttp_body_timeout_ms = 300";

/// Whether the server closes `stream` before `WAIT` is up (reads until EOF, a reset, or time).
fn closed_by_server(mut stream: TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before the close is fine
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return true,
        }
    }
    false
}

fn connect(c: &Cluster) -> TcpStream {
    TcpStream::connect(("127.0.0.1", c.master.port())).unwrap()
}

#[tokio::test]
async fn idle_slow_header_and_slow_body_connections_are_cut_off() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, TIMEOUTS), &[]).await;
    let idle = connect(&c);
    let mut slow_headers = connect(&c);
    slow_headers
        .write_all(b"GET /api/v1/pools HTTP/1.1\r\nHo")
        .unwrap();
    let mut slow_body = connect(&c);
    slow_body
        .write_all(
            b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"pool\":",
        )
        .unwrap();
    let (idle, headers, body) = tokio::task::spawn_blocking(move || {
        (
            closed_by_server(idle),
            closed_by_server(slow_headers),
            closed_by_server(slow_body),
        )
    })
    .await
    .unwrap();
    assert!(idle, "an idle connection stayed open");
    assert!(headers, "a slow-header connection stayed open");
    assert!(body, "a slow-body connection stayed open");
    // Good clients were never in their way.
    let (status, _) = c.master.get("/api/v1/pools").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn errors_quote_at_most_64_characters_of_the_input() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, ""), &[]).await;
    // Under the query string limit, so the route itself answers.
    let long = "x".repeat(3_000);
    let (status, body) = c.master.get(&format!("/api/v1/agents?pool={long}")).await;
    assert_eq!(status, 404, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 200, "echoed {} bytes", message.len());
    let (status, body) = c.master.get(&format!("/api/v1/agents/{long}")).await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].as_str().unwrap().len() < 200);
    let (status, body) = c.master.get(&format!("/api/v1/agents?status={long}")).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().len() < 200);
}

const LIMITS: &str = "http_max_query_bytes = 1000\nhttp_max_json_depth = 8";

#[tokio::test]
async fn a_long_query_string_and_deep_json_are_refused_naming_the_limit() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, LIMITS), &[]).await;
    let long = "x".repeat(1_001);
    let (status, body) = c.master.get(&format!("/api/v1/agents?pool={long}")).await;
    assert_eq!(status, 414, "{body}");
    assert_eq!(body["error"]["code"], "query_too_long", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1000"),
        "{body}"
    );

    let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
    let task = format!(r#"{{"input": {deep}}}"#);
    let (status, body) = c
        .master
        .post_raw(
            "/api/v1/pools/p/tasks",
            "application/json",
            task.into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "json_too_deep", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains('8'),
        "{body}"
    );

    // Good requests on either side of the limits still succeed.
    let (status, body) = c
        .master
        .get(&format!("/api/v1/agents?pool={}", &long[..900]))
        .await;
    assert_eq!(
        status, 404,
        "an unknown pool, answered by the route: {body}"
    );
    let shallow = serde_json::json!({"pool": "p", "config": {"a": {"b": {"c": [1, [2]]}}}});
    let (status, body) = c.master.post("/api/v1/agents", shallow).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = c.master.get("/api/v1/pools").await;
    assert_eq!(status, 200);
}

/// Connections that send a request a byte at a time, or nothing, hold no slot another client
/// needs: with a cap of 4 connections, 8 slow ones do not keep a good request from its answer.
#[tokio::test]
async fn slowloris_connections_do_not_block_good_requests() {
    let extra = format!("{TIMEOUTS}\nhttp_max_connections = 4");
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, &extra), &[]).await;
    let mut slow: Vec<TcpStream> = (0..8).map(|_| connect(&c)).collect();
    for s in &mut slow {
        // A byte now and then: never a whole header block.
        let _ = s.write_all(b"G");
    }
    let (status, body) = c.master.get("/api/v1/pools").await;
    assert_eq!(status, 200, "{body}");
    for s in &mut slow {
        let _ = s.write_all(b"E");
    }
    let (status, _) = c.master.get("/health").await;
    assert_eq!(status, 200);
}

/// Past the cap, a connection is not served until another closes.
#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let extra = "http_header_timeout_ms = 60000\nhttp_max_connections = 2";
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, extra), &[]).await;
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&c)).collect();
    let mut third = connect(&c);
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "answered past the cap: {early:?}"
    );
    drop(held);
    third.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
