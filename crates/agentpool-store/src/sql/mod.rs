//! The SQL both backends share (`$N` placeholders work in PostgreSQL and SQLite alike, and
//! every timestamp is bound from Rust), and `PgStore` / `SqliteStore`, whose trait impls come
//! from one macro per trait over the same statements.
//!
//! - `records`: the `FromRow` records and their conversion into the domain rows.
//! - `agents`: [`crate::AgentStore`]: pools, agents, history, workers.
//! - `spawns`: [`crate::SpawnStore`]: spawn requests and their agents, idempotency keys.
//! - `tasks`: [`crate::TaskStore`]: tasks, their changes in order, trimming and stats.

mod agents;
mod records;
mod spawns;
mod tasks;

use crate::error::{Result, StoreError};
use std::future::Future;
use std::time::Duration;

/// Longest a store call may take before it counts as an outage. A database can accept the
/// connection and never answer (PgBouncer queues its clients while the server refuses logins);
/// the request must still get its 503 promptly instead of hanging.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs one store call within [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not answer within {CALL_TIMEOUT:?}"
            )))
        })
}

/// A store on PostgreSQL (directly or through PgBouncer in session mode).
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

/// A store in one SQLite file (WAL mode).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
}

impl PgStore {
    /// The connection pool, for shutdown (`close`) or ad-hoc queries.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

impl SqliteStore {
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}
