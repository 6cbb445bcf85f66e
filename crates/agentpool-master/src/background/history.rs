//! What workers report becomes history in the store: statuses and audit events, written in
//! batches off the request path. Every event also wakes whoever waits on its subject.

use super::announce;
use crate::core::Core;
use agentpool_store::{AgentEventKind, Update};
use agentpool_types::{Agent, AgentId, AgentState, Event, EventKind};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Consumes worker events until the stream ends. It outlives the shutdown token on purpose:
/// the agents stopped by a shutdown still report, and their last status is worth keeping.
pub(crate) async fn pump(core: Arc<Core>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        core.hub.wake(event.subject());
        announce::worker_event(&core, &event);
        // Restarts and failures are recorded with what the registry says: its restart count,
        // and whether the failure ended in `failed` or `quarantined`.
        match &event.kind {
            EventKind::AgentRestarting {
                agent_id, error, ..
            } => spawn_lookup(
                &core,
                &event,
                agent_id,
                error,
                Some(AgentEventKind::Restarted),
            ),
            EventKind::AgentFailed {
                agent_id, error, ..
            } => spawn_lookup(&core, &event, agent_id, error, None),
            EventKind::TaskChanged(change) => {
                core.record(Update::Task(change.clone()));
                let _ = core.task_events.send(event.clone());
            }
            EventKind::TaskProgress { .. } => {
                let _ = core.task_events.send(event.clone());
            }
            _ => record_event(&core, &event),
        }
    }
}

fn spawn_lookup(
    core: &Arc<Core>,
    event: &Event,
    id: &AgentId,
    error: &str,
    kind: Option<AgentEventKind>,
) {
    let (core, event, id, error) = (core.clone(), event.clone(), id.clone(), error.to_owned());
    tokio::spawn(async move {
        let agent = core.registry.agent(&id).await.ok().flatten();
        if kind.is_none() {
            let pool = match (&agent, &event.kind) {
                (Some(a), _) => a.spec.pool_name.clone(),
                (None, EventKind::AgentFailed { process_id, .. }) => {
                    announce::pool_of(&core, process_id)
                }
                _ => String::new(),
            };
            announce::agent_failure(&core, &event, agent.as_ref().map(|a| a.status), &pool);
        }
        if let Some(agent) = agent {
            record_failure(&core, &id, &agent, kind, error);
        }
    });
}

/// Records a restart or a failure with the registry's status and restart count, so the
/// store's `status`, `restarts` and `last_error` stay true. Without a `kind`, the event
/// follows the status: `failed` or `quarantined`.
fn record_failure(
    core: &Core,
    id: &AgentId,
    agent: &Agent,
    kind: Option<AgentEventKind>,
    error: String,
) {
    let kind = kind.unwrap_or(if agent.status == AgentState::Quarantined {
        AgentEventKind::Quarantined
    } else {
        AgentEventKind::Failed
    });
    let error = Some(error).filter(|e| !e.is_empty());
    core.record(Update::Status {
        agent_id: id.clone(),
        status: agent.status,
        process_id: agent.process_id.clone(),
        restarts: Some(agent.restarts),
        last_error: error.clone(),
        at: chrono::Utc::now(),
    });
    core.record(Update::event(id, kind, error.unwrap_or_default()));
}

/// Records a start or a stop.
fn record_event(core: &Core, event: &Event) {
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
    core.record(Update::status(agent, status, Some(process)));
    core.record(Update::event(agent, kind, format!("in worker {process}")));
}
