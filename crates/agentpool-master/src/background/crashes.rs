//! Crashes: a worker the supervisor saw exit unasked, or (embedded mode) whose socket closed,
//! is reaped at once and its agents are placed again, without waiting for its heartbeat to
//! go stale. Both signals may come for one worker; the second reap finds nothing.

use crate::agents::Agents;
use crate::core::Core;
use crate::workers::Supervisor;
use agentpool_registry::ReapMode;
use agentpool_types::ProcessId;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// Where a crash was noticed.
pub(crate) struct Sources {
    /// Exits the supervisor did not ask for.
    pub exits: UnboundedReceiver<ProcessId>,
    /// Embedded mode: workers whose socket closed.
    pub disconnects: Option<UnboundedReceiver<ProcessId>>,
}

pub(crate) async fn run(
    core: Arc<Core>,
    supervisor: Arc<Supervisor>,
    agents: Arc<Agents>,
    mut from: Sources,
) {
    loop {
        let (id, disconnect) = tokio::select! {
            Some(id) = from.exits.recv() => (id, false),
            Some(id) = recv(&mut from.disconnects) => (id, true),
            _ = core.stopping.cancelled() => return,
            else => return,
        };
        // A socket closes when a worker exits for any reason: only an exit nobody asked for
        // is a crash.
        if disconnect && supervisor.exit_expected(&id) {
            continue;
        }
        match core.registry.reap(&id, ReapMode::Orphan).await {
            Ok(orphans) => {
                let cause = if disconnect { "disconnected" } else { "exited" };
                super::announce::reaped(&core, &id, cause, orphans.len());
                if !orphans.is_empty() {
                    tracing::warn!(process_id = %id, agents = orphans.len(), "reaped crashed worker");
                    agents.reschedule(orphans, &id);
                }
            }
            Err(e) => tracing::error!(process_id = %id, error = %e, "cannot reap crashed worker"),
        }
    }
}

async fn recv(rx: &mut Option<UnboundedReceiver<ProcessId>>) -> Option<ProcessId> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
