//! A real PgBouncer (session mode) in front of a [`TestPostgres`] database, stoppable to
//! simulate a database outage as the application sees it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::postgres::{PG_HOST, PG_PORT, TestPostgres};
use crate::server::{Server, ServerKind};
use crate::tempdir::TempDir;

/// A `pgbouncer` child listening on 127.0.0.1, forwarding every database to the local server.
/// SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct TestPgBouncer {
    database: String,
    server: Server<PgBouncer>,
}

/// How the testkit runs pgbouncer: an ini per launch, since the port may change between
/// attempts.
#[derive(Debug)]
struct PgBouncer {
    database: String,
}

impl ServerKind for PgBouncer {
    fn name(&self) -> &'static str {
        "pgbouncer"
    }

    fn command(&self, port: u16, dir: &Path) -> Command {
        let ini = write_ini(dir, port);
        // A pid file left by a killed instance would make the new one refuse to start.
        let _ = std::fs::remove_file(dir.join("pgbouncer.pid"));
        let mut cmd = Command::new(binary());
        cmd.arg(&ini);
        if let Some((uid, gid)) = run_as() {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    async fn ready(&self, port: u16) -> bool {
        select_one(&url(port, &self.database)).await
    }

    fn own_logs(&self, dir: &Path) -> Vec<PathBuf> {
        vec![dir.join("pgbouncer.log")]
    }
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

impl TestPgBouncer {
    /// Starts pgbouncer on a free port and waits until `SELECT 1` works through it.
    pub async fn in_front_of(pg: &TestPostgres) -> TestPgBouncer {
        let dir = TempDir::new("pgbouncer");
        prepare_dir(dir.path());
        let database = pg.name().to_owned();
        let kind = PgBouncer {
            database: database.clone(),
        };
        TestPgBouncer {
            database,
            server: Server::start(kind, dir).await,
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self) -> String {
        url(self.port(), &self.database)
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// SIGKILLs pgbouncer and reaps it: every client connection drops at once.
    pub fn stop(&mut self) {
        self.server.kill();
    }

    /// Starts pgbouncer again on the same port (stopping it first if needed).
    pub async fn start(&mut self) {
        self.server.restart().await;
    }
}

/// pgbouncer refuses to run as root; as root it runs as `postgres`, which must be able to
/// write its log and pid file here.
fn prepare_dir(dir: &Path) {
    let auth = dir.join("userlist.txt");
    std::fs::write(&auth, "\"postgres\" \"\"\n").expect("write pgbouncer userlist");
    if let Some((uid, gid)) = run_as() {
        for path in [dir, auth.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }
}

fn write_ini(dir: &Path, port: u16) -> PathBuf {
    let shown = dir.display();
    let ini = format!(
        "[databases]\n\
         * = host={PG_HOST} port={PG_PORT}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {shown}/userlist.txt\n\
         pool_mode = session\n\
         ignore_startup_parameters = extra_float_digits\n\
         server_login_retry = 1\n\
         logfile = {shown}/pgbouncer.log\n\
         pidfile = {shown}/pgbouncer.pid\n",
    );
    let path = dir.join("pgbouncer.ini");
    std::fs::write(&path, ini).expect("write pgbouncer.ini");
    path
}

fn binary() -> &'static str {
    if Path::new("/usr/sbin/pgbouncer").exists() {
        "/usr/sbin/pgbouncer"
    } else {
        "pgbouncer"
    }
}

/// `Some((uid, gid))` of `postgres` when running as root, else `None` (run as ourselves).
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("pgbouncer cannot run as root and there is no `postgres` user");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

async fn select_one(url: &str) -> bool {
    let Ok(Ok(mut conn)) =
        tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(url)).await
    else {
        return false;
    };
    let ok = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .is_ok_and(|one| one == 1);
    let _ = conn.close().await;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_stops_and_restarts_on_the_same_port() {
        let pg = TestPostgres::create().await;
        let mut bouncer = TestPgBouncer::in_front_of(&pg).await;
        let port = bouncer.port();
        assert!(bouncer.url().ends_with(&format!(":{port}/{}", pg.name())));
        let mut conn = PgConnection::connect(&bouncer.url()).await.unwrap();
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(db, pg.name());

        bouncer.stop();
        assert!(!bouncer.is_running());
        assert!(
            sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
            "a connection through a stopped pgbouncer still works"
        );
        assert!(!select_one(&bouncer.url()).await);

        bouncer.start().await;
        assert_eq!(bouncer.port(), port);
        assert!(select_one(&bouncer.url()).await);
    }
}
