//! The dashboard in a real headless Chromium: the page renders the pools from the API, cancels
//! a queued task, spawns through its form and shows the new agent count without a reload,
//! shows the API's message when a spawn is refused, terminates an agent and drains a worker
//! after an in-page confirmation; on a master with tokens, the page and its files are open
//! (with their types and content security policy), and the page asks for a token, keeps it for
//! the tab and shows the data.

mod common;

use agentpool_testkit::{Browser, Page, wait_until};
use common::{Backend, Cluster, WAIT, config};
use futures::FutureExt;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

/// A JS string literal of `s`.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The text of the first element matching `selector`, if any.
async fn text(page: &Page, selector: &str) -> Option<String> {
    let v = page
        .eval(&format!(
            "document.querySelector({})?.textContent ?? null",
            js(selector)
        ))
        .await;
    v.as_str().map(str::to_owned)
}

/// The agent count the page shows on pool `p`'s card.
async fn agents_shown(page: &Page) -> Option<String> {
    text(page, r#"[data-pool="p"] .value.agents"#).await
}

async fn wait_text(page: &Page, what: &str, selector: &str, want: &str) {
    wait_on(page, what, || async {
        text(page, selector).await.as_deref() == Some(want)
    })
    .await;
}

/// `wait_until`, and when it times out, what the page showed then.
async fn wait_on<F, Fut>(page: &Page, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = AssertUnwindSafe(wait_until(what, WAIT, f))
        .catch_unwind()
        .await;
    if waited.is_err() {
        let shown = page.eval("document.body.innerText.slice(0, 4000)").await;
        let shown = shown.as_str().unwrap_or_default();
        panic!("waiting for {what}; the page shows:\n{shown}");
    }
}

/// Whether the element `id` is shown (not `hidden`).
async fn shown(page: &Page, id: &str) -> bool {
    let v = page
        .eval(&format!("!document.getElementById({}).hidden", js(id)))
        .await;
    v == Value::Bool(true)
}

/// Types `count` into the spawn form and presses its button, as a user would.
async fn spawn_through_form(page: &Page, count: u32) {
    page.eval(&format!(
        "document.getElementById('spawn-count').value = '{count}';
         document.getElementById('spawn-pool').value = 'p';
         document.getElementById('spawn-button').click();"
    ))
    .await;
}

async fn click(page: &Page, selector: &str) {
    page.eval(&format!("document.querySelector({}).click()", js(selector)))
        .await;
}

/// Where screenshots go: the workspace's `target/`.
fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join(name)
}

async fn api_agents(c: &Cluster) -> usize {
    let (status, body) = c.master.get("/api/v1/agents").await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list").len()
}

async fn spawn_terminate_and_refusal(backend: Backend) {
    let c = Cluster::start_on(backend, config(5, 2, ""), &[]).await;
    let browser = Browser::start().await;
    let page = browser.open(&format!("{}/", c.master.url())).await;

    wait_text(
        &page,
        "pool p on the page",
        r#"[data-pool="p"] .pool-name"#,
        "p",
    )
    .await;
    assert_eq!(agents_shown(&page).await.as_deref(), Some("0"));
    // The open API's event stream drives the refreshes.
    wait_text(
        &page,
        "the page on the event stream",
        "#mode",
        "live (event stream)",
    )
    .await;
    cancel_a_queued_task(&c, &page).await;
    // A reload would lose this: it shows that the count below changed in place.
    page.eval("window.sameDocument = true").await;

    spawn_through_form(&page, 2).await;
    wait_text(
        &page,
        "2 agents on pool p's card",
        r#"[data-pool="p"] .value.agents"#,
        "2",
    )
    .await;
    assert_eq!(page.eval("window.sameDocument").await, Value::Bool(true));
    assert_eq!(api_agents(&c).await, 2);
    wait_on(&page, "two agent rows, both idle", || async {
        let idle = page
            .eval("document.querySelectorAll('#agents [data-status=\"idle\"]').length")
            .await;
        idle == 2
    })
    .await;
    assert_eq!(
        text(&page, "#workers tr td:nth-child(4)").await.as_deref(),
        Some("2/5"),
        "the worker row shows agents n/capacity"
    );
    page.screenshot(&screenshot_path(match backend {
        Backend::Embedded => "dashboard.png",
        Backend::Redis => "dashboard-redis.png",
    }))
    .await;

    // Two workers of 5: 30 can never fit, and the API says so; the page shows its words.
    spawn_through_form(&page, 30).await;
    wait_on(&page, "the refusal on the page", || async {
        shown(&page, "notice").await
            && text(&page, "#notice-text")
                .await
                .is_some_and(|t| t.contains("can ever hold"))
    })
    .await;
    assert_eq!(api_agents(&c).await, 2, "a refused spawn changes nothing");

    // Terminating asks first; cancelling the question keeps the agent.
    click(&page, "#agents button[data-action=terminate]").await;
    wait_until("the confirmation dialog", WAIT, || async {
        page.eval("document.getElementById('confirm-dialog').open")
            .await
            == Value::Bool(true)
    })
    .await;
    click(&page, "#confirm-cancel").await;
    assert_eq!(
        page.eval("document.getElementById('confirm-dialog').open")
            .await,
        Value::Bool(false)
    );
    assert_eq!(api_agents(&c).await, 2);
    click(&page, "#agents button[data-action=terminate]").await;
    click(&page, "#confirm-ok").await;
    wait_text(
        &page,
        "1 agent left on the card",
        r#"[data-pool="p"] .value.agents"#,
        "1",
    )
    .await;
    drain_the_worker(&c, &page).await;
    assert_eq!(page.eval("window.sameDocument").await, Value::Bool(true));
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
}

