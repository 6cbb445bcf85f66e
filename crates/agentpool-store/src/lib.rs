//! The durable store of agentpool: what must survive a master restart (pools, agents and their
//! desired state, each agent's event history, worker processes), in PostgreSQL or SQLite.
//! Redis stays the live registry; this is the record of intent and history.
//!
//! - [`error`]: `StoreError`, with `Unavailable` for "database unreachable" (answer 503).
//! - [`model`]: rows (`AgentRow`, `AgentEvent`, `WorkerRow`), `NewAgent`, `Update`, the enums.
//! - [`sql`]: the shared SQL, `PgStore` and `SqliteStore` (one `Store` impl macro for both).
//! - [`connect`]: `connect_postgres` / `connect_sqlite`: pools, timeouts, migrations.
//! - [`writer`]: `BatchWriter`, non-blocking batched `apply` with retry, drained on close.
//!
//! SQL lives in `migrations/{postgres,sqlite}`; queries are built at run time (`query_as` with
//! `FromRow`), so building needs no database.

pub mod connect;
pub mod error;
pub mod model;
pub mod sql;
pub mod writer;

use agentpool_types::{AgentId, PoolSpec, ProcessId};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use connect::{connect_postgres, connect_sqlite};
pub use error::{Result, StoreError};
pub use model::{
    AgentEvent, AgentEventKind, AgentRow, CleanupReport, DesiredState, NewAgent, Update, WorkerRow,
};
pub use sql::{PgStore, SqliteStore};
pub use writer::{BatchWriter, WriterConfig};

/// A future the trait returns; boxed so the trait stays object safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The durable store. Every call fails with [`StoreError::Unavailable`] within the connect
/// timeout (about 2 s) when the database is down, and works again once it is back, without
/// rebuilding the store.
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`, for `/health` and logs.
    fn backend(&self) -> &'static str;

    /// Inserts or replaces the given pool specs (by name), in one transaction.
    fn upsert_pools<'a>(&'a self, pools: &'a [PoolSpec]) -> BoxFuture<'a, Result<()>>;

    /// Every stored pool spec, by name.
    fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolSpec>>>;

    /// Records a new agent (`desired_state = running`, `status = pending`) and its `spawned`
    /// event in one statement (a trigger writes the event). A duplicate id is a
    /// [`StoreError::Database`].
    fn insert_agent<'a>(&'a self, agent: &'a NewAgent) -> BoxFuture<'a, Result<()>>;

    /// Sets what the agent should be doing; `false` when the agent is unknown.
    fn set_desired_state<'a>(
        &'a self,
        agent_id: &'a AgentId,
        desired: DesiredState,
    ) -> BoxFuture<'a, Result<bool>>;

    fn agent<'a>(&'a self, agent_id: &'a AgentId) -> BoxFuture<'a, Result<Option<AgentRow>>>;

    /// Agents with the given desired state, oldest first (restore on start uses `Running`).
    fn agents_with_desired(&self, desired: DesiredState) -> BoxFuture<'_, Result<Vec<AgentRow>>>;

    /// Applies every update in order, in ONE transaction: all of them or none.
    fn apply<'a>(&'a self, updates: &'a [Update]) -> BoxFuture<'a, Result<()>>;

    /// The agent's history, in the order it was appended.
    fn events<'a>(&'a self, agent_id: &'a AgentId) -> BoxFuture<'a, Result<Vec<AgentEvent>>>;

    fn worker<'a>(&'a self, process_id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerRow>>>;

    /// Workers with no recorded exit, oldest first (adoption candidates after a restart).
    fn running_workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRow>>>;

    /// Deletes events older than `older_than`, agents whose desired state is `stopped` and
    /// that were not updated within it, and workers that exited before it.
    fn cleanup(&self, older_than: Duration) -> BoxFuture<'_, Result<CleanupReport>>;

    /// Round-trip time of `SELECT 1`.
    fn ping(&self) -> BoxFuture<'_, Result<Duration>>;
}
