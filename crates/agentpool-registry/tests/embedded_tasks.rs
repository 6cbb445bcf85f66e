//! The task queue on every backend (Redis, embedded in process, embedded over the socket): the
//! same bodies hold both registries to the one semantics `lua/tasks.lua` describes.
//!
//! - `claim`: handing tasks out, by priority and age, targeted tasks;
//! - `outcomes`: reports, retries with backoff, the dead set, stale reports, leases;
//! - `recovery`: reaps, releases and moves take an agent's attempt with it;
//! - `control`: cancel, retry, the circuit breaker, the heartbeat's attempts, the counts;
//! - `retire`: the autoscaler's scale-down step.

#[path = "embedded_common/mod.rs"]
mod common;

#[path = "embedded_tasks/claim.rs"]
mod claim;
#[path = "embedded_tasks/control.rs"]
mod control;
#[path = "embedded_tasks/outcomes.rs"]
mod outcomes;
#[path = "embedded_tasks/recovery.rs"]
mod recovery;
#[path = "embedded_tasks/retire.rs"]
mod retire;
#[path = "embedded_tasks/support.rs"]
mod support;
