//! Fixtures shared by the Redis-only and the every-backend registry tests.

use agentpool_types::{AgentId, AgentSpec, ProcessId, ProcessState, WorkerProcess};

/// A worker as it registers itself; `last_heartbeat` and `status` are left for the script.
pub fn worker_process(pool: &str, max_agents: u32) -> WorkerProcess {
    WorkerProcess {
        process_id: ProcessId::new(),
        pool_name: pool.to_owned(),
        pid: 4242,
        host: "test-host".to_owned(),
        max_agents,
        agent_count: 0,
        status: ProcessState::Starting,
        started_at: agentpool_types::now_rfc3339(),
        last_heartbeat: String::new(),
        rss_bytes: 0,
        cpu_percent: 0.0,
    }
}

/// A fresh agent of `pool`.
pub fn agent(pool: &str) -> AgentSpec {
    agent_with_id(pool, &AgentId::new())
}

/// The agent `id` of `pool`, as a move or a reschedule places it again.
pub fn agent_with_id(pool: &str, id: &AgentId) -> AgentSpec {
    AgentSpec {
        agent_id: id.clone(),
        pool_name: pool.to_owned(),
        role_type: "echo".to_owned(),
        name: "tester".to_owned(),
        metadata: serde_json::json!({"k": 1}),
        restart: None,
        autoscaled: false,
        secret_config: None,
    }
}
