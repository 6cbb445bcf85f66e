//! `GET /api/v1/events[?pool=&kind=&follow=]`: Server-Sent Events of everything that happens
//! in the pools (see `feed`). Each event has an `id:` line; a client reconnecting with
//! `Last-Event-ID` first gets the events after that id that are still buffered. When some are
//! no longer buffered (or the id is another master's), an `event: gap` without an id comes
//! first, naming the oldest id still buffered. A reader too slow for the live stream gets a
//! `gap` naming how many it skipped. `follow=false` sends what is buffered and closes.

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::feed::{self, FeedEvent, Subscription};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A comment this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Longest `?kind=` list accepted, in characters.
const MAX_KIND_LEN: usize = 256;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Only events of this pool.
    pool: Option<String>,
    /// One kind (`agent_started`) or group (`agent`, `task`, `process`), or several separated
    /// by commas.
    #[param(max_length = 256)]
    kind: Option<String>,
    /// `false`: send the buffered events and close; otherwise stay open for new ones.
    follow: Option<bool>,
}

/// Which events a stream passes.
struct Filter {
    pool: Option<String>,
    kinds: Vec<String>,
}

impl Filter {
    fn passes(&self, e: &FeedEvent) -> bool {
        self.pool
            .as_ref()
            .is_none_or(|p| e.pool.as_ref() == Some(p))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| feed::kind_matches(k, e.kind)))
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(Params,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses((status = 200, description = "an event stream; with `follow=false` it closes after the buffered events",
        content_type = "text/event-stream", body = super::openapi::StreamEvent),
        (status = 404, description = "unknown pool", body = super::openapi::ErrorBody)))]
pub async fn events(
    State(master): State<AppState>,
    ApiQuery(params): ApiQuery<Params>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let filter = filter(&master, &params)?;
    let after = last_event_id(&headers)?;
    let Subscription {
        replay,
        missed,
        oldest,
        live,
    } = master.subscribe_events(after);
    let gap = missed.then(|| gap_event(json!({ "oldest_id": oldest })));
    let filter = Arc::new(filter);
    let buffered = {
        let filter = filter.clone();
        replay
            .into_iter()
            .filter(move |e| filter.passes(e))
            .map(|e| sse_event(&e))
    };
    let head = futures::stream::iter(gap.into_iter().chain(buffered).map(Ok));
    let follow = params.follow.unwrap_or(true).then(|| {
        futures::stream::unfold((live, filter), |(mut live, filter)| async move {
            loop {
                match live.recv().await {
                    Ok(e) if filter.passes(&e) => return Some((Ok(sse_event(&e)), (live, filter))),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        let gap = gap_event(json!({ "skipped": n }));
                        return Some((Ok(gap), (live, filter)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    });
    let stream = head.chain(futures::stream::iter(follow).flatten());
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    Ok(Sse::new(stream).keep_alive(keep_alive))
}

fn filter(master: &AppState, params: &Params) -> Result<Filter, ApiError> {
    let pool = match &params.pool {
        Some(p) => Some(master.pool(p)?.name.clone()),
        None => None,
    };
    let raw = params.kind.as_deref().unwrap_or("");
    if raw.len() > MAX_KIND_LEN {
        return Err(ApiError::invalid(format!(
            "kind: longer than {MAX_KIND_LEN} characters"
        )));
    }
    let kinds: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = kinds.iter().find(|k| !feed::is_known_kind(k)) {
        return Err(ApiError::invalid(format!(
            "kind: unknown kind {bad:?}; expected one of {}, or a group (process, agent, task)",
            feed::KINDS.join(", ")
        )));
    }
    Ok(Filter { pool, kinds })
}

/// The `Last-Event-ID` header: the id of the last event the client saw.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::bad_request("Last-Event-ID: must be the id of an event of this stream")
    })
}

fn sse_event(e: &FeedEvent) -> sse::Event {
    let event = sse::Event::default().id(e.id.to_string()).event(e.kind);
    event
        .json_data(e)
        .unwrap_or_else(|_| sse::Event::default().id(e.id.to_string()).event(e.kind))
}

fn gap_event(data: serde_json::Value) -> sse::Event {
    sse::Event::default()
        .event("gap")
        .json_data(data)
        .unwrap_or_else(|_| sse::Event::default().event("gap"))
}
