//! A fresh PostgreSQL database per test, on the machine's server (127.0.0.1:5432, user
//! `postgres`, trust auth), dropped again when the test ends.

use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::wait::wait_until;

/// Where the machine's PostgreSQL listens.
pub const PG_HOST: &str = "127.0.0.1";
pub const PG_PORT: u16 = 5432;
/// Maintenance database the test databases are created from.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// A cluster started by [`ensure_server`] gets this long to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One database, unique to this test; `DROP DATABASE ... WITH (FORCE)` on drop.
#[derive(Debug)]
pub struct TestPostgres {
    name: String,
}

impl TestPostgres {
    /// Creates `agentpool_test_<pid>_<counter>_<nanos>`, starting the local cluster first if
    /// nothing listens on port 5432. Panics with the reason if either fails.
    pub async fn create() -> TestPostgres {
        ensure_server().await;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "agentpool_test_{}_{}_{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(ADMIN_URL)
            .await
            .unwrap_or_else(|e| panic!("connect to {ADMIN_URL}: {e}"));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        TestPostgres { name }
    }

    /// Direct URL of the database: `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{PG_HOST}:{PG_PORT}/{}", self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the database refuse new connections and ends the ones it has (`refuse = true`),
    /// the way an operator takes a database away; `false` lets connections in again.
    pub async fn refuse_connections(&self, refuse: bool) {
        let mut conn = PgConnection::connect(ADMIN_URL)
            .await
            .unwrap_or_else(|e| panic!("connect to {ADMIN_URL}: {e}"));
        let name = &self.name;
        let allow = if refuse { "false" } else { "true" };
        let sql = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}");
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("ALTER DATABASE {name}: {e}"));
        if refuse {
            let end = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            );
            sqlx::raw_sql(AssertSqlSafe(end))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("ending the backends of {name}: {e}"));
        }
        let _ = conn.close().await;
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: drop may run inside a runtime, which cannot
        // block on another one.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(ADMIN_URL).await.ok()?;
                let done = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                let _ = conn.close().await;
                done.ok()
            })
        });
        let _ = dropper.join();
    }
}

fn listening() -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, PG_PORT).into(),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// Makes sure a server listens on 127.0.0.1:5432, starting the newest installed cluster
/// (`pg_ctlcluster <version> main start`) if not. Panics with a clear message if it cannot.
pub async fn ensure_server() {
    static STARTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    STARTED
        .get_or_init(|| async {
            if listening() {
                return;
            }
            let version = std::fs::read_dir("/usr/lib/postgresql")
                .ok()
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|v| v.parse::<u32>().ok())
                .max()
                .unwrap_or_else(|| {
                    panic!(
                        "no PostgreSQL server on {PG_HOST}:{PG_PORT} and none installed under \
                         /usr/lib/postgresql; install postgresql (scripts/test does)"
                    )
                });
            let out = Command::new("pg_ctlcluster")
                .args([
                    "--skip-systemctl-redirect",
                    &version.to_string(),
                    "main",
                    "start",
                ])
                .output()
                .unwrap_or_else(|e| panic!("run pg_ctlcluster: {e}"));
            if !out.status.success() && !listening() {
                panic!(
                    "no PostgreSQL server on {PG_HOST}:{PG_PORT}, and `pg_ctlcluster \
                     {version} main start` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let what = format!("PostgreSQL {version} to listen on {PG_HOST}:{PG_PORT}");
            wait_until(&what, START_TIMEOUT, || async { listening() }).await;
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_a_usable_database_and_drops_it() {
        let pg = TestPostgres::create().await;
        let name = pg.name().to_owned();
        let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        let other = TestPostgres::create().await;
        assert_ne!(other.name(), name);
        drop(pg); // FORCE: the open connection does not keep it alive
        let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(left, 0, "database {name} was not dropped");
    }
}
