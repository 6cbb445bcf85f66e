//! The API against its own OpenAPI document: schemathesis generates requests for every
//! operation (bodies, query strings, path values, stateful sequences) against a live master,
//! on both backends, and checks that no answer is a 5xx and every answer matches the schema.
//!
//! schemathesis comes from PyPI; `scripts/test` installs it into `target/venv`.

mod common;

use common::{Backend, Cluster};
use std::path::PathBuf;
use std::process::Command;

/// Test cases per operation and phase: enough to cover each body's shapes and limits while
/// the whole run stays within a minute on a loaded 2-core machine.
const MAX_EXAMPLES: &str = "25";
/// Per request; generous, as a spawn that starts a worker on a loaded machine takes a while.
const REQUEST_TIMEOUT_SECS: &str = "60";

fn schemathesis() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test, which installs schemathesis into target/venv",
        bin.display()
    );
    bin
}

async fn contract(backend: Backend) {
    let bin = schemathesis();
    // The default config's pool name, which the document's examples use.
    let config = common::config(10, 3, "").replace("name = \"p\"", "name = \"developer\"");
    let c = Cluster::start_on(backend, config, &[]).await;
    let url = format!("{}/api/v1/openapi.json", c.master.url());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "run",
                &url,
                "--checks",
                "not_a_server_error,response_schema_conformance",
            ])
            .args([
                "--max-examples",
                MAX_EXAMPLES,
                "--workers",
                "1",
                "--no-color",
            ])
            .args(["--request-timeout", REQUEST_TIMEOUT_SECS])
            // The event feed stays open for new events unless asked not to, so a generated
            // request would only end at the timeout; tests/observe.rs covers it.
            .args(["--exclude-path", "/api/v1/events"])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems ({backend:?}):\n{report}\n{}\nmaster log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        c.master.log()
    );
    assert!(report.contains("passed"), "{report}");
}

both_backends!(contract: contract_redis, contract_embedded);
