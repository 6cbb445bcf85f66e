//! When each agent was last placed again after its worker died: the input of the restart
//! intensity limit for reschedules.

use agentpool_types::AgentId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(super) struct RestartHistory {
    times: Mutex<HashMap<AgentId, VecDeque<Instant>>>,
}

impl RestartHistory {
    fn times(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, VecDeque<Instant>>> {
        self.times.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restarts of `id` within `period`, forgetting older ones.
    pub fn recent(&self, id: &AgentId, period: Duration) -> u32 {
        let mut times = self.times();
        let list = times.entry(id.clone()).or_default();
        list.retain(|t| t.elapsed() < period);
        u32::try_from(list.len()).unwrap_or(u32::MAX)
    }

    pub fn record(&self, id: &AgentId) {
        self.times()
            .entry(id.clone())
            .or_default()
            .push_back(Instant::now());
    }

    pub fn forget(&self, id: &AgentId) {
        self.times().remove(id);
    }
}
