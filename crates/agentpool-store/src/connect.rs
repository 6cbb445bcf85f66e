//! Building the stores: connection pools sized and timed out for a service that must answer
//! 503 quickly during an outage, and migrations applied before anything else.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agentpool_types::mask_url;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Result, StoreError};
use crate::sql::{PgStore, SqliteStore};

/// How long a call waits for a connection; an outage turns into `Unavailable` after this.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pooled connections per store. The master's writes are batched, so a few suffice; PgBouncer
/// multiplexes them further.
pub const MAX_CONNECTIONS: u32 = 10;
/// Budget for opening the migration connection.
pub const MIGRATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits for the write lock before reporting busy.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connects to PostgreSQL.
///
/// Migrations run over one connection to `direct_url` (the server itself: the migrator takes
/// an advisory lock and may run DDL, which belongs on a real server session). The runtime pool
/// then connects to `runtime_url` (normally PgBouncer in session mode) if given, else to
/// `direct_url`. Fails with `Unavailable` if either cannot be reached.
pub async fn connect_postgres(direct_url: &str, runtime_url: Option<&str>) -> Result<PgStore> {
    let direct = pg_options(direct_url)?;
    tracing::info!(url = %mask_url(direct_url), "applying PostgreSQL migrations");
    let mut conn =
        tokio::time::timeout(MIGRATE_CONNECT_TIMEOUT, PgConnection::connect_with(&direct))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("connecting to {} timed out", mask_url(direct_url)))
            })??;
    PG_MIGRATOR.run(&mut conn).await?;
    let _ = conn.close().await;

    let (url, options) = match runtime_url {
        Some(url) => (url, pg_options(url)?),
        None => (direct_url, direct),
    };
    tracing::info!(url = %mask_url(url), "connecting the PostgreSQL pool");
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(60))
        .test_before_acquire(true)
        .connect_with(options)
        .await?;
    Ok(PgStore { pool })
}

fn pg_options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map(|o| o.application_name("agentpool"))
        .map_err(|e| StoreError::Database(format!("bad url {}: {e}", mask_url(url))))
}

/// Opens (creating if missing) a SQLite database file in WAL mode and applies migrations.
pub async fn connect_sqlite(path: &Path) -> Result<SqliteStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", dir.display())))?;
    }
    tracing::info!(path = %path.display(), "opening SQLite store");
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    SQLITE_MIGRATOR.run(&pool).await?;
    Ok(SqliteStore { pool })
}
