//! One agent: [`AgentSpec`], what was asked for, and [`Agent`], that spec with where it runs
//! and how it is doing. The spec travels unchanged from the REST route through the registry and
//! the store to the worker; it becomes text only at the Redis, socket and SQL edges.

use crate::{AgentId, AgentState, PoolSpec, ProcessId, RestartPolicy, SealedSecret};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an agent is: fixed when it is spawned, kept across restarts and moves.
///
/// The field names are the ones users read in the API, in `HGETALL agent:<id>` and in the
/// store's columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentSpec {
    pub agent_id: AgentId,
    pub pool_name: String,
    pub role_type: String,
    pub name: String,
    /// The spawn request's `config` object, handed to the agent's handler.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// This agent's own restart policy, overriding its pool's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Started by its pool's autoscaler, which may give it back when idle; one spawned by
    /// hand is never scaled down.
    #[serde(default)]
    pub autoscaled: bool,
    /// The spawn request's `secret_config`, sealed by the master; only the worker opens it.
    /// Internal channels carry it; the API strips it and OpenAPI does not list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub secret_config: Option<SealedSecret>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl AgentSpec {
    /// A new agent of `pool`, with a fresh id. The role defaults to the pool's, the name to
    /// the role followed by the tail of the id.
    pub fn new(
        pool: &PoolSpec,
        role: Option<String>,
        name: Option<String>,
        metadata: Value,
    ) -> Self {
        let agent_id = AgentId::new();
        let role_type = role.unwrap_or_else(|| pool.role.clone());
        let id = agent_id.as_str();
        let name =
            name.unwrap_or_else(|| format!("{role_type}-{}", &id[id.len().saturating_sub(8)..]));
        Self {
            agent_id,
            pool_name: pool.name.clone(),
            role_type,
            name,
            metadata,
            restart: None,
            autoscaled: false,
            secret_config: None,
        }
    }

    /// The restart policy that applies: the agent's own, else its pool's.
    pub fn restart_policy(&self, pool: &PoolSpec) -> RestartPolicy {
        self.restart.unwrap_or(pool.restart)
    }
}

/// An agent as the registry shows it: its spec, where it runs and how it is doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// The worker it is assigned to; empty while orphaned.
    pub process_id: Option<ProcessId>,
    pub status: AgentState,
    pub restarts: u32,
    pub registered_at: String,
    pub updated_at: String,
    /// Last error, for `failed` and `quarantined` agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Placement generation: bumped by every placement, so a worker holding an older one is
    /// recognised as stale.
    pub epoch: u64,
    /// The task it is running, while `busy`.
    #[serde(default)]
    pub current_task: Option<crate::TaskId>,
    /// Tasks it ran to success, and attempts of it that failed.
    #[serde(default)]
    pub tasks_done: u64,
    #[serde(default)]
    pub tasks_failed: u64,
}

impl Agent {
    pub fn id(&self) -> &AgentId {
        &self.spec.agent_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_json_is_flat_with_the_documented_names() {
        let pool = PoolSpec::new("dev", "developer");
        let spec = AgentSpec::new(&pool, None, None, serde_json::json!({"k": 1}));
        assert_eq!(spec.role_type, "developer");
        assert!(spec.name.starts_with("developer-"));
        let agent = Agent {
            spec,
            process_id: None,
            status: AgentState::Pending,
            restarts: 0,
            registered_at: String::new(),
            updated_at: String::new(),
            error: None,
            epoch: 1,
            current_task: None,
            tasks_done: 0,
            tasks_failed: 0,
        };
        let v = serde_json::to_value(&agent).unwrap();
        for field in [
            "agent_id",
            "pool_name",
            "role_type",
            "name",
            "metadata",
            "status",
            "epoch",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert!(v.get("restart").is_none() && v.get("spec").is_none());
        let back: Agent = serde_json::from_value(v).unwrap();
        assert_eq!(back, agent);
    }
}
