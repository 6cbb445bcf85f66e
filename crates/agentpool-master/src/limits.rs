//! Limits against hostile clients, in front of every route: a query string too long gets a
//! 414, a read that takes too long a 503, and a JSON body nested too deep a 400 (checked by
//! the `ApiJson` extractor, which reads the limit this layer puts on the request). Each
//! answer names the limit, in the API's error shape.

use crate::config::HttpLimits;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The JSON nesting limit, carried to the body extractor.
#[derive(Clone, Copy, Debug)]
pub struct MaxJsonDepth(pub usize);

pub async fn check(State(limits): State<HttpLimits>, mut req: Request, next: Next) -> Response {
    let query = req.uri().query().map_or(0, str::len);
    if query > limits.max_query_bytes {
        let message = format!(
            "the query string is {query} bytes, longer than the limit of {} bytes",
            limits.max_query_bytes
        );
        return error(StatusCode::URI_TOO_LONG, "query_too_long", message);
    }
    req.extensions_mut()
        .insert(MaxJsonDepth(limits.max_json_depth));
    if !is_bounded_read(&req) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "no answer within the request timeout of {:?}",
                limits.request_timeout
            ),
        ),
    }
}

/// A read that is not an event stream: only those are cut off by the request timeout.
/// Dropping a write halfway could leave half-written state, and writes have bounded waits of
/// their own; a stream is meant to stay open.
fn is_bounded_read(req: &Request) -> bool {
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let stream = req.uri().path().ends_with("/events")
        || req
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    read && !stream
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// How deep arrays and objects nest in `body`, counting brackets outside strings. A linear
/// scan before parsing, so a deep body is refused without recursing into it.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a": [1, {"b": 2}]}"#), 3);
        assert_eq!(json_depth(br#"{"a": "[[[[\"{{"}"#), 1);
        assert_eq!(json_depth(b"[[[]]]]]]"), 3);
    }
}
