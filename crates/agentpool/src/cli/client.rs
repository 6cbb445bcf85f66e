//! A small typed client of the master's REST API; every path is under `/api/v1`.

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fmt;
use std::time::Duration;

/// An error response of the API, kept typed so callers can act on its status (e.g. 404).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Method and URL of the failed request.
    pub request: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with HTTP {}", self.request, self.status)?;
        if self.code.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

/// The API's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// One HTTP client per command so requests reuse keep-alive connections.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    pub fn new(base: &str) -> Result<Self> {
        let base = Url::parse(base).with_context(|| format!("invalid master URL {base:?}"))?;
        if base.scheme() != "http" || base.cannot_be_a_base() {
            bail!("invalid master URL {base}: expected http://host:port (this client has no TLS)");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.send(Method::GET, path, query, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        body: &impl Serialize,
    ) -> Result<T> {
        self.send(Method::POST, path, query, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.send(Method::DELETE, path, query, None::<&()>).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let url = self.url(path, query);
        let request = format!("{method} {url}");
        let mut builder = self.http.request(method, url.clone());
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|e| transport_error(e, &url))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the response of {request}"))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, request).into());
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("decoding the response of {request}"))
    }

    /// Joins path segments under `/api/v1`, percent-encoding each one (ids and pool names).
    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can be a base")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Names the URL, since "connection refused" alone does not say where.
fn transport_error(err: reqwest::Error, url: &Url) -> anyhow::Error {
    let what = if err.is_connect() {
        format!("could not reach {url} (is `agentpool serve` running there?)")
    } else if err.is_timeout() {
        format!("{url} did not answer in time")
    } else {
        format!("request to {url} failed")
    };
    anyhow::Error::new(err).context(what)
}

/// Reads the API's error body; a body of another shape (e.g. from a proxy) is quoted instead.
fn api_error(status: StatusCode, body: &[u8], request: String) -> ApiError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            (String::new(), text.trim().chars().take(300).collect())
        }
    };
    ApiError {
        status,
        code,
        message,
        request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_under_api_v1_and_encoded() {
        let c = Client::new("http://127.0.0.1:8000/").unwrap();
        let url = c.url(&["agents", "a b"], &[("graceful", "false")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/api/v1/agents/a%20b?graceful=false"
        );
        assert!(Client::new("https://example.com").is_err());
    }

    #[test]
    fn error_body_is_quoted_with_status() {
        let body = br#"{"error":{"code":"pool_full","message":"no room"}}"#;
        let e = api_error(StatusCode::CONFLICT, body, "POST /x".into());
        assert_eq!(
            e.to_string(),
            "POST /x failed with HTTP 409 Conflict: pool_full: no room"
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"bad gateway", "GET /y".into());
        assert_eq!(
            e.to_string(),
            "GET /y failed with HTTP 502 Bad Gateway: bad gateway"
        );
    }
}
