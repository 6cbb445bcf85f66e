//! The steps that move slots: reserve, release, drain, reap, and the pool counts that add them
//! up. Each is one critical section of [`EmbeddedState`], mirroring one Lua script, task parts
//! included: an agent that leaves a worker takes its attempt with it (`reclaim`).

use super::state::{Data, EmbeddedState, TOMBSTONE_TTL};
use super::tasks::Now;
use crate::{ReapMode, RegistryError, Reservation, Result};
use agentpool_types::{
    Agent, AgentId, AgentSpec, AgentState, Candidate, PoolCounts, ProcessId, TaskCounts, choose,
};
use std::collections::BTreeSet;
use std::time::Instant;

impl Data {
    /// Takes `agent` out of `pid`'s set; gives the slot back when `pid` is still in placement
    /// of `pool` (a draining worker is out of placement: its freed slot must not reappear).
    fn free_slot(&mut self, pid: &ProcessId, pool: &str, agent: &AgentId) {
        let removed = self
            .processes
            .get_mut(pid)
            .is_some_and(|p| p.agents.remove(agent));
        if removed && let Some(free) = self.placement.get_mut(pool).and_then(|z| z.get_mut(pid)) {
            *free += 1;
        }
    }
}

impl EmbeddedState {
    /// `reserve.lua`: one free slot by the pool's placement, idempotent for a retried request.
    pub fn reserve(&self, r: Reservation<'_>) -> Result<Option<ProcessId>> {
        let spec = r.agent;
        let (id, pool) = (&spec.agent_id, &spec.pool_name);
        let mut d = self.lock();
        let existing = d.agents.get(id);
        if r.must_exist && existing.is_none_or(|a| a.status == AgentState::Stopping) {
            return Err(RegistryError::AgentGone);
        }
        // A retried request must not take a second slot.
        if let Some(current) = existing.and_then(|a| a.process_id.clone())
            && Some(&current) != r.move_from
            && d.processes
                .get(&current)
                .is_some_and(|p| p.agents.contains(id))
        {
            return Ok(Some(current));
        }
        let candidates: Vec<Candidate> = d
            .placement
            .get(pool)
            .into_iter()
            .flatten()
            .map(|(id, free)| Candidate {
                process_id: id.clone(),
                free: u32::try_from(*free).unwrap_or(0),
            })
            .collect();
        // The pick comes before the move gives its old slot back, as in the script.
        let Some(pid) = choose(&candidates, r.placement).cloned() else {
            return Ok(None);
        };
        let now = Now::new();
        // A move stops the agent on its old worker: the attempt it was running is retried.
        if let Some(from) = r.move_from {
            d.reclaim(id, &format!("its agent moved off worker {from}"), &now);
            d.pool_tasks(pool).idle.remove(id);
            d.free_slot(from, pool, id);
        }
        if let Some(free) = d.placement.get_mut(pool).and_then(|z| z.get_mut(&pid)) {
            *free -= 1;
        }
        if let Some(p) = d.processes.get_mut(&pid) {
            p.agents.insert(id.clone());
        }
        d.pool_agents
            .entry(pool.clone())
            .or_default()
            .insert(id.clone());
        let now = now.iso;
        let agent = d.agents.entry(id.clone()).or_insert_with(|| Agent {
            spec: spec.clone(),
            process_id: None,
            status: AgentState::Pending,
            restarts: 0,
            registered_at: now.clone(),
            updated_at: String::new(),
            error: None,
            epoch: 0,
            current_task: None,
            tasks_done: 0,
            tasks_failed: 0,
        });
        // Placing an orphan again is a restart: count it in the same step.
        if agent.status == AgentState::Orphaned {
            agent.restarts += 1;
        }
        // The script keeps a stored restart policy when the reservation names none, and a
        // stored autoscaled mark.
        let restart = spec.restart.or(agent.spec.restart);
        let autoscaled = spec.autoscaled || agent.spec.autoscaled;
        agent.spec = AgentSpec {
            restart,
            autoscaled,
            ..spec.clone()
        };
        agent.process_id = Some(pid.clone());
        agent.status = AgentState::Pending;
        agent.updated_at = now;
        agent.epoch += 1;
        Ok(Some(pid))
    }

    /// `release.lua`: gives the agent's slot back and removes it; `None` when unknown. A task
    /// it was running is retried elsewhere; tasks waiting for it alone fail. Returns the agent
    /// as it was before the step.
    pub fn release(&self, id: &AgentId) -> Option<Agent> {
        let mut d = self.lock();
        let agent = d.agents.get(id)?.clone();
        let pool = &agent.spec.pool_name;
        let now = Now::new();
        d.reclaim(id, "its agent was terminated", &now);
        d.fail_asked(id, pool, &now);
        d.fail_delayed(&BTreeSet::from([id.clone()]), pool, &now);
        d.pool_tasks(pool).idle.remove(id);
        d.agents.remove(id);
        if let Some(pid) = &agent.process_id {
            d.free_slot(pid, &agent.spec.pool_name, id);
        }
        if let Some(set) = d.pool_agents.get_mut(&agent.spec.pool_name) {
            set.remove(id);
        }
        Some(agent)
    }

