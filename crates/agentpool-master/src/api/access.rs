//! The access check in front of every route: the bearer token's scope against what the route
//! needs. `/health` is open (a load balancer has no token) and shows details only to a caller
//! with one; so is the dashboard page with its script and stylesheet (they hold no data); every GET needs `read`, a drain `admin`, every other change `write`.
//!
//! 401 (with `WWW-Authenticate: Bearer`) for a missing or unknown token, 403 naming the scope
//! that is missing. The caller goes on to the route as an extension.

use super::AppState;
use super::error::ApiError;
use crate::auth::{Caller, Scope};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the challenge of a 401 says.
const CHALLENGE: &str = "Bearer realm=\"agentpool\"";

pub async fn check(State(master): State<AppState>, mut req: Request, next: Next) -> Response {
    let needed = needed(req.method(), req.uri().path());
    let bearer = bearer(&req);
    let caller = match master.caller(bearer.as_deref()) {
        Ok(c) => c,
        Err(_) => return unauthorized("the bearer token is not known"),
    };
    match (needed, caller) {
        (None, caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
        (Some(_), None) => unauthorized("this needs a bearer token: Authorization: Bearer <token>"),
        (Some(scope), Some(c)) if c.scope < scope => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the `{scope}` scope; the token has `{}`",
                c.scope
            ),
        )
        .into_response(),
        (Some(_), Some(c)) => {
            req.extensions_mut().insert::<Caller>(c);
            next.run(req).await
        }
    }
}

/// The scope a request needs; `None` for the open `/health` and dashboard files.
fn needed(method: &Method, path: &str) -> Option<Scope> {
    if path == "/health" || super::dashboard::is_open(path) {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return Some(Scope::Read);
    }
    if method == Method::DELETE && path.starts_with("/api/v1/processes/") {
        return Some(Scope::Admin);
    }
    Some(Scope::Write)
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (kind, token) = value.split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_read_drains_admin_and_the_rest_write() {
        assert_eq!(needed(&Method::GET, "/health"), None);
        assert_eq!(needed(&Method::GET, "/"), None);
        assert_eq!(needed(&Method::GET, "/api/v1/pools"), Some(Scope::Read));
        assert_eq!(
            needed(&Method::GET, "/api/v1/tasks/x/events"),
            Some(Scope::Read)
        );
        assert_eq!(needed(&Method::POST, "/api/v1/agents"), Some(Scope::Write));
        assert_eq!(
            needed(&Method::DELETE, "/api/v1/agents/a"),
            Some(Scope::Write)
        );
        assert_eq!(
            needed(&Method::DELETE, "/api/v1/processes/p"),
            Some(Scope::Admin)
        );
    }
}
