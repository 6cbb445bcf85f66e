//! `agentpool bench flood`: `GET /api/v1/pools` latency on its own, then while other clients
//! flood the master with bad requests (malformed and deeply nested JSON, oversized query
//! strings, unknown routes, bad tokens, bytes that are not HTTP) and hold slowloris
//! connections open. A good request must not wait behind the garbage, and no garbage may
//! get a 5xx.

use super::report::Report;
use super::stats::{Summary, ms};
use super::{CommonArgs, progress, tracked::Api};
use agentpool_types::PoolStats;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The `/pools` target (p99), which must hold under the flood too.
const TARGET_P99_MS: f64 = 5.0;
/// How long a flooder waits for an answer before it drops the connection.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct FloodBenchArgs {
    /// Sequential `GET /api/v1/pools` requests timed, without and then with the flood.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Clients sending bad requests as fast as they are answered.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=256))]
    flooders: u32,
    /// Connections that send a header a byte at a time and never finish it.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(0..=512))]
    slow: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What the flood sent and got back.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    /// Closed or unanswered: fine for bytes that are not HTTP.
    dropped: AtomicU64,
}

pub async fn run(args: FloodBenchArgs, api: Api) -> Result<Report> {
    let mut report = Report::default();
    let addr = address(&args.common.connection.url())?;
    progress!("timing {} GET /api/v1/pools without a flood", args.requests);
    let quiet = time_pools(&api, args.requests).await?;
    report.info(
        "GET /pools alone",
        format!("p50 {:.2} ms, p99 {:.2} ms", ms(quiet.p50), ms(quiet.p99)),
    );

    let stop = CancellationToken::new();
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for i in 0..args.flooders {
        tasks.push(tokio::spawn(flood(
            addr.clone(),
            i,
            tally.clone(),
            stop.clone(),
        )));
    }
    for _ in 0..args.slow {
        tasks.push(tokio::spawn(slowloris(addr.clone(), stop.clone())));
    }
    progress!(
        "timing again while {} flood and {} hold slow connections",
        args.flooders,
        args.slow
    );
    let started = Instant::now();
    let loud = time_pools(&api, args.requests).await;
    let flood_secs = started.elapsed().as_secs_f64();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let loud = loud?;
    report.target(
        "GET /pools under the flood: p99",
        ms(loud.p99),
        TARGET_P99_MS,
        "ms",
    );
    report.info(
        "GET /pools under the flood: p50",
        format!("{:.2} ms", ms(loud.p50)),
    );
    let sent = tally.sent.load(Ordering::Relaxed);
    report.info(
        "bad requests sent",
        format!("{sent} ({:.0}/s)", sent as f64 / flood_secs.max(1e-9)),
    );
    report.info(
        "bad requests answered 4xx / 5xx / dropped",
        format!(
            "{} / {} / {}",
            tally.client_errors.load(Ordering::Relaxed),
            tally.server_errors.load(Ordering::Relaxed),
            tally.dropped.load(Ordering::Relaxed)
        ),
    );
    Ok(report)
}

/// `host:port` of the master, for raw connections.
fn address(url: &str) -> Result<String> {
    let url = reqwest::Url::parse(url).with_context(|| format!("master URL {url:?}"))?;
    let host = url.host_str().context("the master URL names no host")?;
    let port = url
        .port_or_known_default()
        .context("the master URL names no port")?;
    Ok(format!("{host}:{port}"))
}

async fn time_pools(api: &Api, n: u64) -> Result<Summary> {
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        api.get::<Vec<PoolStats>>(&["pools"], &[]).await?;
        samples.push(start.elapsed());
    }
    Summary::of(samples).context("no samples")
}

/// The bad requests a flooder cycles through, each whole on one connection.
fn garbage(n: u64) -> Vec<u8> {
    let json = |body: String| {
        format!(
            "POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let get = |target: String, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").into_bytes()
    };
    match n % 7 {
        0 => json("{\"pool\": ".to_owned()),
        1 => json(format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
        2 => json("{\"pool\": \"p\", \"count\": \"many\"}".to_owned()),
        3 => get(format!("/api/v1/agents?pool={}", "x".repeat(16 * 1024)), ""),
        4 => get("/api/v1/no/such/route".to_owned(), ""),
        5 => get(
            "/api/v1/pools".to_owned(),
            "Authorization: Bearer not-a-token\r\n",
        ),
        _ => (0..512u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    }
}

async fn flood(addr: String, seed: u32, tally: Arc<Tally>, stop: CancellationToken) {
    let mut n = u64::from(seed);
    while !stop.is_cancelled() {
        let request = garbage(n);
        n += 1;
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::select! {
            a = tokio::time::timeout(ANSWER_WAIT, send(&addr, &request)) => a.ok().flatten(),
            () = stop.cancelled() => return,
        };
        let counter = match answer.as_deref().and_then(status_class) {
            Some(b'4') => &tally.client_errors,
            Some(b'5') => &tally.server_errors,
            _ => &tally.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends one request and reads the answer's first bytes; `None` if refused or closed.
async fn send(addr: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await.ok()?;
    conn.write_all(request).await.ok()?;
    let mut head = vec![0u8; 64];
    let n = conn.read(&mut head).await.ok()?;
    head.truncate(n);
    (n > 0).then_some(head)
}

/// The first digit of an HTTP status line (`HTTP/1.1 400 …`).
fn status_class(head: &[u8]) -> Option<u8> {
    head.strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.first().copied())
}

/// A header sent a byte a second, never finished, until the bench ends or the master hangs up.
async fn slowloris(addr: String, stop: CancellationToken) {
    let Ok(mut conn) = TcpStream::connect(&addr).await else {
        return;
    };
    for byte in b"GET /api/v1/pools HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stop.cancelled() => return,
        }
        if conn.write_all(&[*byte]).await.is_err() {
            return;
        }
    }
}
