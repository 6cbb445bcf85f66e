//! [`AgentStore`]: pools, agents with their desired state, their history, and workers.

use crate::model::{AgentEvent, AgentRow, CleanupReport, DesiredState, Update, WorkerRow};
use crate::{BoxFuture, Result};
use agentpool_types::{AgentId, AgentSpec, PoolSpec, ProcessId};
use std::time::Duration;

/// The durable store. Every call fails with [`StoreError::Unavailable`] within the connect
/// timeout (about 2 s) when the database is down, and works again once it is back, without
/// rebuilding the store.
pub trait AgentStore: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`, for `/health` and logs.
    fn backend(&self) -> &'static str;

    /// Inserts or replaces the given pool specs (by name), in one transaction.
    fn upsert_pools<'a>(&'a self, pools: &'a [PoolSpec]) -> BoxFuture<'a, Result<()>>;

    /// Every stored pool spec, by name.
    fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolSpec>>>;

    /// Records a new agent (`desired_state = running`, `status = pending`) and its `spawned`
    /// event in one statement (a trigger writes the event). A duplicate id is a
    /// [`StoreError::Database`].
    fn insert_agent<'a>(&'a self, agent: &'a AgentSpec) -> BoxFuture<'a, Result<()>>;

    /// Sets what the agent should be doing; `false` when the agent is unknown.
    fn set_desired_state<'a>(
        &'a self,
        agent_id: &'a AgentId,
        desired: DesiredState,
    ) -> BoxFuture<'a, Result<bool>>;

    fn agent<'a>(&'a self, agent_id: &'a AgentId) -> BoxFuture<'a, Result<Option<AgentRow>>>;

    /// The desired state of each of `ids` the store knows.
    fn desired_states<'a>(
        &'a self,
        ids: &'a [AgentId],
    ) -> BoxFuture<'a, Result<Vec<(AgentId, DesiredState)>>>;

    /// Agents with the given desired state, oldest first (restore on start uses `Running`).
    fn agents_with_desired(&self, desired: DesiredState) -> BoxFuture<'_, Result<Vec<AgentRow>>>;

    /// Applies every update in order, in ONE transaction: all of them or none.
    fn apply<'a>(&'a self, updates: &'a [Update]) -> BoxFuture<'a, Result<()>>;

    /// The agent's history, in the order it was appended.
    fn events<'a>(&'a self, agent_id: &'a AgentId) -> BoxFuture<'a, Result<Vec<AgentEvent>>>;

    fn worker<'a>(&'a self, process_id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerRow>>>;

    /// Workers with no recorded exit, oldest first (adoption candidates after a restart).
    fn running_workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRow>>>;

    /// Records that a worker should be drained (`true`) or no longer (`false`).
    fn set_worker_drain<'a>(
        &'a self,
        process_id: &'a ProcessId,
        drain: bool,
    ) -> BoxFuture<'a, Result<()>>;

    /// Workers asked to drain that have not exited yet.
    fn draining_workers(&self) -> BoxFuture<'_, Result<Vec<ProcessId>>>;

    /// Deletes events older than `older_than`, agents whose desired state is `stopped` and
    /// that were not updated within it, workers that exited before it, and spawn requests
    /// (with their idempotency keys) older than the shorter of it and a day.
    fn cleanup(&self, older_than: Duration) -> BoxFuture<'_, Result<CleanupReport>>;

    /// Round-trip time of `SELECT 1`.
    fn ping(&self) -> BoxFuture<'_, Result<Duration>>;
}
