//! Task attempts reaching agents: by a `run_task` command, or, when that was lost, by the
//! heartbeat's reconcile (the registry says which attempt each agent holds). An attempt
//! delivered both ways runs once. Cancels reach the attempt in hand.

use super::AgentHost;
use agentpool_registry::Holding;
use agentpool_types::{AgentId, TaskId, TaskRun};

impl AgentHost {
    /// Hands an attempt to its agent, once.
    pub fn deliver(&self, run: TaskRun) {
        let slots = self.slots();
        let Some(slot) = slots.running.get(&run.agent_id) else {
            tracing::warn!(agent_id = %run.agent_id, task_id = %run.task_id, "a task for an agent not running here: left for its lease to run out");
            return;
        };
        if !slot.running.first_delivery(&run) {
            return;
        }
        match &slot.inbox {
            Some(inbox) if inbox.send(run.clone()).is_ok() => {}
            _ => {
                tracing::warn!(agent_id = %run.agent_id, task_id = %run.task_id, "agent not ready for the task")
            }
        }
    }

    /// Stops the attempt of `task` that `agent` has in hand; it reports `cancelled`.
    pub fn cancel_task(&self, agent: &AgentId, task: &TaskId) {
        let slots = self.slots();
        let cancelled = slots
            .running
            .get(agent)
            .is_some_and(|s| s.running.cancel(task));
        if !cancelled {
            tracing::debug!(agent_id = %agent, task_id = %task, "cancel for an attempt not in hand");
        }
    }

    /// Runs the attempts the registry says agents here hold and that never reached them (a
    /// lost command). Attempts they have, or had, are left alone.
    pub async fn reconcile_tasks(&self, holding: &[Holding]) {
        for h in holding {
            let known = {
                let slots = self.slots();
                let Some(slot) = slots.running.get(&h.agent_id) else {
                    continue;
                };
                let current = slot.running.current();
                current.is_some_and(|r| r.task_id == h.task_id && r.attempt == h.attempt)
            };
            if known {
                continue;
            }
            match self.control.task(&h.task_id).await {
                Ok(Some(task)) => {
                    let timeout = task
                        .spec
                        .timeout_secs
                        .map(|s| s * 1000)
                        .unwrap_or_else(|| self.handler.timeout().as_millis() as u64);
                    self.deliver(TaskRun {
                        task_id: h.task_id.clone(),
                        agent_id: h.agent_id.clone(),
                        attempt: h.attempt,
                        timeout_ms: timeout,
                        input: task.spec.input,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(task_id = %h.task_id, error = %e, "reconcile: cannot read task")
                }
            }
        }
    }
}
