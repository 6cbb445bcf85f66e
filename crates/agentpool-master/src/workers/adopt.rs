//! Adoption: a master that starts while live workers exist takes them over instead of
//! starting new ones. Their agents keep running in the same processes.
//!
//! An adopted worker is not this master's child, so its exit is seen by watching its pid;
//! it is still stopped through its process group and drained like any other.

use super::Supervisor;
use agentpool_types::ProcessId;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How often an adopted worker's pid is checked.
const PID_POLL: Duration = Duration::from_millis(100);

impl Supervisor {
    /// Adopts every registered worker with a fresh heartbeat whose pid on this host is that
    /// worker. Returns how many were adopted.
    pub async fn adopt_all(self: &Arc<Self>) -> Result<usize, crate::MasterError> {
        let stale: HashSet<ProcessId> = self
            .core
            .registry
            .stale(self.core.config.heartbeat_timeout)
            .await?
            .stale
            .into_iter()
            .collect();
        let mut adopted = 0;
        for p in self.core.registry.processes().await? {
            let ours = self.core.pool(&p.pool_name).is_ok() && !stale.contains(&p.process_id);
            if !ours || !is_worker(p.pid, &p.process_id) || self.state(&p.process_id).is_some() {
                continue;
            }
            self.adopt_pid(p.process_id.clone(), &p.pool_name, p.pid);
            tracing::info!(process_id = %p.process_id, pid = p.pid, pool = %p.pool_name, agents = p.agent_count, "adopted live worker");
            adopted += 1;
        }
        Ok(adopted)
    }

    fn adopt_pid(self: &Arc<Self>, id: ProcessId, pool: &str, pid: u32) {
        let watched = id.clone();
        self.watch(id, pool, pid, async move {
            while is_worker(pid, &watched) {
                tokio::time::sleep(PID_POLL).await;
            }
            Err(std::io::Error::other(
                "adopted worker exited; status unknown",
            ))
        });
    }
}

/// Whether `pid` is alive (not a zombie) and is the worker `id`, judged by its command line,
/// so a recycled pid is never taken for the worker.
fn is_worker(pid: u32, id: &ProcessId) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true);
    !zombie
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == id.as_str().as_bytes())
}
