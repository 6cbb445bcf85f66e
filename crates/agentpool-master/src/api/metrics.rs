//! `GET /metrics`: Prometheus text format. Counters and histograms as recorded; gauges read
//! from the registry for this scrape (see `prometheus`). Needs the `read` scope, like every GET.

use super::AppState;
use super::error::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(master): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = master.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