/// With no agent in the pool a task waits; the page shows it queued and cancels it.
async fn cancel_a_queued_task(c: &Cluster, page: &Page) {
    let (status, task) = c
        .master
        .post(
            "/api/v1/pools/p/tasks",
            serde_json::json!({"input": "later"}),
        )
        .await;
    assert_eq!(status, 202, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    let row_status = format!(r#"#tasks tr[data-task="{id}"] .badge"#);
    wait_text(page, "the task queued on the page", &row_status, "queued").await;
    wait_text(
        page,
        "1 queued on the card",
        r#"[data-pool="p"] .value.queued"#,
        "1",
    )
    .await;
    click(page, "#tasks button[data-action=cancel]").await;
    click(page, "#confirm-ok").await;
    wait_text(
        page,
        "the task cancelled on the page",
        &row_status,
        "cancelled",
    )
    .await;
    let (_, task) = c.master.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "cancelled", "{task}");
}

/// Draining the only worker moves its agent to a new one: the old row goes, the count stays.
async fn drain_the_worker(c: &Cluster, page: &Page) {
    let (_, workers) = c.master.get("/api/v1/processes").await;
    let old = workers[0]["process_id"].as_str().unwrap().to_owned();
    click(page, "#workers button[data-action=drain]").await;
    click(page, "#confirm-ok").await;
    wait_on(page, "the drained worker gone from the page", || async {
        let rows = page
            .eval(&format!(
                "document.querySelectorAll('#workers tr[data-process=\"{old}\"]').length"
            ))
            .await;
        let count = text(page, r#"[data-pool="p"] .value.agents"#).await;
        rows == 0 && count.as_deref() == Some("1")
    })
    .await;
}

both_backends!(spawn_terminate_and_refusal: dashboard_redis, dashboard_embedded);

#[tokio::test]
async fn dashboard_asks_for_the_token_and_keeps_it_for_the_tab() {
    let token = "apt_dashboard_test_token_0123456789";
    let c = Cluster::start_on_env(
        Backend::Embedded,
        config(5, 2, ""),
        &[("AGENTPOOL_API_TOKEN", token)],
    )
    .await;
    assets_are_open_with_their_types_and_policy(&c).await;
    let browser = Browser::start().await;
    let page = browser.open(&format!("{}/", c.master.url())).await;

    wait_until("the token form", WAIT, || shown(&page, "token-form")).await;
    assert!(!shown(&page, "content").await, "no data without a token");

    // A wrong token is refused and the page asks again, with the API's reason.
    enter_token(&page, "apt_wrong").await;
    wait_until("the form again, for an unknown token", WAIT, || async {
        shown(&page, "token-form").await
            && text(&page, "#token-reason")
                .await
                .is_some_and(|t| t.contains("not known"))
    })
    .await;

    enter_token(&page, token).await;
    wait_text(
        &page,
        "pool p after the token",
        r#"[data-pool="p"] .pool-name"#,
        "p",
    )
    .await;
    assert!(!shown(&page, "token-form").await);
    spawn_through_form(&page, 1).await;
    wait_text(
        &page,
        "1 agent spawned with the token",
        r#"[data-pool="p"] .value.agents"#,
        "1",
    )
    .await;

    // The tab keeps it: a reload shows the data without asking.
    page.navigate(&format!("{}/", c.master.url())).await;
    wait_text(
        &page,
        "pool p after a reload",
        r#"[data-pool="p"] .value.agents"#,
        "1",
    )
    .await;
    assert!(!shown(&page, "token-form").await, "asked once per tab");
    assert!(page.exceptions().is_empty(), "{:?}", page.exceptions());
}

/// The page and its files need no token; each has its type and the policy that forbids
/// inline script and other origins.
async fn assets_are_open_with_their_types_and_policy(c: &Cluster) {
    let files = [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ];
    for (path, kind) in files {
        let resp = c
            .master
            .http()
            .get(format!("{}{path}", c.master.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    let (status, _) = c.master.get("/api/v1/pools").await;
    assert_eq!(status, 401, "the data itself needs the token");
}

async fn enter_token(page: &Page, token: &str) {
    page.eval(&format!(
        "document.getElementById('token-input').value = {};
         document.querySelector('#token-form button[type=submit]').click();",
        js(token)
    ))
    .await;
}
