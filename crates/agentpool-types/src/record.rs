//! What the registry holds: the `agent:<id>` and `process:<id>` hashes, typed.

use crate::{AgentId, AgentState, ProcessId, ProcessState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One agent as the registry shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_id: AgentId,
    pub pool_name: String,
    pub role_type: String,
    pub name: String,
    /// The worker it is assigned to; empty while orphaned.
    pub process_id: Option<ProcessId>,
    pub status: AgentState,
    pub restarts: u32,
    pub registered_at: String,
    pub updated_at: String,
    /// The spawn request's `config`, kept as JSON.
    pub metadata: serde_json::Value,
    /// Last error, for `failed` and `quarantined` agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This agent's own restart policy, overriding its pool's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<crate::RestartPolicy>,
    /// Placement generation: bumped by every placement, so a worker holding an older one is
    /// recognised as stale.
    pub epoch: u64,
}

impl Agent {
    /// Reads an `agent:<id>` hash; `None` when a required field is missing or malformed.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            agent_id: AgentId::parse(h.get("agent_id")?)?,
            pool_name: h.get("pool_name")?.clone(),
            role_type: h.get("role_type").cloned().unwrap_or_default(),
            name: h.get("name").cloned().unwrap_or_default(),
            process_id: h.get("process_id").and_then(|p| ProcessId::parse(p)),
            status: h.get("status")?.parse().ok()?,
            restarts: h.get("restarts").and_then(|r| r.parse().ok()).unwrap_or(0),
            registered_at: h.get("registered_at").cloned().unwrap_or_default(),
            updated_at: h.get("updated_at").cloned().unwrap_or_default(),
            metadata: h
                .get("metadata")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(serde_json::Value::Null),
            error: h.get("error").filter(|e| !e.is_empty()).cloned(),
            restart: h
                .get("restart")
                .and_then(|r| crate::RestartPolicy::parse(r)),
            epoch: h.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0),
        })
    }
}

/// One worker process as the registry shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerProcess {
    pub process_id: ProcessId,
    pub pool_name: String,
    pub pid: u32,
    pub host: String,
    pub max_agents: u32,
    pub agent_count: u32,
    pub status: ProcessState,
    pub started_at: String,
    pub last_heartbeat: String,
    pub rss_bytes: u64,
    pub cpu_percent: f32,
}

impl WorkerProcess {
    /// Reads a `process:<id>` hash; `None` when a required field is missing or malformed.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Some(Self {
            process_id: ProcessId::parse(h.get("process_id")?)?,
            pool_name: h.get("pool_name")?.clone(),
            pid: u32::try_from(num("pid")).ok()?,
            host: h.get("host").cloned().unwrap_or_default(),
            max_agents: u32::try_from(num("max_agents")).ok()?,
            agent_count: u32::try_from(num("agent_count")).unwrap_or(0),
            status: h.get("status")?.parse().ok()?,
            started_at: h.get("started_at").cloned().unwrap_or_default(),
            last_heartbeat: h.get("last_heartbeat").cloned().unwrap_or_default(),
            rss_bytes: num("rss_bytes"),
            cpu_percent: h
                .get("cpu_percent")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
        })
    }

    /// Fields written by `register`, in hash order.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("process_id", self.process_id.to_string()),
            ("pool_name", self.pool_name.clone()),
            ("pid", self.pid.to_string()),
            ("host", self.host.clone()),
            ("max_agents", self.max_agents.to_string()),
            ("agent_count", self.agent_count.to_string()),
            ("status", self.status.to_string()),
            ("started_at", self.started_at.clone()),
            ("last_heartbeat", self.last_heartbeat.clone()),
            ("rss_bytes", self.rss_bytes.to_string()),
            ("cpu_percent", format!("{:.1}", self.cpu_percent)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_hash_round_trip_needs_id_pool_status() {
        let mut h: HashMap<String, String> = [
            ("agent_id", "a1"),
            ("pool_name", "dev"),
            ("status", "idle"),
            ("metadata", r#"{"k":1}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let a = Agent::from_hash(&h).unwrap();
        assert_eq!(a.status, AgentState::Idle);
        assert_eq!(a.metadata["k"], 1);
        assert_eq!(a.process_id, None);
        h.remove("status");
        assert!(Agent::from_hash(&h).is_none());
    }
}
