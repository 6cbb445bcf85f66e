//! Serving HTTP: every connection under read timeouts, and a gate that answers 503 at once
//! while the master cannot yet reach its registry or its store.
//!
//! A client that opens a connection and sends nothing, sends its headers a byte at a time, or
//! stalls in the middle of a body is cut off; none of them holds a connection for long.

use crate::config::HttpLimits;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the master is waiting for before it can serve.
#[derive(Default)]
pub struct Gate {
    ready: OnceLock<Router>,
    waiting_for: Mutex<&'static str>,
}

impl Gate {
    /// Says what startup waits for now: `redis` or `database`.
    pub fn waiting_for(&self, part: &'static str) {
        *self.waiting_for.lock().unwrap_or_else(|p| p.into_inner()) = part;
    }

    /// From now on every request goes to `app`.
    pub fn open(&self, app: Router) {
        let _ = self.ready.set(app);
    }

    fn starting(&self, path: &str) -> Response {
        let part = *self.waiting_for.lock().unwrap_or_else(|p| p.into_inner());
        let message = format!("the master is starting: waiting for {part}");
        let body = if path == "/health" {
            json!({"status": "starting", "waiting_for": part,
                   "master": {"status": "starting", "pid": std::process::id()}})
        } else {
            let code = match part {
                "redis" => "redis_unavailable",
                "database" => "database_unavailable",
                _ => "starting",
            };
            json!({"error": {"code": code, "message": message}})
        };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// A router that answers from the gate until it opens, then from the app behind it. A body
/// must arrive within `body_timeout`.
pub fn gated(gate: Arc<Gate>, body_timeout: Duration, limits: HttpLimits) -> Router {
    let service = tower::service_fn(move |req: Request<Body>| {
        let gate = gate.clone();
        async move {
            let response = match gate.ready.get() {
                Some(app) => app.clone().oneshot(req).await.into_response(),
                None => gate.starting(req.uri().path()),
            };
            Ok::<_, Infallible>(response)
        }
    });
    Router::new()
        .fallback_service(service)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::limits::check,
        ))
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish (within
/// a bound). Headers must arrive within `header_timeout`, also for the next request of an
/// idle keep-alive connection. At most `max_connections` are served at once; further ones
/// wait in the listen backlog, so a flood of connections cannot exhaust descriptors.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}: closing them");
    }
}
