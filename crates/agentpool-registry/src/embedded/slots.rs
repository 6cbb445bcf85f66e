//! The steps that move slots: reserve, release, drain, reap, and the pool counts that add them
//! up. Each is one critical section of [`EmbeddedState`], mirroring one Lua script.

use super::state::{Data, EmbeddedState, TOMBSTONE_TTL};
use crate::{PoolCounts, ReapMode, RegistryError, Reservation, Result};
use agentpool_types::{Agent, AgentId, AgentState, Candidate, ProcessId, choose, now_rfc3339};
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
    pub fn reserve(&self, r: &Reservation) -> Result<Option<ProcessId>> {
        let mut d = self.lock();
        let existing = d.agents.get(&r.agent_id);
        if r.must_exist && existing.is_none() {
            return Err(RegistryError::AgentGone);
        }
        // A retried request must not take a second slot.
        if let Some(current) = existing.and_then(|a| a.process_id.clone())
            && Some(&current) != r.move_from.as_ref()
            && d.processes
                .get(&current)
                .is_some_and(|p| p.agents.contains(&r.agent_id))
        {
            return Ok(Some(current));
        }
        let candidates: Vec<Candidate> = d
            .placement
            .get(&r.pool)
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
        if let Some(from) = &r.move_from {
            d.free_slot(from, &r.pool, &r.agent_id);
        }
        if let Some(free) = d.placement.get_mut(&r.pool).and_then(|z| z.get_mut(&pid)) {
            *free -= 1;
        }
        if let Some(p) = d.processes.get_mut(&pid) {
            p.agents.insert(r.agent_id.clone());
        }
        d.pool_agents
            .entry(r.pool.clone())
            .or_default()
            .insert(r.agent_id.clone());
        let now = now_rfc3339();
        let agent = d.agents.entry(r.agent_id.clone()).or_insert_with(|| Agent {
            agent_id: r.agent_id.clone(),
            pool_name: r.pool.clone(),
            role_type: String::new(),
            name: String::new(),
            process_id: None,
            status: AgentState::Pending,
            restarts: 0,
            registered_at: now.clone(),
            updated_at: String::new(),
            metadata: serde_json::Value::Null,
            error: None,
            restart: None,
            epoch: 0,
        });
        // Placing an orphan again is a restart: count it in the same step.
        if agent.status == AgentState::Orphaned {
            agent.restarts += 1;
        }
        agent.pool_name.clone_from(&r.pool);
        agent.role_type.clone_from(&r.role);
        agent.name.clone_from(&r.name);
        agent.process_id = Some(pid.clone());
        agent.status = AgentState::Pending;
        agent.metadata = serde_json::from_str(&r.metadata).unwrap_or(serde_json::Value::Null);
        agent.updated_at = now;
        agent.epoch += 1;
        if r.restart.is_some() {
            agent.restart = r.restart;
        }
        Ok(Some(pid))
    }

    /// `release.lua`: gives the agent's slot back and removes it; `None` when unknown.
    pub fn release(&self, id: &AgentId) -> Option<Agent> {
        let mut d = self.lock();
        let agent = d.agents.remove(id)?;
        if let Some(pid) = &agent.process_id {
            d.free_slot(pid, &agent.pool_name, id);
        }
        if let Some(set) = d.pool_agents.get_mut(&agent.pool_name) {
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

    /// `reap.lua`: removes the worker; its agents (those still its own) become orphans or are
    /// deleted. A crash (orphan) leaves a tombstone so the worker, should it wake up, learns it
    /// was reaped rather than forgotten.
    pub fn reap(&self, id: &ProcessId, mode: ReapMode) -> Vec<AgentId> {
        let mut d = self.lock();
        let Some(p) = d.processes.remove(id) else {
            return Vec::new();
        };
        let pool = p.record.pool_name;
        let now = now_rfc3339();
        let mut held = Vec::new();
        for agent_id in p.agents {
            let Some(a) = d.agents.get_mut(&agent_id) else {
                continue;
            };
            // An agent that already moved on belongs to its new worker; leave it alone.
            if a.process_id.as_ref() != Some(id) {
                continue;
            }
            match mode {
                ReapMode::Delete => {
                    d.agents.remove(&agent_id);
                    if let Some(set) = d.pool_agents.get_mut(&pool) {
                        set.remove(&agent_id);
                    }
                }
                ReapMode::Orphan => {
                    a.status = AgentState::Orphaned;
                    a.process_id = None;
                    a.updated_at.clone_from(&now);
                }
            }
            held.push(agent_id);
        }
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
                }
            })
            .collect()
    }
}
