//! The Redis hash codec: `agent:<id>` and `process:<id>` hashes to and from the typed records.
//! Only the Redis backend stores text; everything above it sees the types.

use agentpool_types::{
    Agent, AgentId, AgentSpec, ProcessId, Task, TaskId, TaskRules, TaskSpec, WorkerProcess,
};
use std::collections::HashMap;

/// Reads an `agent:<id>` hash; `None` when a required field is missing or malformed.
pub fn agent(h: &HashMap<String, String>) -> Option<Agent> {
    let spec = AgentSpec {
        agent_id: AgentId::parse(h.get("agent_id")?)?,
        pool_name: h.get("pool_name")?.clone(),
        role_type: h.get("role_type").cloned().unwrap_or_default(),
        name: h.get("name").cloned().unwrap_or_default(),
        metadata: h
            .get("metadata")
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        restart: h.get("restart").and_then(|r| r.parse().ok()),
        autoscaled: h.get("autoscaled").is_some_and(|v| v == "1"),
        secret_config: h
            .get("secret_config")
            .filter(|s| !s.is_empty())
            .map(|s| agentpool_types::SealedSecret::from_text(s.as_str())),
    };
    Some(Agent {
        spec,
        process_id: h.get("process_id").and_then(|p| ProcessId::parse(p)),
        status: h.get("status")?.parse().ok()?,
        restarts: h.get("restarts").and_then(|r| r.parse().ok()).unwrap_or(0),
        registered_at: h.get("registered_at").cloned().unwrap_or_default(),
        updated_at: h.get("updated_at").cloned().unwrap_or_default(),
        error: h.get("error").filter(|e| !e.is_empty()).cloned(),
        epoch: h.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0),
        current_task: h.get("current_task").and_then(|t| TaskId::parse(t)),
        tasks_done: h
            .get("tasks_done")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        tasks_failed: h
            .get("tasks_failed")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    })
}

/// Reads a `task:<id>` hash; `None` when a required field is missing or malformed.
pub fn task(h: &HashMap<String, String>) -> Option<Task> {
    let text = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
    let json = |k: &str| text(k).and_then(|v| serde_json::from_str(&v).ok());
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
    let spec = TaskSpec {
        task_id: TaskId::parse(h.get("task_id")?)?,
        pool_name: h.get("pool_name")?.clone(),
        target_agent_id: text("target_agent_id").and_then(|a| AgentId::parse(&a)),
        priority: u8::try_from(num("priority")?).ok()?,
        input: json("input").unwrap_or(serde_json::Value::Null),
        max_attempts: u32::try_from(num("max_attempts")?).ok()?,
        timeout_secs: num("timeout_secs"),
        idempotency_key: text("idempotency_key"),
    };
    Some(Task {
        spec,
        status: h.get("status")?.parse().ok()?,
        agent_id: text("agent_id").and_then(|a| AgentId::parse(&a)),
        output: json("output"),
        error: text("error"),
        attempts: u32::try_from(num("attempts").unwrap_or(0)).ok()?,
        created_at: h.get("created_at").cloned().unwrap_or_default(),
        started_at: text("started_at"),
        finished_at: text("finished_at"),
    })
}

/// The 11 values `task_submit` takes for one task. Its creation time orders the queue; a
/// uuid v7 id carries it.
pub fn task_args(t: &Task) -> [String; 11] {
    let created_ms = t.spec.task_id.created_ms().unwrap_or(0);
    let s = &t.spec;
    [
        s.task_id.to_string(),
        s.pool_name.clone(),
        s.target_agent_id
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        s.priority.to_string(),
        s.input.to_string(),
        s.max_attempts.to_string(),
        s.timeout_secs.map(|t| t.to_string()).unwrap_or_default(),
        s.idempotency_key.clone().unwrap_or_default(),
        t.created_at.clone(),
        created_ms.to_string(),
        t.attempts.to_string(),
    ]
}

/// The fields of `pool:<p>:rules`.
pub fn rules_fields(r: &TaskRules) -> [(&'static str, u64); 7] {
    [
        ("timeout_ms", r.default_timeout_ms),
        ("lease_grace_ms", r.lease_grace_ms),
        ("retry_backoff_ms", r.retry_backoff_ms),
        ("retry_backoff_max_ms", r.retry_backoff_max_ms),
        ("circuit_failures", u64::from(r.circuit_failures)),
        ("circuit_cooldown_ms", r.circuit_cooldown_ms),
        ("final_ttl_ms", r.final_ttl_ms),
    ]
}

/// Reads a `process:<id>` hash; `None` when a required field is missing or malformed.
pub fn process(h: &HashMap<String, String>) -> Option<WorkerProcess> {
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(WorkerProcess {
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

/// The fields `register` writes for a worker, in hash order.
pub fn process_fields(p: &WorkerProcess) -> Vec<(&'static str, String)> {
    vec![
        ("process_id", p.process_id.to_string()),
        ("pool_name", p.pool_name.clone()),
        ("pid", p.pid.to_string()),
        ("host", p.host.clone()),
        ("max_agents", p.max_agents.to_string()),
        ("agent_count", p.agent_count.to_string()),
        ("status", p.status.to_string()),
        ("started_at", p.started_at.clone()),
        ("last_heartbeat", p.last_heartbeat.clone()),
        ("rss_bytes", p.rss_bytes.to_string()),
        ("cpu_percent", format!("{:.1}", p.cpu_percent)),
    ]
}

/// A flat `HGETALL` reply (field, value, field, value, …) as a map.
pub fn from_flat(flat: Vec<String>) -> HashMap<String, String> {
    let mut it = flat.into_iter();
    let mut map = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentpool_types::AgentState;

    #[test]
    fn agent_hash_needs_id_pool_status() {
        let mut h: HashMap<String, String> = [
            ("agent_id", "a1"),
            ("pool_name", "dev"),
            ("status", "idle"),
            ("metadata", r#"{"k":1}"#),
            ("restart", "temporary"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let a = agent(&h).unwrap();
        assert_eq!(a.status, AgentState::Idle);
        assert_eq!(a.spec.metadata["k"], 1);
        assert_eq!(
            a.spec.restart,
            Some(agentpool_types::RestartPolicy::Temporary)
        );
        assert_eq!(a.process_id, None);
        h.remove("status");
        assert!(agent(&h).is_none());
    }
}