    /// `drain.lua`: out of placement and `draining`, in one step with the emptiness check.
    pub fn drain(&self, id: &ProcessId, only_if_empty: bool) -> Option<Vec<AgentId>> {
        let mut d = self.lock();
        let p = d.processes.get_mut(id)?;
        if only_if_empty && !p.agents.is_empty() {
            return None;
        }
        p.record.status = agentpool_types::ProcessState::Draining;
        let (pool, agents) = (
            p.record.pool_name.clone(),
            p.agents.iter().cloned().collect(),
        );
        if let Some(z) = d.placement.get_mut(&pool) {
            z.remove(id);
        }
        Some(agents)
    }

    /// `undrain.lua`: a draining worker back in placement with the slots its agents leave.
    pub fn undrain(&self, id: &ProcessId) -> bool {
        let mut d = self.lock();
        let Some(p) = d.processes.get_mut(id) else {
            return false;
        };
        if p.record.status != agentpool_types::ProcessState::Draining {
            return false;
        }
        p.record.status = agentpool_types::ProcessState::Running;
        let free = i64::from(p.record.max_agents) - p.agents.len() as i64;
        let pool = p.record.pool_name.clone();
        d.placement
            .entry(pool)
            .or_default()
            .insert(id.clone(), free);
        true
    }

    /// `reap.lua`: removes the worker; its agents (those still its own) become orphans or are
    /// deleted. A crash (orphan) leaves a tombstone so the worker, should it wake up, learns it
    /// was reaped rather than forgotten. The attempts its agents were running are retried
    /// elsewhere at once; agents deleted with it fail the tasks only they may run.
    pub fn reap(&self, id: &ProcessId, mode: ReapMode) -> Vec<AgentId> {
        let mut d = self.lock();
        let Some(p) = d.processes.remove(id) else {
            return Vec::new();
        };
        let pool = p.record.pool_name;
        let now = Now::new();
        let why = match mode {
            ReapMode::Orphan => format!("its worker {id} died"),
            ReapMode::Delete => format!("its worker {id} was stopped"),
        };
        let (mut held, mut gone) = (Vec::new(), BTreeSet::new());
        for agent_id in p.agents {
            // An agent that already moved on belongs to its new worker; leave it alone.
            let Some(agent_pool) = d
                .agents
                .get(&agent_id)
                .filter(|a| a.process_id.as_ref() == Some(id))
                .map(|a| a.spec.pool_name.clone())
            else {
                continue;
            };
            d.reclaim(&agent_id, &why, &now);
            d.pool_tasks(&agent_pool).idle.remove(&agent_id);
            match mode {
                ReapMode::Delete => {
                    d.fail_asked(&agent_id, &agent_pool, &now);
                    gone.insert(agent_id.clone());
                    d.agents.remove(&agent_id);
                    if let Some(set) = d.pool_agents.get_mut(&agent_pool) {
                        set.remove(&agent_id);
                    }
                }
                ReapMode::Orphan => {
                    if let Some(a) = d.agents.get_mut(&agent_id) {
                        a.status = AgentState::Orphaned;
                        a.process_id = None;
                        a.updated_at.clone_from(&now.iso);
                    }
                }
            }
            held.push(agent_id);
        }
        d.fail_delayed(&gone, &pool, &now);
        if let Some(z) = d.placement.get_mut(&pool) {
            z.remove(id);
        }
        if mode == ReapMode::Orphan {
            d.tombstones
                .insert(id.clone(), Instant::now() + TOMBSTONE_TTL);
        }
        held
    }

    /// `pool_counts.lua`, with its exact arithmetic: free slots are summed over scores 1 to the
    /// pool's capacity, and a worker is active while its score is below that capacity.
    /// Workers in placement whose score is their pool's capacity: no agent, nothing reserved.
    pub fn empty_workers(&self, pools: &[(String, u32)]) -> Vec<(String, ProcessId)> {
        let d = self.lock();
        let mut out = Vec::new();
        for (pool, cap) in pools {
            let Some(z) = d.placement.get(pool) else {
                continue;
            };
            let mut ids: Vec<&ProcessId> = z
                .iter()
                .filter(|(_, score)| **score == i64::from(*cap))
                .map(|(id, _)| id)
                .collect();
            ids.sort();
            out.extend(ids.into_iter().map(|id| (pool.clone(), id.clone())));
        }
        out
    }

    pub fn pool_counts(&self, pools: &[(String, u32)]) -> Vec<PoolCounts> {
        let d = self.lock();
        pools
            .iter()
            .map(|(pool, cap)| {
                let cap = i64::from(*cap);
                let scores: Vec<i64> = d
                    .placement
                    .get(pool)
                    .map(|z| z.values().copied().collect())
                    .unwrap_or_default();
                let count = scores.len() as u64;
                PoolCounts {
                    pool: pool.clone(),
                    process_count: count,
                    total_capacity: count * cap as u64,
                    available_capacity: scores
                        .iter()
                        .filter(|s| (1..=cap).contains(*s))
                        .sum::<i64>() as u64,
                    agent_count: d.pool_agents.get(pool).map_or(0, |s| s.len() as u64),
                    active_worker_processes: scores.iter().filter(|s| **s < cap).count() as u64,
                    tasks: d.pool_tasks.get(pool).map(task_counts).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The queue's numbers of `pool_counts.lua`: waiting anywhere (the pool's queue, an agent's,
/// the retry schedule), running (one per busy agent), and the circuit.
fn task_counts(t: &super::tasks::PoolTasks) -> TaskCounts {
    TaskCounts {
        queued_tasks: t.queue.len() + t.asked.len() + t.delayed.len(),
        running_tasks: t.running.len(),
        busy_agents: t.running.len(),
        circuit: t.circuit.state,
    }
}
