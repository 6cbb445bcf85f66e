//! Commands from `process:<id>:commands` and `pool:<pool>:commands`. A lost command costs only
//! latency: the next heartbeat's reconcile does the same work from the registry.

use crate::host::AgentHost;
use agentpool_types::{Command, CommandKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Command>,
    host: AgentHost,
    shutdown: CancellationToken,
) {
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => match cmd { Some(c) => c, None => return },
            _ = shutdown.cancelled() => return,
        };
        tracing::debug!(id = %cmd.id, ?cmd.kind, "command");
        match cmd.kind {
            CommandKind::Spawn(spec) => host.start(spec),
            CommandKind::RunTask(run) => host.deliver(run),
            CommandKind::CancelTask { task_id, agent_id } => host.cancel_task(&agent_id, &task_id),
            CommandKind::Terminate { agent_id, graceful } => host.stop(&agent_id, graceful),
            CommandKind::Shutdown { .. } => shutdown.cancel(),
        }
    }
}
