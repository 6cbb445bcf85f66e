//! A pool's autoscaling rule: how many agents its task backlog calls for.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default target of queued and running tasks per agent.
pub const DEFAULT_TASKS_PER_AGENT: u32 = 1;
/// Default time an agent above `min_agents` may stay idle before it is given back.
pub const DEFAULT_SCALE_DOWN_IDLE_SECS: u64 = 30;

/// `[pools.autoscale]`: a pool sized by its backlog. Absent, a pool grows only by hand.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// Kept even with no work.
    #[serde(default)]
    pub min_agents: u32,
    /// Never more, manual spawns included.
    pub max_agents: u32,
    /// Target (queued + running) tasks per agent.
    #[serde(default = "default_tasks_per_agent")]
    pub tasks_per_agent: u32,
    /// An autoscaled agent idle this long, above what the backlog calls for, is terminated.
    #[serde(default = "default_scale_down_idle")]
    pub scale_down_idle_secs: f64,
}

fn default_tasks_per_agent() -> u32 {
    DEFAULT_TASKS_PER_AGENT
}
fn default_scale_down_idle() -> f64 {
    DEFAULT_SCALE_DOWN_IDLE_SECS as f64
}

impl Autoscale {
    /// Agents the backlog calls for: ⌈(queued + running) / tasks_per_agent⌉ within
    /// `min_agents..=max_agents`.
    pub fn desired(&self, queued: u64, running: u64) -> u64 {
        let per = u64::from(self.tasks_per_agent.max(1));
        let wanted = queued.saturating_add(running).div_ceil(per);
        wanted.clamp(u64::from(self.min_agents), u64::from(self.max_agents))
    }

    pub fn scale_down_idle(&self) -> Duration {
        Duration::try_from_secs_f64(self.scale_down_idle_secs).unwrap_or(Duration::ZERO)
    }

    /// What is wrong with it in a pool that holds at most `capacity` agents: the field and
    /// the problem.
    pub fn problem(&self, capacity: u64) -> Option<(&'static str, String)> {
        if self.max_agents == 0 {
            return Some(("autoscale.max_agents", "must be at least 1".into()));
        }
        if self.min_agents > self.max_agents {
            let why = format!(
                "({}) must not exceed max_agents ({})",
                self.min_agents, self.max_agents
            );
            return Some(("autoscale.min_agents", why));
        }
        if u64::from(self.max_agents) > capacity {
            let why = format!(
                "({}) must not exceed max_processes × max_agents_per_process ({capacity})",
                self.max_agents
            );
            return Some(("autoscale.max_agents", why));
        }
        if self.tasks_per_agent == 0 {
            return Some(("autoscale.tasks_per_agent", "must be at least 1".into()));
        }
        if !self.scale_down_idle_secs.is_finite() || self.scale_down_idle_secs < 0.0 {
            return Some((
                "autoscale.scale_down_idle_secs",
                "must be 0 or more seconds".into(),
            ));
        }
        None
    }

    /// The part `/pools` shows.
    pub fn view(&self) -> AutoscaleView {
        AutoscaleView {
            min: self.min_agents,
            max: self.max_agents,
            tasks_per_agent: self.tasks_per_agent,
        }
    }
}

/// A pool's autoscaling bounds as `/pools` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AutoscaleView {
    pub min: u32,
    pub max: u32,
    pub tasks_per_agent: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(min: u32, max: u32, per: u32) -> Autoscale {
        Autoscale {
            min_agents: min,
            max_agents: max,
            tasks_per_agent: per,
            scale_down_idle_secs: 30.0,
        }
    }

    #[test]
    fn desired_is_the_backlog_per_agent_within_bounds() {
        assert_eq!(rule(0, 30, 1).desired(0, 0), 0);
        assert_eq!(rule(0, 30, 1).desired(7, 3), 10);
        assert_eq!(rule(0, 30, 1).desired(300, 0), 30);
        assert_eq!(rule(0, 30, 4).desired(9, 0), 3);
        assert_eq!(rule(2, 30, 1).desired(0, 0), 2);
        assert_eq!(rule(2, 30, 1).desired(u64::MAX, 1), 30);
    }

    #[test]
    fn problems_name_the_field() {
        assert_eq!(rule(0, 30, 1).problem(1000), None);
        assert_eq!(
            rule(5, 2, 1).problem(1000).unwrap().0,
            "autoscale.min_agents"
        );
        assert_eq!(
            rule(0, 0, 1).problem(1000).unwrap().0,
            "autoscale.max_agents"
        );
        assert_eq!(
            rule(0, 30, 1).problem(20).unwrap().0,
            "autoscale.max_agents"
        );
        assert_eq!(
            rule(0, 30, 0).problem(1000).unwrap().0,
            "autoscale.tasks_per_agent"
        );
        let mut r = rule(0, 30, 1);
        r.scale_down_idle_secs = -1.0;
        assert_eq!(r.problem(1000).unwrap().0, "autoscale.scale_down_idle_secs");
    }
}
