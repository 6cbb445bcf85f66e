//! `GET /`: the dashboard. Three static files (`web/` of this crate) compiled into the binary,
//! so it needs no build step, no CDN and nothing on disk. The page holds no data, so it is
//! served without a token; its script reads everything from the API with the token the
//! user types in, which the API checks as for any other client.

use super::AppState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// Where the script and the stylesheet are served; the page names them.
pub const SCRIPT_PATH: &str = "/dashboard/app.js";
pub const STYLE_PATH: &str = "/dashboard/style.css";

/// The page's only placeholder: the heartbeat timeout, past which the page shows a worker's
/// heartbeat age in red. A `<meta>` value, not inline script, so the policy below holds.
const TIMEOUT_PLACEHOLDER: &str = "{{HEARTBEAT_TIMEOUT_MS}}";

/// Scripts and styles from this origin only (no inline script, no `eval`), requests to this
/// origin only, and no framing, forms posting elsewhere or `<base>` tricks.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's paths: open like `/health`, since they carry no data.
pub fn is_open(path: &str) -> bool {
    path == "/" || path == SCRIPT_PATH || path == STYLE_PATH
}

#[utoipa::path(get, path = "/", tag = "dashboard", security(()),
    responses((status = 200, description = "the dashboard page", content_type = "text/html", body = String)))]
pub async fn index(State(master): State<AppState>) -> Response {
    let timeout_ms = master.heartbeat_timeout().as_millis().to_string();
    let page = INDEX_HTML.replace(TIMEOUT_PLACEHOLDER, &timeout_ms);
    asset("text/html; charset=utf-8", page)
}

#[utoipa::path(get, path = "/dashboard/app.js", tag = "dashboard", security(()),
    responses((status = 200, description = "the dashboard's script", content_type = "text/javascript", body = String)))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(get, path = "/dashboard/style.css", tag = "dashboard", security(()),
    responses((status = 200, description = "the dashboard's stylesheet", content_type = "text/css", body = String)))]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary may serve a new script: always revalidate rather than run a stale one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_and_has_no_inline_script() {
        assert!(INDEX_HTML.contains(SCRIPT_PATH) && INDEX_HTML.contains(STYLE_PATH));
        assert!(INDEX_HTML.contains(TIMEOUT_PLACEHOLDER));
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline script breaks the CSP"
        );
        assert!(
            !INDEX_HTML.contains("style=\""),
            "inline style breaks the CSP"
        );
        assert!(
            !INDEX_HTML.contains("onclick"),
            "inline handlers break the CSP"
        );
    }

    #[test]
    fn only_the_dashboard_paths_are_open() {
        assert!(is_open("/") && is_open(SCRIPT_PATH) && is_open(STYLE_PATH));
        assert!(!is_open("/api/v1/pools") && !is_open("/dashboard/other.js"));
    }
}
