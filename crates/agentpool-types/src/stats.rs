//! The `/pools` row, and what the registry counts for it.

use crate::{Autoscale, AutoscaleView, TaskCounts};
use serde::{Deserialize, Serialize};

/// Whether a pool can take an agent right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// Has a free slot.
    Ready,
    /// No free slot, no worker starting, and `max_processes` reached.
    Full,
    /// Workers are starting for waiting spawns.
    Scaling,
}

/// What one pool's registry entries add up to, counted in one round trip for all pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolCounts {
    pub pool: String,
    pub process_count: u64,
    pub total_capacity: u64,
    pub available_capacity: u64,
    pub agent_count: u64,
    pub active_worker_processes: u64,
    pub tasks: TaskCounts,
}

/// Statistics of one pool, with the field names users already read from `/pools`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolStats {
    pub pool_name: String,
    pub process_count: u64,
    pub total_capacity: u64,
    pub used_capacity: u64,
    pub available_capacity: u64,
    pub agent_count: u64,
    pub utilization: f64,
    pub active_worker_processes: u64,
    pub pending_spawns: u64,
    pub state: PoolState,
    #[serde(flatten)]
    pub tasks: TaskCounts,
    /// Agents the backlog calls for, in an autoscaled pool; `null` in one sized by hand.
    pub desired_agents: Option<u64>,
    /// The autoscaling bounds; `null` in a pool sized by hand.
    pub autoscale: Option<AutoscaleView>,
}

impl PoolStats {
    /// The row of a pool with this autoscaling rule: what it wants given its backlog.
    pub fn autoscaled(mut self, rule: Option<&Autoscale>) -> Self {
        if let Some(rule) = rule {
            let t = &self.tasks;
            self.desired_agents = Some(rule.desired(t.queued_tasks, t.running_tasks));
            self.autoscale = Some(rule.view());
        }
        self
    }

    /// Derives the computed fields from what the registry counted and what the master knows:
    /// spawns waiting for room, and whether the pool may start another worker.
    pub fn new(counts: PoolCounts, pending_spawns: u64, can_grow: bool) -> Self {
        let used_capacity = counts
            .total_capacity
            .saturating_sub(counts.available_capacity);
        let utilization = if counts.total_capacity == 0 {
            0.0
        } else {
            // Rounded so clients comparing JSON see 0.55, not 0.55000000001.
            let share = used_capacity as f64 / counts.total_capacity as f64;
            (share * 10_000.0).round() / 10_000.0
        };
        let state = if pending_spawns > 0 {
            PoolState::Scaling
        } else if counts.available_capacity == 0 && !can_grow {
            PoolState::Full
        } else {
            PoolState::Ready
        };
        Self {
            pool_name: counts.pool,
            process_count: counts.process_count,
            total_capacity: counts.total_capacity,
            used_capacity,
            available_capacity: counts.available_capacity,
            agent_count: counts.agent_count,
            utilization,
            active_worker_processes: counts.active_worker_processes,
            pending_spawns,
            state,
            tasks: counts.tasks,
            desired_agents: None,
            autoscale: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(processes: u64, total: u64, free: u64, agents: u64) -> PoolCounts {
        PoolCounts {
            pool: "dev".into(),
            process_count: processes,
            total_capacity: total,
            available_capacity: free,
            agent_count: agents,
            active_worker_processes: processes,
            tasks: TaskCounts::default(),
        }
    }

    #[test]
    fn derived_fields() {
        let s = PoolStats::new(counts(2, 20, 9, 11), 0, true);
        assert_eq!(s.used_capacity, 11);
        assert_eq!(s.utilization, 0.55);
        assert_eq!(s.state, PoolState::Ready);
        let empty = |pending, can_grow| PoolStats::new(counts(0, 0, 0, 0), pending, can_grow);
        assert_eq!(empty(0, false).state, PoolState::Full);
        assert_eq!(empty(0, true).state, PoolState::Ready);
        assert_eq!(empty(3, true).state, PoolState::Scaling);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["queued_tasks"], 0, "task counts are flat in the row: {v}");
        assert!(
            v["desired_agents"].is_null() && v["autoscale"].is_null(),
            "{v}"
        );
        let mut busy = s;
        busy.tasks.queued_tasks = 5;
        busy.tasks.running_tasks = 2;
        let rule = Autoscale {
            min_agents: 1,
            max_agents: 4,
            tasks_per_agent: 2,
            scale_down_idle_secs: 30.0,
        };
        let v = serde_json::to_value(busy.autoscaled(Some(&rule))).unwrap();
        assert_eq!(v["desired_agents"], 4, "{v}");
        assert_eq!(v["autoscale"]["tasks_per_agent"], 2, "{v}");
    }
}
