//! The `/pools` row.

use serde::{Deserialize, Serialize};

/// Whether a pool can take an agent right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// Has a free slot.
    Ready,
    /// No free slot, no worker starting, and `max_processes` reached.
    Full,
    /// Workers are starting for waiting spawns.
    Scaling,
}

/// Statistics of one pool, with the field names users already read from `/pools`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

impl PoolStats {
    /// Derives the computed fields from what the registry counted.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool_name: String,
        process_count: u64,
        total_capacity: u64,
        available_capacity: u64,
        agent_count: u64,
        active_worker_processes: u64,
        pending_spawns: u64,
        can_grow: bool,
    ) -> Self {
        let used_capacity = total_capacity.saturating_sub(available_capacity);
        let utilization = if total_capacity == 0 {
            0.0
        } else {
            // Rounded so clients comparing JSON see 0.55, not 0.55000000001.
            ((used_capacity as f64 / total_capacity as f64) * 10_000.0).round() / 10_000.0
        };
        let state = if pending_spawns > 0 {
            PoolState::Scaling
        } else if available_capacity == 0 && !can_grow {
            PoolState::Full
        } else {
            PoolState::Ready
        };
        Self {
            pool_name,
            process_count,
            total_capacity,
            used_capacity,
            available_capacity,
            agent_count,
            utilization,
            active_worker_processes,
            pending_spawns,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_fields() {
        let s = PoolStats::new("dev".into(), 2, 20, 9, 11, 2, 0, true);
        assert_eq!(s.used_capacity, 11);
        assert_eq!(s.utilization, 0.55);
        assert_eq!(s.state, PoolState::Ready);
        let empty =
            |pending, can_grow| PoolStats::new("e".into(), 0, 0, 0, 0, 0, pending, can_grow);
        assert_eq!(empty(0, false).state, PoolState::Full);
        assert_eq!(empty(0, true).state, PoolState::Ready);
        assert_eq!(empty(3, true).state, PoolState::Scaling);
    }
}
