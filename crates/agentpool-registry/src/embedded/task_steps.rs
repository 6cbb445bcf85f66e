//! The task steps, one critical section of [`EmbeddedState`] each, mirroring one Lua script
//! each: `task_submit`, `task_finish`, `agent_ready`, `task_tend`, `task_cancel`,
//! `task_retry`, and the autoscaler's `agent_retire`. The rules they share are in `tasks.rs`.

use super::state::EmbeddedState;
use super::tasks::{Entry, Now};
use crate::{Finished, Ready, Retirement, Tended};
use agentpool_types::{
    AgentId, AgentState, CommandKind, ProcessId, Task, TaskId, TaskOutcome, TaskReport, TaskState,
};
use std::collections::BTreeSet;

/// Why an expired lease failed an attempt, as the script words it.
const LEASE_EXPIRED: &str = "lease expired: its worker did not report the attempt in time";

impl EmbeddedState {
    /// `agent_retire.lua`: autoscaled agents idle long enough leave the idle set, marked
    /// `stopping`, longest idle first; the pool keeps `keep` agents not already stopping, and
    /// gives none back while tasks wait in its queue.
    pub fn retire_idle(&self, r: Retirement<'_>) -> Vec<AgentId> {
        let mut d = self.lock();
        let now = Now::new();
        let idle_ms = i64::try_from(r.idle_for.as_millis()).unwrap_or(i64::MAX);
        let sets = d.pool_tasks(r.pool);
        if sets.queue.len() > 0 {
            return Vec::new();
        }
        let candidates = sets.idle.until(now.ms.saturating_sub(idle_ms));
        let mut left = d.pool_agents.get(r.pool).map_or(0, |ids| {
            ids.iter()
                .filter(|id| {
                    d.agents
                        .get(*id)
                        .is_some_and(|a| a.status != AgentState::Stopping)
                })
                .count() as u64
        });
        let mut retired = Vec::new();
        for agent in candidates {
            if retired.len() as u64 >= r.most || left <= r.keep {
                break;
            }
            let waiting = d.agent_queues.get(&agent).is_some_and(|q| q.len() > 0);
            let Some(a) = d.agents.get_mut(&agent) else {
                continue;
            };
            if a.status != AgentState::Idle || !a.spec.autoscaled || waiting {
                continue;
            }
            a.status = AgentState::Stopping;
            a.updated_at.clone_from(&now.iso);
            d.pool_tasks(r.pool).idle.remove(&agent);
            retired.push(agent);
            left -= 1;
        }
        retired
    }

    /// `task_submit.lua`: records and queues new tasks (a known one is left as it is); idle
    /// agents take them at once, their workers told in the same step. Returns how many were new.
    pub fn submit_tasks(&self, tasks: &[Task]) -> u64 {
        let mut d = self.lock();
        let now = Now::new();
        let (mut added, mut pools) = (0, BTreeSet::new());
        for t in tasks {
            let id = t.id();
            if d.tasks.contains_key(id) {
                continue;
            }
            d.tasks.insert(id.clone(), Entry::submitted(t));
            d.enqueue(id);
            if t.spec.target_agent_id.is_some() {
                d.offer_to_target(id, &now);
            }
            pools.insert(t.spec.pool_name.clone());
            added += 1;
        }
        for pool in &pools {
            d.dispatch(pool, &now);
        }
        added
    }

    /// The task as `HGETALL task:<id>` reads it; `None` when unknown or expired.
    pub fn task(&self, id: &TaskId) -> Option<Task> {
        self.lock().tasks.get(id).map(|e| e.task.clone())
    }

    /// `task_finish.lua`: takes a worker's report when it is for the current attempt, then
    /// the agent goes on to its next task in the same step.
    pub fn finish_task(&self, report: &TaskReport) -> Finished {
        let mut d = self.lock();
        let now = Now::new();
        let (id, agent) = (&report.task_id, &report.agent_id);
        let current = d.tasks.get(id).filter(|e| {
            e.task.status == TaskState::Running
                && e.task.agent_id.as_ref() == Some(agent)
                && e.runs == report.attempt
        });
        let pool = current.map(|e| e.task.spec.pool_name.clone());
        if let Some(pool) = &pool {
            d.pool_tasks(pool).running.remove(id);
            end_attempt(&mut d, report, pool, &now);
        }
        // The agent goes on unless it broke (it restarts first), is no longer this worker's,
        // is being stopped, or holds another task (this report was stale).
        let goes_on = d.agents.get(agent).filter(|a| {
            a.process_id.as_ref() == Some(&report.process_id)
                && a.status == AgentState::Busy
                && a.current_task.as_ref().is_none_or(|t| t == id)
        });
        let mut next = None;
        if let Some(a) = goes_on {
            let agent_pool = a.spec.pool_name.clone();
            if matches!(report.outcome, TaskOutcome::AgentFailed(_)) {
                if let Some(a) = d.agents.get_mut(agent) {
                    a.current_task = None;
                }
            } else {
                next = d.free_agent(agent, &report.process_id, &agent_pool, &now);
            }
        }
        Finished {
            accepted: pool.is_some(),
            next,
        }
    }

