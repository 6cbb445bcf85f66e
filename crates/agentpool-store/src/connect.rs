//! Building the stores: connection pools sized and timed out for a service that must answer
//! 503 quickly during an outage, and migrations applied before anything else.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agentpool_types::mask_url;
use sqlx::migrate::Migrator;
use sqlx::pool::CloseEvent;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::error::{Result, StoreError};
use crate::sql::{PgStore, SqliteStore};

/// How long a call waits for a connection; an outage turns into `Unavailable` after this.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The same for SQLite, where waiting for the one connection is queueing behind the writes
/// ahead, not an outage (a local file has none): 200 spawns at once on a loaded 2-core
/// machine queued past 2 s and answered 503. Still bounded, so no request hangs.
pub const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pooled connections per store. The master's writes are batched, so a few suffice; PgBouncer
/// multiplexes them further.
pub const MAX_CONNECTIONS: u32 = 10;
/// Budget for opening the migration connection.
pub const MIGRATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits for the write lock before reporting busy. Only another process can
/// hold it: within the master every statement goes through one connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a task copies the WAL into the database file, on a connection of its own.
pub const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// WAL size, in pages, from which the store's commits checkpoint too. SQLite starts the WAL
/// over only after a checkpoint that found nobody reading, and under a steady stream of writes
/// the task's checkpoints never do; so past this size a commit checkpoints, and the next write
/// starts the WAL over. By then the task has copied nearly everything, so that commit copies
/// little, but it still syncs both files: four times SQLite's default of 1000 makes such
/// commits rarer, for a WAL file of about 16 MB at most.
pub const SQLITE_WAL_AUTOCHECKPOINT: u32 = 4000;

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
///
/// All of the store's statements go through ONE connection. SQLite has one write lock per
/// file, and a connection that finds it taken sleeps in SQLite's busy handler in steps of 1,
/// 2, 5, 10 ms and more: a spawn's insert that met a history batch slept 6 to 11 ms for a lock
/// held a few. One connection queues them in the pool instead, first come first served, and
/// each waits only for the statement or batch ahead of it. Other processes (`agentpool
/// cleanup`) still meet the lock, hence the busy timeout.
///
/// A checkpoint copies the WAL into the database file and syncs both, and with SQLite's
/// defaults the commit that found the WAL at 1000 pages paid for all of it, on the request
/// path. A task does that copying on a connection of its own instead, see [`checkpoint_loop`];
/// a commit checkpoints only what is left, and only once the WAL reaches
/// [`SQLITE_WAL_AUTOCHECKPOINT`] pages.
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
        .max_connections(1)
        .acquire_timeout(SQLITE_ACQUIRE_TIMEOUT)
        // A local file does not drop connections: a ping per acquire would only add latency.
        .test_before_acquire(false)
        .connect_with(
            options
                .clone()
                .pragma("wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT.to_string()),
        )
        .await?;
    SQLITE_MIGRATOR.run(&pool).await?;
    let checkpointer = options.connect().await?;
    owner_only(path);
    tokio::spawn(checkpoint_loop(pool.close_event(), checkpointer));
    Ok(SqliteStore { pool })
}

/// The database and its WAL and shared-memory files, readable by their owner only: they hold
/// agents' configs and tasks' inputs and outputs. SQLite creates them with the umask's rights.
fn owner_only(db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if file.exists()
            && let Err(e) = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot make the SQLite file private");
        }
    }
}

/// Checkpoints the WAL every [`SQLITE_CHECKPOINT_INTERVAL`] until the store's pool is closed
/// or dropped. `PASSIVE` neither waits for nor blocks the store's connection, so it copies
/// what it can and the next round takes the rest; with nothing new to copy it does no I/O.
async fn checkpoint_loop(closed: CloseEvent, mut conn: SqliteConnection) {
    tokio::pin!(closed);
    loop {
        tokio::select! {
            () = &mut closed => break,
            () = tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL) => {}
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "SQLite checkpoint failed; retrying next round");
        }
    }
    let _ = conn.close().await;
}
