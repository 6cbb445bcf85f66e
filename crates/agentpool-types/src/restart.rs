//! The restart decision, as a pure function shared by the worker (an agent failed in place)
//! and the master (an agent's worker died).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Whether an agent that stopped without being asked to is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after a failure.
    Transient,
    /// Never restarted.
    Temporary,
}

crate::text_enum!(RestartPolicy {
    Permanent => "permanent",
    Transient => "transient",
    Temporary => "temporary",
});

/// The longest pause between two restarts of one agent.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// How many restarts are allowed how often, and how fast they back off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartLimits {
    pub max_restarts: u32,
    pub period: Duration,
    /// The first pause; each further restart within the period doubles it.
    pub backoff: Duration,
}

/// Why an agent stopped without being asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It failed, panicked, or its worker died.
    Failure,
    /// It returned normally.
    Normal,
}

/// What to do with an agent that stopped without being asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this pause.
    Restart { after: Duration },
    /// Crash loop: too many restarts within the period. Keep it, stopped, with its last error.
    Quarantine,
    /// The policy does not restart it.
    Stop,
}

/// Decides given how many restarts the agent already had within `limits.period`.
pub fn decide(
    policy: RestartPolicy,
    limits: RestartLimits,
    ending: Ending,
    recent: u32,
) -> Decision {
    match (policy, ending) {
        (RestartPolicy::Temporary, _) | (RestartPolicy::Transient, Ending::Normal) => {
            Decision::Stop
        }
        _ if recent >= limits.max_restarts => Decision::Quarantine,
        _ => {
            let factor = 2u32.saturating_pow(recent.min(16));
            let after = limits
                .backoff
                .saturating_mul(factor)
                .min(MAX_RESTART_BACKOFF);
            Decision::Restart { after }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RestartLimits = RestartLimits {
        max_restarts: 3,
        period: Duration::from_secs(60),
        backoff: Duration::from_millis(100),
    };

    #[test]
    fn permanent_restarts_with_doubling_backoff_then_quarantines() {
        let d = |n| decide(RestartPolicy::Permanent, LIMITS, Ending::Failure, n);
        assert_eq!(
            d(0),
            Decision::Restart {
                after: Duration::from_millis(100)
            }
        );
        assert_eq!(
            d(1),
            Decision::Restart {
                after: Duration::from_millis(200)
            }
        );
        assert_eq!(
            d(2),
            Decision::Restart {
                after: Duration::from_millis(400)
            }
        );
        assert_eq!(d(3), Decision::Quarantine);
    }

    #[test]
    fn transient_restarts_only_failures_and_temporary_never() {
        assert_eq!(
            decide(RestartPolicy::Transient, LIMITS, Ending::Normal, 0),
            Decision::Stop
        );
        assert!(matches!(
            decide(RestartPolicy::Transient, LIMITS, Ending::Failure, 0),
            Decision::Restart { .. }
        ));
        assert_eq!(
            decide(RestartPolicy::Temporary, LIMITS, Ending::Failure, 0),
            Decision::Stop
        );
    }

    #[test]
    fn backoff_is_capped() {
        let limits = RestartLimits {
            max_restarts: 100,
            ..LIMITS
        };
        assert_eq!(
            decide(RestartPolicy::Permanent, limits, Ending::Failure, 40),
            Decision::Restart {
                after: MAX_RESTART_BACKOFF
            }
        );
    }
}