    /// `agent_ready.lua`: the agent came up, idle, and takes the next task waiting for it or
    /// its pool; fenced as `agent_status` is.
    pub fn agent_ready(&self, process: &ProcessId, agent: &AgentId, epoch: Option<u64>) -> Ready {
        let mut d = self.lock();
        let now = Now::new();
        let Some(a) = d.agents.get(agent) else {
            return Ready::Fenced;
        };
        let fenced = a.process_id.as_ref() != Some(process)
            || epoch.is_some_and(|e| e != a.epoch)
            || a.status == AgentState::Stopping;
        if fenced {
            return Ready::Fenced;
        }
        let (epoch, pool) = (a.epoch, a.spec.pool_name.clone());
        // An attempt it still held died with it: retried at once, not left to its lease.
        d.reclaim(agent, "its agent restarted", &now);
        let run = d.free_agent(agent, process, &pool, &now);
        // As the Redis wrapper reads the reply: epoch 0 is the fenced answer.
        match (epoch, run) {
            (0, _) => Ready::Fenced,
            (epoch, None) => Ready::Idle { epoch },
            (epoch, Some(run)) => Ready::Run { epoch, run },
        }
    }

    /// `task_tend.lua`: retries whose backoff is over go back in line; attempts whose lease
    /// ran out are retried or failed; failed tasks that expired leave the dead set; then idle
    /// agents get what waits.
    pub fn tend_tasks(&self, pool: &str) -> Tended {
        let mut d = self.lock();
        let now = Now::new();
        let due = d.pool_tasks(pool).delayed.take_until(now.ms);
        for id in &due {
            d.enqueue(id);
            d.offer_to_target(id, &now);
        }
        let expired = d.pool_tasks(pool).running.take_until(now.ms);
        for id in &expired {
            let Some(e) = d.tasks.get_mut(id) else {
                continue;
            };
            e.task.error = Some(LEASE_EXPIRED.to_owned());
            // The agent is free again if its worker still holds it; a late report is dropped.
            if let Some(agent) = e.task.agent_id.clone()
                && let Some(a) = d.agents.get_mut(&agent)
                && a.current_task.as_ref() == Some(id)
            {
                a.current_task = None;
            }
            d.retry_or_fail(id, pool, false, &now);
        }
        // A failed task leaves the dead set when it expires, or the set would only grow.
        let ttl = d.rules(pool).final_ttl_ms;
        if ttl > 0 {
            let until = now
                .ms
                .saturating_sub(i64::try_from(ttl).unwrap_or(i64::MAX));
            d.pool_tasks(pool).dead.take_until(until);
        }
        d.dispatch(pool, &now);
        Tended {
            due: due.len() as u64,
            expired: expired.len() as u64,
        }
    }

    /// `task_cancel.lua`: a queued task is cancelled at once and never runs; a running one is
    /// marked and its worker told to stop it; a finished one stays as it is.
    pub fn cancel_task(&self, id: &TaskId) -> Option<TaskState> {
        let mut d = self.lock();
        let now = Now::new();
        let e = d.tasks.get_mut(id)?;
        let (status, pool) = (e.task.status, e.task.spec.pool_name.clone());
        match status {
            TaskState::Queued => {
                let target = e.task.spec.target_agent_id.clone();
                let sets = d.pool_tasks(&pool);
                sets.queue.remove(id);
                sets.delayed.remove(id);
                sets.asked.remove(id);
                if let Some(agent) = &target {
                    d.unask(agent, id);
                }
                d.finalize(id, TaskState::Cancelled, &now);
                d.announce(id, &now);
                return Some(TaskState::Cancelled);
            }
            TaskState::Running => {
                e.cancel = true;
                let (pid, agent) = (e.process_id.clone(), e.task.agent_id.clone());
                if let (Some(pid), Some(agent_id)) = (pid, agent) {
                    let kind = CommandKind::CancelTask {
                        task_id: id.clone(),
                        agent_id,
                    };
                    d.command(&pid, format!("{id}:cancel"), kind, &now);
                }
            }
            _ => {}
        }
        Some(status)
    }

    /// `task_retry.lua`: a failed task back in line with its attempts reset, out of the dead
    /// set and no longer expiring.
    pub fn retry_task(&self, id: &TaskId) -> Option<TaskState> {
        let mut d = self.lock();
        let now = Now::new();
        let e = d.tasks.get_mut(id)?;
        if e.task.status != TaskState::Failed {
            return Some(e.task.status);
        }
        let pool = e.task.spec.pool_name.clone();
        e.cancel = false;
        let t = &mut e.task;
        t.attempts = 0;
        (t.error, t.output, t.started_at, t.finished_at) = (None, None, None, None);
        d.expire(id, None);
        d.pool_tasks(&pool).dead.remove(id);
        d.enqueue(id);
        d.announce(id, &now);
        d.offer_to_target(id, &now);
        d.dispatch(&pool, &now);
        Some(TaskState::Queued)
    }
}

/// How a current attempt's report ends it (the first half of `task_finish.lua`).
fn end_attempt(d: &mut super::state::Data, report: &TaskReport, pool: &str, now: &Now) {
    let (id, agent) = (&report.task_id, &report.agent_id);
    let error = match &report.outcome {
        TaskOutcome::Succeeded(output) => {
            if let Some(e) = d.tasks.get_mut(id) {
                e.task.output = Some(output.clone());
                e.task.error = None;
            }
            d.finalize(id, TaskState::Succeeded, now);
            if let Some(a) = d.agents.get_mut(agent) {
                a.tasks_done += 1;
            }
            d.circuit_success(pool);
            d.announce(id, now);
            return;
        }
        TaskOutcome::Cancelled => {
            d.finalize(id, TaskState::Cancelled, now);
            d.announce(id, now);
            return;
        }
        TaskOutcome::Failed(error) | TaskOutcome::AgentFailed(error) => error,
    };
    if let Some(e) = d.tasks.get_mut(id) {
        // Redis stores an empty error as none.
        e.task.error = Some(error.clone()).filter(|e| !e.is_empty());
    }
    if let Some(a) = d.agents.get_mut(agent) {
        a.tasks_failed += 1;
    }
    d.circuit_failure(pool, now);
    d.retry_or_fail(id, pool, true, now);
}
