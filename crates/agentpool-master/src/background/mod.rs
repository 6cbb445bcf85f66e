//! The master's background duties, each a loop that ends when the master stops.
//!
//! - `crashes`: a worker that exited or whose socket closed unasked is reaped at once, and its
//!   agents placed again.
//! - `reaper`: workers with a stale heartbeat are reaped, one master at a time.
//! - `housekeeping`: idle workers drained, `min_processes` kept, the `pools` set kept.
//! - `restore`: the store's desired state reconciled against the registry.
//! - `history`: worker and task events wake waiters and become history in the store.
//! - `tend`: the task queue's clockwork (retries due, leases expired) and retention trims.
//! - `announce`: what happened, told to the event feed and counted in the metrics.
//! - `autoscale`: pools with `[pools.autoscale]` sized by their task backlog.

pub(crate) mod announce;
pub(crate) mod autoscale;
pub(crate) mod crashes;
pub(crate) mod history;
pub(crate) mod housekeeping;
pub(crate) mod reaper;
pub(crate) mod restore;
pub(crate) mod tend;
