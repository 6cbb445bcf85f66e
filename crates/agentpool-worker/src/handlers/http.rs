//! The `http` handler: each task is POSTed as `{"task_id","agent_id","input"}` to the user's
//! service, with `"secret_config"` when the agent has one. A 2xx JSON body is the output; any other answer fails the attempt with its status
//! and the start of its body. One client per agent keeps its connections alive across tasks.

use super::{AgentHandler, BoxFuture, Outcome, Progress, TaskInput, excerpt, timed_out};
use agentpool_types::{AgentId, AgentSpec, HttpHandler, SecretConfig, mask_url};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Characters of a response body quoted in an error.
const BODY_EXCERPT: usize = 300;
/// Largest response body read; a bigger one fails the attempt.
const MAX_BODY: usize = 16 << 20;

/// One agent's client of the user's service.
pub struct Http {
    client: reqwest::Client,
    url: String,
    agent: AgentId,
    /// The agent's opened `secret_config`, sent in every request body.
    secret: Option<SecretConfig>,
}

impl Http {
    pub fn new(
        http: &HttpHandler,
        agent: &AgentSpec,
        secret: Option<&SecretConfig>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("agentpool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {}", chain(&e)))?;
        Ok(Self {
            client,
            url: http.url.clone(),
            agent: agent.agent_id.clone(),
            secret: secret.cloned(),
        })
    }

    async fn attempt(
        &self,
        task: TaskInput,
        limit: Duration,
        cancel: CancellationToken,
    ) -> Outcome {
        // Dropping the request future aborts the request, which is all a cancel needs.
        tokio::select! {
            // A task cancelled before it starts is not sent at all.
            biased;
            _ = cancel.cancelled() => Outcome::Cancelled,
            outcome = self.post(task) => outcome,
            _ = tokio::time::sleep(limit) => timed_out(limit),
        }
    }

    async fn post(&self, task: TaskInput) -> Outcome {
        let mut body =
            json!({"task_id": task.task_id, "agent_id": self.agent, "input": task.input});
        if let Some(secret) = &self.secret {
            body["secret_config"] = secret.expose().clone();
        }
        let response = match self.client.post(&self.url).json(&body).send().await {
            Ok(response) => response,
            Err(e) => return Outcome::Failed(self.failed(e)),
        };
        let status = response.status();
        let bytes = match read_body(response).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Outcome::Failed(format!("HTTP {status}: body over {} MiB", MAX_BODY >> 20));
            }
            Err(e) => return Outcome::Failed(self.failed(e)),
        };
        if status.is_success()
            && let Ok(output) = serde_json::from_slice::<Value>(&bytes)
        {
            return Outcome::Succeeded(output);
        }
        let text = String::from_utf8_lossy(&bytes);
        Outcome::Failed(format!(
            "HTTP {status}: {}",
            excerpt(text.trim(), BODY_EXCERPT)
        ))
    }

    /// A transport error, naming the URL without its password.
    fn failed(&self, e: reqwest::Error) -> String {
        format!(
            "POST {} failed: {}",
            mask_url(&self.url),
            chain(&e.without_url())
        )
    }
}

impl AgentHandler for Http {
    fn run<'a>(
        &'a mut self,
        task: TaskInput,
        timeout: Duration,
        _progress: &'a Progress,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.attempt(task, timeout, cancel))
    }
}

/// The whole body, or `None` past [`MAX_BODY`].
async fn read_body(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// An error with its causes: reqwest's own message alone rarely says what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
