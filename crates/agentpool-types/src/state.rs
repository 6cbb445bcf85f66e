//! Lifecycles. They are stored in the registry as their lowercase names.

use serde::{Deserialize, Serialize};

/// Where an agent is in its life. `pending -> starting -> idle <-> busy -> stopping -> stopped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Placed in a worker that has not started it yet.
    Pending,
    Starting,
    Idle,
    Busy,
    Stopping,
    Stopped,
    /// Its worker died; waiting to be placed again.
    Orphaned,
    Restarting,
    /// Its task ended with an error or a panic.
    Failed,
    /// Crash loop: restarts exceeded the policy's intensity.
    Quarantined,
}

crate::text_enum!(AgentState {
    Pending => "pending",
    Starting => "starting",
    Idle => "idle",
    Busy => "busy",
    Stopping => "stopping",
    Stopped => "stopped",
    Orphaned => "orphaned",
    Restarting => "restarting",
    Failed => "failed",
    Quarantined => "quarantined",
});

impl AgentState {
    /// The agent is up and can take work: what a spawn waits for.
    pub fn is_running(self) -> bool {
        matches!(self, AgentState::Idle | AgentState::Busy)
    }

    /// The agent will not get to running without outside help.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AgentState::Stopped | AgentState::Failed | AgentState::Quarantined
        )
    }
}

/// Where a worker process is in its life. `starting -> running -> draining -> stopped`, or `dead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    Starting,
    Running,
    /// Out of placement; its agents are moving elsewhere.
    Draining,
    Stopped,
    /// Reaped after a crash or a stale heartbeat.
    Dead,
}

crate::text_enum!(ProcessState {
    Starting => "starting",
    Running => "running",
    Draining => "draining",
    Stopped => "stopped",
    Dead => "dead",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in AgentState::ALL {
            assert_eq!(s.as_str().parse::<AgentState>(), Ok(*s));
        }
        for s in ProcessState::ALL {
            assert_eq!(s.as_str().parse::<ProcessState>(), Ok(*s));
        }
        assert!("zombie".parse::<AgentState>().is_err());
    }
}
