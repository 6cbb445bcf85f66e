//! One configured pool and the choices it makes.

use crate::autoscale::Autoscale;
use crate::handler::Handler;
use crate::restart::RestartPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default number of agents one worker hosts.
pub const DEFAULT_MAX_AGENTS_PER_PROCESS: u32 = 10;
/// Default ceiling of workers per pool.
pub const DEFAULT_MAX_PROCESSES: u32 = 100;
/// Default time an empty worker may stay before it is drained.
pub const DEFAULT_IDLE_WORKER_TTL_SECS: u64 = 30;
/// Upper bound on agents per worker; keeps one worker's blast radius small.
pub const MAX_AGENTS_PER_PROCESS_LIMIT: u32 = 1_000;
/// Default intensity limit: restarts allowed within `restart_period_secs`.
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
pub const DEFAULT_RESTART_PERIOD_SECS: u64 = 60;
/// Default first pause before a restart; it doubles with each further restart.
pub const DEFAULT_RESTART_BACKOFF_MS: u64 = 100;
/// Longest pool name, role or agent name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// How `reserve` picks among workers that have a free slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// The fullest worker that still has room: fewer workers, idle ones can drain.
    #[default]
    Pack,
    /// The emptiest worker: less load per worker, smaller blast radius.
    Spread,
}

crate::text_enum!(Placement {
    Pack => "pack",
    Spread => "spread",
});

/// One pool as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    pub role: String,
    #[serde(default = "default_max_agents")]
    pub max_agents_per_process: u32,
    #[serde(default)]
    pub min_processes: u32,
    #[serde(default = "default_max_processes")]
    pub max_processes: u32,
    #[serde(default = "default_idle_ttl")]
    pub idle_worker_ttl_secs: u64,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_restart_period")]
    pub restart_period_secs: u64,
    #[serde(default = "default_restart_backoff")]
    pub restart_backoff_ms: u64,
    #[serde(default)]
    pub handler: Handler,
    /// The circuit breaker of the pool's tasks.
    #[serde(default)]
    pub circuit: Circuit,
    /// Sized by its task backlog; absent, the pool grows only by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

/// Failed task attempts in a row that stop a pool handing out its tasks, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circuit {
    /// 0 turns the breaker off.
    #[serde(default = "default_circuit_failures")]
    pub failures: u32,
    #[serde(default = "default_circuit_cooldown")]
    pub cooldown_secs: u64,
}

/// Failed attempts in a row that open a pool's circuit by default.
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 5;
/// How long an open circuit waits before a trial task, by default.
pub const DEFAULT_CIRCUIT_COOLDOWN_SECS: u64 = 30;

fn default_circuit_failures() -> u32 {
    DEFAULT_CIRCUIT_FAILURES
}
fn default_circuit_cooldown() -> u64 {
    DEFAULT_CIRCUIT_COOLDOWN_SECS
}

impl Default for Circuit {
    fn default() -> Self {
        Self {
            failures: DEFAULT_CIRCUIT_FAILURES,
            cooldown_secs: DEFAULT_CIRCUIT_COOLDOWN_SECS,
        }
    }
}

fn default_max_restarts() -> u32 {
    DEFAULT_MAX_RESTARTS
}
fn default_restart_period() -> u64 {
    DEFAULT_RESTART_PERIOD_SECS
}
fn default_restart_backoff() -> u64 {
    DEFAULT_RESTART_BACKOFF_MS
}

fn default_max_agents() -> u32 {
    DEFAULT_MAX_AGENTS_PER_PROCESS
}
fn default_max_processes() -> u32 {
    DEFAULT_MAX_PROCESSES
}
fn default_idle_ttl() -> u64 {
    DEFAULT_IDLE_WORKER_TTL_SECS
}

/// A pool spec that cannot work, with the field that is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("pool {pool:?}: {field} {problem}")]
pub struct SpecError {
    pub pool: String,
    pub field: &'static str,
    pub problem: String,
}

