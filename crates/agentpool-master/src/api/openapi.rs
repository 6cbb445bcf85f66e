//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, derived from the route handlers'
//! `#[utoipa::path]` annotations and the body types themselves. Open to every caller: it
//! describes the API and holds no data.
//!
//! The error answers every route shares (401, 403, 503, the body and query errors) are added
//! here once, by [`CommonErrors`], from what each operation takes, instead of being repeated on
//! every handler.

use super::{agents, dashboard, events, health, metrics, pools, processes, task_events, tasks};
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error shape of every 4xx and 5xx.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used; errors are built by `ApiError`.
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unknown_pool`, `invalid_value`, `redis_unavailable`, ...
    code: String,
    /// For people: names the field, the limit or the service.
    message: String,
}

/// One Server-Sent Event of a stream, as a client reads it.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used; the stream is built by axum's `Sse`.
pub struct StreamEvent {
    /// The event's name.
    event: String,
    /// Its JSON payload, as text.
    data: String,
    /// Present on streams a client can resume with `Last-Event-ID`.
    id: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentpool",
        description = "Multi-process, auto-scaling agent pool manager."
    ),
    paths(
        health::health,
        document,
        agents::spawn,
        agents::list,
        agents::show,
        agents::terminate,
        agents::events,
        agents::spawn_many,
        agents::terminate_many,
        pools::list,
        pools::list_alias,
        pools::show,
        tasks::submit,
        tasks::batch,
        tasks::broadcast,
        tasks::stats,
        tasks::ask,
        tasks::list,
        tasks::show,
        tasks::cancel,
        tasks::retry,
        task_events::events,
        processes::list,
        processes::drain,
        events::events,
        metrics::metrics,
        dashboard::index,
        dashboard::script,
        dashboard::style,
    ),
    components(schemas(ErrorBody, ErrorDetail, StreamEvent)),
    modifiers(&CommonErrors),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The document, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

/// The API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

/// Adds the bearer scheme and the error answers each operation can give.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_errors(path, op);
            }
        }
    }
}

fn add_errors(path: &str, op: &mut Operation) {
    if path == "/api/v1/openapi.json" {
        return;
    }
    let has_body = op.request_body.is_some();
    let has_path_param = path.contains('{');
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| {
            matches!(p, utoipa::openapi::RefOr::T(p)
                if p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
        })
    });
    let mut errors = vec![(
        "503",
        "a service it needs is unavailable (`redis_unavailable`, `database_unavailable`), \
         the master is starting or stopping, or a read took longer than the request timeout \
         (`request_timeout`)",
    )];
    if path != "/health" {
        errors.push((
            "401",
            "no bearer token, or an unknown one (`WWW-Authenticate: Bearer`)",
        ));
        errors.push(("403", "the token lacks the scope this needs (`forbidden`)"));
        errors.push(("414", "the query string is too long (`uri_too_long`)"));
    }
    if has_body || has_query {
        errors.push((
            "400",
            "malformed JSON, a wrong type, JSON nested too deep (`json_too_deep`), or a bad query value",
        ));
        errors.push((
            "422",
            "a value out of range; the message names the field and its limits",
        ));
    }
    if has_body {
        errors.push((
            "413",
            "the body is larger than the limit (`body_too_large`)",
        ));
        errors.push(("415", "the body is not `Content-Type: application/json`"));
    }
    if has_path_param {
        errors.push(("404", "no such pool, agent, task or process"));
    }
    for (code, description) in errors {
        if op.responses.responses.contains_key(code) {
            continue;
        }
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert(code.to_owned(), response.into());
    }
}
