//! The CLI's spawns and terminates against a real master: a spawn whose connection drops
//! after the master acted is retried once with the same Idempotency-Key and never doubles;
//! `terminate --pool` stops many at once.

mod cli_support;
mod common;

use common::{Backend, Cluster, config};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

/// A proxy in front of the master that forwards the first request whole, waits for the
/// master's answer, and then drops the client's connection without passing it on; later
/// connections are passed through. The client sees a dropped connection for a request the
/// master carried out.
fn dropping_proxy(master_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            std::thread::spawn(move || relay(client, master_port, n == 0));
        }
    });
    port
}

fn relay(mut client: TcpStream, master_port: u16, drop_answer: bool) {
    let mut upstream = TcpStream::connect(("127.0.0.1", master_port)).unwrap();
    let request = read_request(&mut client);
    upstream.write_all(&request).unwrap();
    let mut answer = vec![0u8; 64 * 1024];
    let n = upstream.read(&mut answer).unwrap_or(0);
    if drop_answer {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let _ = client.write_all(&answer[..n]);
    let _ = client.shutdown(Shutdown::Write);
}

/// One HTTP request with a Content-Length body, as the CLI sends it.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
        if n == 0 {
            return buf;
        }
    }
}

#[tokio::test]
async fn a_spawn_whose_answer_is_lost_is_retried_once_and_never_doubles() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, ""), &[]).await;
    let port = dropping_proxy(c.master.port());
    let url = format!("http://127.0.0.1:{port}");
    let out = tokio::task::spawn_blocking(move || {
        cli_support::output(&["spawn", "--pool", "p", "--json", "--url", &url], &[])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying once with the same Idempotency-Key"),
        "{stderr}"
    );
    let answered: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, list) = c.master.get("/api/v1/agents").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "one agent, not two: {list:?}");
    assert_eq!(list[0]["agent_id"], answered["agent_id"]);
}

#[tokio::test]
async fn terminate_with_pool_stops_the_oldest_or_all() {
    let c = Cluster::start_on(Backend::Embedded, config(10, 2, ""), &[]).await;
    let url = c.master.url();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli_support::output(&args, &[])
        })
    };
    let argv = |s: &str| -> Vec<String> {
        s.split(' ')
            .map(str::to_owned)
            .chain(["--url".to_owned(), url.clone()])
            .collect()
    };
    let out = run(argv("spawn --pool p --count 6")).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(argv("terminate --pool p --count 2 --force --json"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gone.as_array().unwrap().len(), 2);
    let out = run(argv("terminate --pool p")).await.unwrap();
    assert!(
        !out.status.success(),
        "neither --all nor --count is refused"
    );
    let out = run(argv("terminate --pool p --all --force --json"))
        .await
        .unwrap();
    let gone: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gone.as_array().unwrap().len(), 4);
    let (_, list) = c.master.get("/api/v1/agents").await;
    assert!(list.as_array().unwrap().is_empty());
}