impl PoolSpec {
    /// A pool with defaults for everything but its name and role.
    pub fn new(name: &str, role: &str) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            max_agents_per_process: DEFAULT_MAX_AGENTS_PER_PROCESS,
            min_processes: 0,
            max_processes: DEFAULT_MAX_PROCESSES,
            idle_worker_ttl_secs: DEFAULT_IDLE_WORKER_TTL_SECS,
            placement: Placement::Pack,
            restart: RestartPolicy::Permanent,
            max_restarts: DEFAULT_MAX_RESTARTS,
            restart_period_secs: DEFAULT_RESTART_PERIOD_SECS,
            restart_backoff_ms: DEFAULT_RESTART_BACKOFF_MS,
            handler: Handler::Echo,
            circuit: Circuit::default(),
            autoscale: None,
        }
    }

    pub fn restart_limits(&self) -> crate::restart::RestartLimits {
        crate::restart::RestartLimits {
            max_restarts: self.max_restarts,
            period: Duration::from_secs(self.restart_period_secs),
            backoff: Duration::from_millis(self.restart_backoff_ms),
        }
    }

    pub fn idle_worker_ttl(&self) -> Duration {
        Duration::from_secs(self.idle_worker_ttl_secs)
    }

    /// Most agents the pool can ever hold.
    pub fn max_agents(&self) -> u64 {
        u64::from(self.max_agents_per_process) * u64::from(self.max_processes)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field, problem: &str| SpecError {
            pool: self.name.clone(),
            field,
            problem: problem.to_owned(),
        };
        if !is_valid_name(&self.name) {
            return Err(err(
                "name",
                "must be 1-64 characters of a-z, 0-9, '_' or '-'",
            ));
        }
        if !is_valid_name(&self.role) {
            return Err(err(
                "role",
                "must be 1-64 characters of a-z, 0-9, '_' or '-'",
            ));
        }
        if self.max_agents_per_process == 0
            || self.max_agents_per_process > MAX_AGENTS_PER_PROCESS_LIMIT
        {
            return Err(err("max_agents_per_process", "must be between 1 and 1000"));
        }
        if self.max_processes == 0 {
            return Err(err("max_processes", "must be at least 1"));
        }
        if self.min_processes > self.max_processes {
            return Err(err("min_processes", "must not exceed max_processes"));
        }
        if let Some((field, problem)) = self.handler.problem() {
            return Err(err(field, &problem));
        }
        let capacity = self.max_agents();
        if let Some((field, problem)) = self.autoscale.and_then(|a| a.problem(capacity)) {
            return Err(err(field, &problem));
        }
        Ok(())
    }
}

/// Whether free text a person reads (an agent's name) may hold `c`: no control characters,
/// and none that change how the text around them looks without being seen (bidi overrides
/// and isolates, zero-width characters, the byte-order mark), which let a name pass for
/// another in a listing or a log.
pub fn is_shown_as_is(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Names of pools, roles and agents: short, printable, safe inside a Redis key.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        let mut spec = PoolSpec::new("dev", "developer");
        assert_eq!(spec.validate(), Ok(()));
        spec.max_agents_per_process = 0;
        assert_eq!(spec.validate().unwrap_err().field, "max_agents_per_process");
        let mut spec = PoolSpec::new("Dev Pool", "developer");
        assert_eq!(spec.validate().unwrap_err().field, "name");
        spec = PoolSpec::new("dev", "developer");
        spec.min_processes = 5;
        spec.max_processes = 2;
        assert_eq!(spec.validate().unwrap_err().field, "min_processes");
    }

    #[test]
    fn invisible_and_reordering_characters_are_not_shown_as_is() {
        assert!("agent-1 ünïcode 日本".chars().all(is_shown_as_is));
        for c in [
            '\n', '\u{7}', '\u{202E}', '\u{2066}', '\u{200B}', '\u{FEFF}',
        ] {
            assert!(!is_shown_as_is(c), "{c:?}");
        }
    }

    #[test]
    fn spec_defaults_from_toml_like_json() {
        let spec: PoolSpec = serde_json::from_str(r#"{"name":"tester","role":"tester"}"#).unwrap();
        assert_eq!(spec, PoolSpec::new("tester", "tester"));
    }
}
