//! The OpenAPI document served at `/api/v1/openapi.json`: it parses, it documents every route
//! the router serves (read from the router's source, so a route added without docs fails
//! here), it carries the limits the validation enforces, and its spawn example is accepted.

mod common;

use agentpool_master::api::{MAX_AGENT_NAME_LEN, MAX_BULK_SPAWN};
use common::{Backend, Cluster};
use serde_json::Value;
use std::collections::BTreeSet;

/// The router, as written: every `.route(path, method(..).method(..))` of `app`.
const ROUTER_SOURCE: &str = include_str!("../../agentpool-master/src/api/mod.rs");

/// `(METHOD, path)` of every route in the router's source.
fn router_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for segment in ROUTER_SOURCE.split(".route(").skip(1) {
        let path = segment.split('"').nth(1).expect("a route path literal");
        let end = segment.find(".fallback(").unwrap_or(segment.len());
        let handlers = &segment[..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                let before = handlers[..i].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if called {
                routes.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

#[test]
fn the_router_source_is_read() {
    let routes = router_routes();
    assert!(
        routes.contains(&("POST".into(), "/api/v1/agents".into())),
        "{routes:?}"
    );
    assert!(
        routes.contains(&("GET".into(), "/api/v1/agents".into())),
        "{routes:?}"
    );
    assert!(routes.contains(&("DELETE".into(), "/api/v1/processes/{id}".into())));
    assert!(routes.len() >= 20, "{routes:?}");
}

/// The schema of a component, following no references.
fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

async fn document_is_complete(backend: Backend) {
    let config = common::config(10, 2, "").replace("name = \"p\"", "name = \"developer\"");
    let c = Cluster::start_on(backend, config, &[]).await;
    let (status, doc) = c.master.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let router = router_routes();
    let documented = documented_routes(&doc);
    let missing: Vec<_> = router.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without documentation: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&router).collect();
    assert!(
        stale.is_empty(),
        "documented routes the router lacks: {stale:?}"
    );

    // The limits are the validation's constants.
    let bulk = component(&doc, "BulkBody");
    assert_eq!(
        bulk["properties"]["count"]["maximum"], MAX_BULK_SPAWN,
        "{bulk}"
    );
    assert_eq!(bulk["properties"]["count"]["minimum"], 1, "{bulk}");
    let spawn = component(&doc, "SpawnBody");
    assert_eq!(
        spawn["properties"]["name"]["maxLength"], MAX_AGENT_NAME_LEN,
        "{spawn}"
    );
    assert_eq!(spawn["additionalProperties"], false, "{spawn}");

    // Errors, the bearer scheme and the 503 are documented.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let op = &doc["paths"]["/api/v1/pools/{pool}/agents"]["post"];
    for code in ["201", "400", "401", "403", "404", "413", "422", "503"] {
        assert!(
            op["responses"][code].is_object(),
            "{code} of bulk spawn: {op}"
        );
    }
    assert!(doc["paths"]["/health"]["get"]["responses"]["401"].is_null());

    // The example validates: the master accepts it as it stands.
    let example = spawn["example"].clone();
    assert!(example.is_object(), "{spawn}");
    let (status, agent) = c.master.post("/api/v1/agents", example.clone()).await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["name"], example["name"], "{agent}");

    // Open without a token (it holds no data).
    let (status, _) = c.master.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
}

both_backends!(document_is_complete: document_redis, document_embedded);
