//! The body of one agent task.
//!
//! Message handling comes later; for now an agent comes up, reports ready, and lives until it
//! is stopped. The `fault` key of an agent's config injects failures, so supervision can be
//! shown working against real processes: `"panic"` panics on start, `"error"` fails on start.

use agentpool_types::AgentId;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What an agent knows about itself.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: AgentId,
    pub role: String,
    pub name: String,
    pub config: serde_json::Value,
    /// Overrides the pool's restart policy.
    pub restart: Option<agentpool_types::RestartPolicy>,
}

/// Runs the agent until `stop` is cancelled. Sends on `ready` once it can take work.
pub async fn run(
    spec: AgentSpec,
    stop: CancellationToken,
    ready: oneshot::Sender<()>,
) -> Result<(), String> {
    match spec.config.get("fault").and_then(|f| f.as_str()) {
        Some("panic") => panic!("agent {} panicked on start (fault injection)", spec.id),
        Some("error") => {
            return Err(format!(
                "agent {} failed on start (fault injection)",
                spec.id
            ));
        }
        _ => {}
    }
    let _ = ready.send(());
    stop.cancelled().await;
    Ok(())
}
