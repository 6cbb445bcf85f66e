//! What workers report becomes history in the store: statuses and audit events, written in
//! batches off the request path.

use crate::master::Master;
use agentpool_store::{AgentEventKind, Update};
use agentpool_types::{AgentState, Event, EventKind};
use std::sync::Arc;
use tokio::sync::mpsc;

impl Master {
    /// Consumes worker events: wakes whoever waits on them and records them.
    pub async fn pump_events(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.hub.wake(event.subject());
            self.record_event(&event);
        }
    }

    fn record_event(&self, event: &Event) {
        let (agent, process, status, kind, detail) = match &event.kind {
            EventKind::AgentStarted {
                agent_id,
                process_id,
            } => (
                agent_id,
                process_id,
                AgentState::Idle,
                AgentEventKind::Started,
                String::new(),
            ),
            EventKind::AgentStopped {
                agent_id,
                process_id,
            } => (
                agent_id,
                process_id,
                AgentState::Stopped,
                AgentEventKind::Stopped,
                String::new(),
            ),
            EventKind::AgentFailed {
                agent_id,
                process_id,
                error,
            } => (
                agent_id,
                process_id,
                AgentState::Failed,
                AgentEventKind::Failed,
                error.clone(),
            ),
            EventKind::ProcessStarted { .. } | EventKind::ProcessStopped { .. } => return,
        };
        let mut status_update = Update::status(agent, status, Some(process));
        if let (Update::Status { last_error, .. }, false) = (&mut status_update, detail.is_empty())
        {
            *last_error = Some(detail.clone());
        }
        self.record(status_update);
        let detail = if detail.is_empty() {
            format!("in worker {process}")
        } else {
            detail
        };
        self.record(Update::event(agent, kind, detail));
    }
}
