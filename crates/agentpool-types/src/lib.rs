//! Domain and protocol types shared by every agentpool crate. No I/O lives here.
//!
//! - [`ids`]: `AgentId` and `ProcessId`, uuid v7 strings.
//! - [`pool`]: `PoolSpec` (one configured pool), its `Placement`, `Handler` and limits.
//! - [`state`]: the lifecycles, `AgentState` and `ProcessState`.
//! - [`record`]: what the registry holds about an agent (`Agent`) and a worker (`WorkerProcess`).
//! - [`protocol`]: `Command` and `Event`, the JSON envelopes on the pub/sub channels.
//! - [`placement`]: the pure placement choice both registries share.
//! - [`restart`]: the pure restart decision (policy, intensity, backoff).
//! - [`stats`]: `PoolStats`, the `/pools` row.

pub mod ids;
pub mod placement;
pub mod pool;
pub mod protocol;
pub mod record;
pub mod restart;
pub mod state;
pub mod stats;

pub use ids::{AgentId, ProcessId};
pub use placement::{Candidate, choose};
pub use pool::{Handler, Placement, PoolSpec, RestartPolicy, SpecError};
pub use protocol::{Command, CommandKind, Event, EventKind};
pub use record::{Agent, WorkerProcess};
pub use state::{AgentState, ProcessState};
pub use stats::{PoolState, PoolStats};

/// Current time as RFC 3339 with milliseconds, the format of every timestamp in the registry.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A connection URL with its password replaced by `***`, for logs and error messages.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_url("redis://:s3cret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            mask_url("postgres://app:pw@db:5432/agentpool"),
            "postgres://app:***@db:5432/agentpool"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(mask_url("not a url"), "not a url");
    }
}
