//! A small typed client of the master's REST API; every path is under `/api/v1`.

use super::connect::ENV_TIMEOUT;
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
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": {}: {}", self.code, self.message)?;
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let env = super::connect::ENV_TOKEN;
            write!(
                f,
                " (set {env} to a token made by `agentpool token create`)"
            )?;
        }
        Ok(())
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

/// Longest wait for a TCP connection: a master that is up accepts at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A success answer's body, exactly as the master sent it.
pub struct Body {
    pub bytes: Vec<u8>,
    /// Method and URL of the request, for error messages.
    request: String,
}

impl Body {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.bytes)
            .with_context(|| format!("decoding the response of {}", self.request))
    }
}

/// One HTTP client per command so requests reuse keep-alive connections.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    /// The default headers (the token), for the separate client of event streams.
    headers: reqwest::header::HeaderMap,
}

impl Client {
    /// `timeout` bounds each request, from connecting to the end of the answer; `token` is
    /// sent as `Authorization: Bearer` with every request.
    pub fn new(base: &str, timeout: Duration, token: Option<&str>) -> Result<Self> {
        let base = Url::parse(base).with_context(|| format!("invalid master URL {base:?}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("invalid master URL {base}: expected http://host:port or https://host:port");
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("AGENTPOOL_TOKEN holds characters a header cannot carry")?;
            // Kept out of reqwest's debug output.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .default_headers(headers.clone())
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base,
            timeout,
            headers,
        })
    }

    /// This client with `extra` more time for each answer: for a request the master holds
    /// open on purpose (`?wait=`).
    pub fn patient(&self, extra: Duration) -> Self {
        Self {
            timeout: self.timeout.saturating_add(extra),
            ..self.clone()
        }
    }

    /// Opens a Server-Sent Events stream. The answer's headers must come within the timeout;
    /// the stream itself may last however long (the caller decides when to give up).
    pub async fn events(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<super::events::EventStream> {
        let url = self.url(path, query);
        let request = format!("GET {url}");
        // The shared client's timeout would cut the stream off after the timeout; this one
        // only bounds connecting.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            .default_headers(self.headers.clone())
            .build()
            .context("building the HTTP client")?;
        let send = http
            .get(url.clone())
            .header("Accept", "text/event-stream")
            .send();
        let response = match tokio::time::timeout(self.timeout, send).await {
            Ok(sent) => sent.map_err(|e| self.transport_error(e, &url))?,
            Err(_) => {
                let secs = self.timeout.as_secs_f64();
                bail!("{url} did not answer within {secs} s (--timeout, {ENV_TIMEOUT})");
            }
        };
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(api_error(status, &bytes, request).into());
        }
        Ok(super::events::EventStream::new(response, request))
    }

    /// `GET /health` (outside `/api/v1`); a degraded master answers 503 with the same body.
    pub async fn health(&self) -> Result<serde_json::Value> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can be a base")
            .pop_if_empty()
            .push("health");
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e, &url))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, &url))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("decoding the response of GET {url}"))
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
        self.fetch(method, path, query, body).await?.decode()
    }

    /// One request; a success answer is returned as received, an error answer is an error.
    pub async fn fetch(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<Body> {
        self.fetch_keyed(method, path, query, body, None).await
    }

    /// A request that must not be carried out twice (a spawn): it goes with a fresh
    /// `Idempotency-Key`, and when the connection drops before an answer it is sent once more
    /// with the same key, so the master answers what the first one did instead of doing it
    /// again.
    pub async fn fetch_once(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<Body> {
        let key = uuid::Uuid::now_v7().to_string();
        let first = self
            .fetch_keyed(method.clone(), path, query, body, Some(&key))
            .await;
        match first {
            Err(e) if e.downcast_ref::<ApiError>().is_none() && !is_refused(&e) => {
                super::write_stderr(&format!(
                    "warning: {e:#}\nretrying once with the same Idempotency-Key\n"
                ));
                self.fetch_keyed(method, path, query, body, Some(&key))
                    .await
            }
            other => other,
        }
    }

    async fn fetch_keyed(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        key: Option<&str>,
    ) -> Result<Body> {
        let url = self.url(path, query);
        let request = format!("{method} {url}");
        // Per request, so a `patient` copy of the client waits longer.
        let mut builder = self.http.request(method, url.clone()).timeout(self.timeout);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        if let Some(key) = key {
            builder = builder.header("Idempotency-Key", key);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(e, &url))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, &url))
            .with_context(|| format!("reading the response of {request}"))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, request).into());
        }
        Ok(Body {
            bytes: bytes.to_vec(),
            request,
        })
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

    /// Names the URL, since "connection refused" alone does not say where, and says how to
    /// start a master.
    fn transport_error(&self, err: reqwest::Error, url: &Url) -> anyhow::Error {
        let what = if err.is_connect() && err.is_timeout() {
            let limit = CONNECT_TIMEOUT.min(self.timeout).as_secs_f64();
            format!("could not connect to {url} within {limit} s")
        } else if err.is_connect() {
            format!("could not reach {url}")
        } else if err.is_timeout() {
            let secs = self.timeout.as_secs_f64();
            format!("{url} did not answer within {secs} s (--timeout, {ENV_TIMEOUT})")
        } else {
            format!("request to {url} failed")
        };
        anyhow::Error::new(err).context(format!("{what}: {START_HINT}"))
    }
}

/// Whether the request never reached a master: nothing to retry, nothing to double.
fn is_refused(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<reqwest::Error>())
        .any(|r| r.is_connect())
}

const START_HINT: &str =
    "is a master running there? Start one with `agentpool serve` (or pass --url)";

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
        let c = Client::new("http://127.0.0.1:8000/", Duration::from_secs(1), None).unwrap();
        let url = c.url(&["agents", "a b"], &[("graceful", "false")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/api/v1/agents/a%20b?graceful=false"
        );
        assert!(Client::new("ftp://example.com", Duration::from_secs(1), None).is_err());
        assert!(Client::new("https://example.com", Duration::from_secs(1), Some("apt_x")).is_ok());
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
