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
    let long = "x".repeat(60_000);
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
