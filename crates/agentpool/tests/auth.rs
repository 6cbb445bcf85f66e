//! API tokens end to end: `agentpool token create` keeps only a hash, a master with tokens
//! answers 401 without one and 403 below the scope a route needs, `/health` stays open with no
//! details, the token never reaches the log, and an open API is refused off loopback.

mod cli_support;
mod common;

use agentpool_testkit::TempDir;
use common::{Backend, Cluster, config};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates a token of `scope` in the tokens file at `file`, named by a config written in
/// `dir`; returns it.
fn create(dir: &Path, file: &Path, scope: &str, name: &str) -> String {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[auth]\ntokens_file = {:?}\n", file.display().to_string()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = cli_support::stdout(
        &[
            "token", "create", "--scope", scope, "--name", name, "--config", cfg,
        ],
        &[],
    );
    let token = out.trim().to_owned();
    assert!(token.starts_with("apt_") && token.len() == 68, "{out}");
    token
}

/// `method path` with `token`: the status, the body and the `WWW-Authenticate` header.
async fn call(c: &Cluster, method: &str, path: &str, token: Option<&str>) -> (u16, Value, String) {
    let url = format!("{}{path}", c.master.url());
    let http = c.master.http();
    let mut req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&json!({"pool": "p"})),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

#[tokio::test]
async fn tokens_guard_the_api_by_scope() {
    let dir = TempDir::new("auth");
    let file = dir.path().join("secrets").join("tokens.toml");
    let read = create(dir.path(), &file, "read", "dashboard");
    let write = create(dir.path(), &file, "write", "ci");
    let admin = create(dir.path(), &file, "admin", "ops");

    let text = std::fs::read_to_string(&file).unwrap();
    for t in [&read, &write, &admin] {
        assert!(!text.contains(t.as_str()), "only hashes are kept: {text}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    let tokens = format!("[auth]\ntokens_file = {:?}", file.display().to_string());
    let c = Cluster::start_on(Backend::Embedded, config(5, 2, &tokens), &[]).await;

    let (status, body, challenge) = call(&c, "GET", "/api/v1/pools", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    let (status, body, _) = call(&c, "GET", "/api/v1/pools", Some("apt_guess")).await;
    assert_eq!(status, 401, "{body}");

    // /health answers anyone, with details for a token holder only.
    let (status, body, _) = call(&c, "GET", "/health", None).await;
    assert_eq!(
        (status, body.as_object().map(|o| o.len())),
        (200, Some(1)),
        "{body}"
    );
    let (_, body, _) = call(&c, "GET", "/health", Some(&read)).await;
    assert!(body["database"].is_object(), "{body}");

    let (status, _, _) = call(&c, "GET", "/api/v1/pools", Some(&read)).await;
    assert_eq!(status, 200);
    let (status, body, _) = call(&c, "POST", "/api/v1/agents", Some(&read)).await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`write`") && message.contains("`read`"),
        "{body}"
    );

    let (status, agent, _) = call(&c, "POST", "/api/v1/agents", Some(&write)).await;
    assert_eq!(status, 201, "{agent}");
    let process = agent["process_id"].as_str().expect("placed");
    let drain = format!("/api/v1/processes/{process}");
    let (status, body, _) = call(&c, "DELETE", &drain, Some(&write)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`admin`")
    );
    let (status, body, _) = call(&c, "DELETE", &drain, Some(&admin)).await;
    assert_eq!(status, 200, "{body}");

    let log = c.master.log();
    for t in [&read, &write, &admin] {
        assert!(!log.contains(t.as_str()), "a token in the master's log");
    }
}

#[tokio::test]
async fn the_environment_token_is_an_admin() {
    let token = "apt_from-the-environment";
    let mut c = Cluster::start_on_env(
        Backend::Embedded,
        config(5, 2, ""),
        &[("AGENTPOOL_API_TOKEN", token)],
    )
    .await;
    assert_eq!(call(&c, "GET", "/api/v1/agents", None).await.0, 401);
    assert_eq!(call(&c, "POST", "/api/v1/agents", Some(token)).await.0, 201);
    assert!(c.master.terminate().await.success());
}

#[test]
fn an_open_api_off_loopback_is_refused_with_the_way_out() {
    let dir = TempDir::new("auth-open");
    let out = cli_support::output(
        &["serve", "--listen", "0.0.0.0:0"],
        &[
            ("AGENTPOOL_DATA_DIR", dir.path().to_str().unwrap()),
            ("REDIS_URL", ""),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agentpool token create"), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
}

#[test]
fn token_list_and_revoke() {
    let dir = TempDir::new("auth-list");
    let file = dir.path().join("tokens.toml");
    create(dir.path(), &file, "read", "one");
    create(dir.path(), &file, "admin", "two");
    let cfg = dir.path().join("two.toml");
    let cfg = cfg.to_str().unwrap();
    let listed = cli_support::stdout(&["token", "list", "--config", cfg], &[]);
    assert!(
        listed.contains("one") && listed.contains("admin"),
        "{listed}"
    );
    cli_support::stdout(&["token", "revoke", "one", "--config", cfg], &[]);
    let listed = cli_support::stdout(&["token", "list", "--config", cfg], &[]);
    assert!(
        !listed.contains("one") && listed.contains("two"),
        "{listed}"
    );
    let again = cli_support::output(&["token", "revoke", "one", "--config", cfg], &[]);
    assert!(!again.status.success());
}

#[tokio::test]
async fn the_cli_sends_agentpool_token() {
    let token = "apt_for-the-cli";
    let c = Cluster::start_on_env(
        Backend::Embedded,
        config(5, 2, ""),
        &[("AGENTPOOL_API_TOKEN", token)],
    )
    .await;
    let url = c.master.url();
    let without = cli_support::output(&["pools"], &[("AGENTPOOL_URL", url.as_str())]);
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("AGENTPOOL_TOKEN"),
        "{stderr}"
    );
    let with = cli_support::stdout(
        &["pools"],
        &[("AGENTPOOL_URL", url.as_str()), ("AGENTPOOL_TOKEN", token)],
    );
    assert!(with.contains("p"), "{with}");
}
