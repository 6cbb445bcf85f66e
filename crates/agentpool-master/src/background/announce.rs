//! What happened, told to the event feed and counted in the metrics: worker events as the
//! history pump receives them, and what the master itself does (reaps, submits, autoscale).

use crate::core::Core;
use agentpool_types::{AgentState, Event, EventKind, ProcessId, TaskChange, TaskState};
use metrics::{counter, histogram};
use serde_json::json;

/// A worker's event.
pub(crate) fn worker_event(core: &Core, event: &Event) {
    let feed = &core.feed;
    match &event.kind {
        EventKind::ProcessStarted { process_id, pid } => {
            let pool = feed.pool_of(process_id);
            let data = json!({ "process_id": process_id, "pid": pid });
            feed.publish("process_started", pool.as_deref(), data);
        }
        EventKind::ProcessStopped { process_id } => {
            let pool = feed.pool_of(process_id);
            feed.publish(
                "process_stopped",
                pool.as_deref(),
                json!({ "process_id": process_id }),
            );
            feed.forget_process(process_id);
        }
        EventKind::AgentStarted {
            agent_id,
            process_id,
        } => {
            let data = json!({ "agent_id": agent_id, "process_id": process_id });
            feed.publish("agent_started", feed.pool_of(process_id).as_deref(), data);
        }
        EventKind::AgentStopped {
            agent_id,
            process_id,
        } => {
            let data = json!({ "agent_id": agent_id, "process_id": process_id });
            feed.publish("agent_stopped", feed.pool_of(process_id).as_deref(), data);
        }
        EventKind::AgentRestarting {
            agent_id,
            process_id,
            error,
        } => {
            let pool = feed.pool_of(process_id).unwrap_or_default();
            counter!("agentpool_agent_restarts_total", "pool" => pool.clone()).increment(1);
            let data = json!({ "agent_id": agent_id, "process_id": process_id, "error": error });
            feed.publish("agent_restarted", Some(&pool), data);
        }
        // Told once the registry says whether it failed or was quarantined: `agent_failure`.
        EventKind::AgentFailed { .. } | EventKind::TaskProgress { .. } => {}
        EventKind::TaskChanged(change) => task_changed(core, change),
    }
}

/// An agent that failed for good: `failed`, or `quarantined` after a crash loop.
pub(crate) fn agent_failure(core: &Core, event: &Event, status: Option<AgentState>, pool: &str) {
    let EventKind::AgentFailed {
        agent_id,
        process_id,
        error,
    } = &event.kind
    else {
        return;
    };
    let (kind, metric) = if status == Some(AgentState::Quarantined) {
        ("agent_quarantined", "agentpool_agent_quarantines_total")
    } else {
        ("agent_failed", "agentpool_agent_failures_total")
    };
    counter!(metric, "pool" => pool.to_owned()).increment(1);
    let data = json!({ "agent_id": agent_id, "process_id": process_id, "error": error });
    core.feed.publish(kind, Some(pool), data);
}

/// The pool of the worker an event came from, as far as this master knows it.
pub(crate) fn pool_of(core: &Core, process: &ProcessId) -> String {
    core.feed.pool_of(process).unwrap_or_default()
}

fn task_changed(core: &Core, c: &TaskChange) {
    let pool = Some(c.pool_name.as_str());
    let labels = [("pool", c.pool_name.clone())];
    match c.status {
        TaskState::Queued => {
            core.task_clock.queued(&c.task_id);
            let data = json!({ "task_id": c.task_id, "attempts": c.attempts, "error": c.error });
            core.feed.publish("task_queued", pool, data);
        }
        TaskState::Running => {
            if let Some(waited) = core.task_clock.left_queue(&c.task_id) {
                histogram!("agentpool_task_queue_wait_seconds", &labels)
                    .record(waited.as_secs_f64());
            }
            let data =
                json!({ "task_id": c.task_id, "agent_id": c.agent_id, "attempts": c.attempts });
            core.feed.publish("task_started", pool, data);
        }
        status => {
            core.task_clock.forget(&c.task_id);
            if let Some(ran) = run_time(c) {
                histogram!("agentpool_task_run_seconds", &labels).record(ran);
            }
            counter!("agentpool_tasks_finished_total", "pool" => c.pool_name.clone(), "outcome" => status.as_str())
                .increment(1);
            let data = json!({
                "task_id": c.task_id, "agent_id": c.agent_id, "status": status,
                "attempts": c.attempts, "error": c.error,
            });
            core.feed.publish("task_finished", pool, data);
        }
    }
}

/// Seconds from the attempt's start to its end, both by the registry's clock.
fn run_time(c: &TaskChange) -> Option<f64> {
    let parse = |t: &Option<String>| chrono::DateTime::parse_from_rfc3339(t.as_deref()?).ok();
    let (start, end) = (parse(&c.started_at)?, parse(&c.finished_at)?);
    let ms = (end - start).num_milliseconds();
    (ms >= 0).then(|| ms as f64 / 1000.0)
}

/// Tasks the master queued (submit, batch, ask, broadcast): the registry announces later
/// steps, not this first one.
pub(crate) fn tasks_queued(core: &Core, tasks: &[agentpool_types::Task]) {
    for t in tasks {
        let spec = &t.spec;
        core.task_clock.queued(&spec.task_id);
        counter!("agentpool_tasks_submitted_total", "pool" => spec.pool_name.clone()).increment(1);
        let data = json!({ "task_id": spec.task_id, "attempts": t.attempts });
        core.feed
            .publish("task_queued", Some(&spec.pool_name), data);
    }
}

/// A worker reaped: `cause` is `stale_heartbeat`, `exited` or `disconnected`.
pub(crate) fn reaped(core: &Core, process: &ProcessId, cause: &'static str, agents: usize) {
    let pool = pool_of(core, process);
    counter!("agentpool_worker_reaps_total", "pool" => pool.clone(), "cause" => cause).increment(1);
    let data = json!({ "process_id": process, "cause": cause, "orphaned_agents": agents });
    core.feed.publish("process_reaped", Some(&pool), data);
    core.feed.forget_process(process);
}
