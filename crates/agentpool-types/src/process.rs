//! One worker process as the registry shows it (`process:<id>`).

use crate::{ProcessId, ProcessState};
use serde::{Deserialize, Serialize};

/// One worker process as the registry shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
