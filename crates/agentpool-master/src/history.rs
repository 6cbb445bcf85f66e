//! What workers report becomes history in the store: statuses and audit events, written in
//! batches off the request path.

use crate::master::Master;
use agentpool_store::{AgentEventKind, Update};
use agentpool_types::{AgentId, AgentState, Event, EventKind};
use std::sync::Arc;
use tokio::sync::mpsc;

impl Master {
    /// Consumes worker events: wakes whoever waits on them and records them.
    pub async fn pump_events(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.hub.wake(event.subject());
            // Restarts and failures are recorded with what the registry says: its restart
            // count, and whether the failure ended in `failed` or `quarantined`.
            let lookup = match &event.kind {
                EventKind::AgentRestarting {
                    agent_id, error, ..
                } => Some((agent_id, error, Some(AgentEventKind::Restarted))),
                EventKind::AgentFailed {
                    agent_id, error, ..
                } => Some((agent_id, error, None)),
                _ => None,
            };
            if let Some((id, error, kind)) = lookup {
                let master = self.clone();
                let (id, error) = (id.clone(), error.clone());
                tokio::spawn(async move { master.record_restart(&id, kind, Some(error)).await });
                continue;
            }
            self.record_event(&event);
        }
    }

    /// Records a restart or a failure with the registry's status and restart count, so the
    /// store's `status`, `restarts` and `last_error` stay true. Without a `kind`, the event
    /// follows the status: `failed` or `quarantined`.
    pub async fn record_restart(
        &self,
        id: &AgentId,
        kind: Option<AgentEventKind>,
        error: Option<String>,
    ) {
        let Ok(Some(agent)) = self.registry.agent(id).await else {
            return;
        };
        let kind = kind.unwrap_or(if agent.status == AgentState::Quarantined {
            AgentEventKind::Quarantined
        } else {
            AgentEventKind::Failed
        });
        self.record(Update::Status {
            agent_id: id.clone(),
            status: agent.status,
            process_id: agent.process_id.clone(),
            restarts: Some(agent.restarts),
            last_error: error.clone().filter(|e| !e.is_empty()),
            at: chrono::Utc::now(),
        });
        let detail = error.filter(|e| !e.is_empty()).unwrap_or_else(|| {
            agent
                .process_id
                .map(|p| format!("to worker {p}"))
                .unwrap_or_default()
        });
        self.record(Update::event(id, kind, detail));
    }

    /// Records a start or a stop; failures and restarts go through `record_restart`.
    fn record_event(&self, event: &Event) {
        let (agent, process, status, kind) = match &event.kind {
            EventKind::AgentStarted {
                agent_id,
                process_id,
            } => (
                agent_id,
                process_id,
                AgentState::Idle,
                AgentEventKind::Started,
            ),
            EventKind::AgentStopped {
                agent_id,
                process_id,
            } => (
                agent_id,
                process_id,
                AgentState::Stopped,
                AgentEventKind::Stopped,
            ),
            _ => return,
        };
        self.record(Update::status(agent, status, Some(process)));
        self.record(Update::event(agent, kind, format!("in worker {process}")));
    }
}
