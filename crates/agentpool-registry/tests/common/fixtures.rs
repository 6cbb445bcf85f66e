//! Fixtures shared by the Redis-only and the every-backend registry tests.

use agentpool_registry::Reservation;
use agentpool_types::{AgentId, Placement, ProcessId, ProcessState, WorkerProcess};

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

/// A reservation of a fresh agent.
pub fn reservation(pool: &str, placement: Placement) -> Reservation {
    Reservation {
        agent_id: AgentId::new(),
        pool: pool.to_owned(),
        placement,
        role: "echo".to_owned(),
        name: "tester".to_owned(),
        metadata: r#"{"k":1}"#.to_owned(),
        move_from: None,
        must_exist: false,
        restart: None,
    }
}
