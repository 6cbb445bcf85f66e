//! The pool's circuit breaker, `circuit_allows`, `circuit_success` and `circuit_failure` of
//! `lua/tasks.lua`: after `circuit_failures` failed attempts in a row the pool hands out
//! nothing for `circuit_cooldown_ms`, then one trial at a time until one succeeds.

use super::state::Data;
use super::tasks::{Now, ms};
use agentpool_types::{CircuitState, TaskId, TaskState};

/// `pool:<p>:circuit`; no hash reads as closed.
#[derive(Default)]
pub(super) struct Circuit {
    pub state: CircuitState,
    pub opened_ms: i64,
    pub failures: u64,
    pub trial: Option<TaskId>,
}

impl Data {
    /// `circuit_allows`: may the pool hand out `id` now? A half-open circuit lets one trial
    /// through at a time.
    pub fn circuit_allows(&mut self, pool: &str, id: &TaskId, now: &Now) -> bool {
        let r = self.rules(pool);
        if r.circuit_failures == 0 {
            return true;
        }
        let tasks = &self.tasks;
        let c = &mut self.pool_tasks.entry(pool.to_owned()).or_default().circuit;
        match c.state {
            CircuitState::Closed => true,
            CircuitState::Open if now.ms < c.opened_ms + ms(r.circuit_cooldown_ms) => false,
            CircuitState::Open => {
                c.state = CircuitState::HalfOpen;
                c.trial = Some(id.clone());
                true
            }
            CircuitState::HalfOpen => {
                let trial_runs = c
                    .trial
                    .as_ref()
                    .and_then(|t| tasks.get(t))
                    .is_some_and(|e| e.task.status == TaskState::Running);
                if !trial_runs {
                    c.trial = Some(id.clone());
                }
                !trial_runs
            }
        }
    }

    pub fn circuit_success(&mut self, pool: &str) {
        if self.rules(pool).circuit_failures == 0 {
            return;
        }
        self.pool_tasks(pool).circuit = Circuit::default();
    }

    pub fn circuit_failure(&mut self, pool: &str, now: &Now) {
        let limit = u64::from(self.rules(pool).circuit_failures);
        if limit == 0 {
            return;
        }
        let c = &mut self.pool_tasks(pool).circuit;
        c.failures += 1;
        if c.state == CircuitState::HalfOpen || c.failures >= limit {
            c.state = CircuitState::Open;
            c.opened_ms = now.ms;
            c.trial = None;
        }
    }
}
