//! The durable store of agentpool: what must survive a master restart (pools, agents and their
//! desired state, each agent's event history, worker processes, tasks), in PostgreSQL or
//! SQLite.
//! Redis stays the live registry; this is the record of intent and history.
//!
//! - [`error`]: `StoreError`, with `Unavailable` for "database unreachable" (answer 503).
//! - [`model`]: rows (`AgentRow`, `AgentEvent`, `WorkerRow`), `Update`, the enums.
//! - [`agent_store`]: `AgentStore`: pools, agents, history, workers.
//! - [`spawns`]: `SpawnStore` and `SpawnRequest`: every spawn recorded with its agents at once.
//! - [`task_store`]: `TaskStore`: tasks, the record of truth; their changes only move forward.
//! - [`sql`]: the shared SQL, `PgStore` and `SqliteStore` (one impl macro per trait for both).
//! - [`connect`]: `connect_postgres` / `connect_sqlite`: pools, timeouts, migrations.
//! - [`writer`]: `BatchWriter`, non-blocking batched `apply` with retry, drained on close.
//!
//! SQL lives in `migrations/{postgres,sqlite}`; queries are built at run time (`query_as` with
//! `FromRow`), so building needs no database.

pub mod agent_store;
pub mod connect;
pub mod error;
pub mod model;
pub mod spawns;
pub mod sql;
pub mod task_store;
pub mod writer;

use std::future::Future;
use std::pin::Pin;

pub use agent_store::AgentStore;
pub use connect::{connect_postgres, connect_sqlite};
pub use error::{Result, StoreError};
pub use model::{
    AgentEvent, AgentEventKind, AgentRow, CleanupReport, DesiredState, Update, WorkerRow,
};
pub use spawns::{Begun, RequestState, SpawnRequest, SpawnStore};
pub use sql::{PgStore, SqliteStore};
pub use task_store::{
    Inserted, MAX_TASK_BATCH, MAX_TASK_LIMIT, Percentiles, STATS_SAMPLE, StateCounts, TaskFilter,
    TaskStats, TaskStore,
};
pub use writer::{BatchWriter, WriterConfig};

/// A future the trait returns; boxed so the trait stays object safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The durable store: every part of it. Every call fails with [`StoreError::Unavailable`]
/// within the connect timeout (about 2 s) when the database is down, and works again once it
/// is back, without rebuilding the store.
pub trait Store: AgentStore + SpawnStore + TaskStore {}

impl<T: AgentStore + SpawnStore + TaskStore> Store for T {}
