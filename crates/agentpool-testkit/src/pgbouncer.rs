//! A real PgBouncer (session mode) in front of a [`TestPostgres`] database, stoppable to
//! simulate a database outage as the application sees it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::net::free_port;
use crate::postgres::{PG_HOST, PG_PORT, TestPostgres};
use crate::tempdir::{TempDir, tail};
use crate::wait::wait_ready;

/// A fresh pgbouncer normally answers within a few ms.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Launch attempts; a retry only happens when it exits early (usually: port taken).
const ATTEMPTS: usize = 5;

/// A `pgbouncer` child listening on 127.0.0.1, forwarding every database to the local server.
/// SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct TestPgBouncer {
    port: u16,
    database: String,
    child: Option<Child>,
    dir: TempDir,
}

impl TestPgBouncer {
    /// Starts pgbouncer on a free port and waits until `SELECT 1` works through it.
    pub async fn in_front_of(pg: &TestPostgres) -> TestPgBouncer {
        let dir = TempDir::new("pgbouncer");
        let mut bouncer = TestPgBouncer {
            port: 0,
            database: pg.name().to_owned(),
            child: None,
            dir,
        };
        bouncer.prepare_dir();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            bouncer.port = free_port();
            match bouncer.launch().await {
                Ok(()) => return bouncer,
                Err(e) => failures.push(e),
            }
        }
        panic!("pgbouncer did not start:\n{}", failures.join("\n"));
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILLs pgbouncer and reaps it: every client connection drops at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pgbouncer again on the same port (stopping it first if needed).
    pub async fn start(&mut self) {
        self.stop();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "pgbouncer did not restart on port {}:\n{}",
            self.port,
            failures.join("\n")
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    /// pgbouncer refuses to run as root; as root it runs as `postgres`, which must be able
    /// to write its log and pid file here.
    fn prepare_dir(&self) {
        let auth = self.dir.path().join("userlist.txt");
        std::fs::write(&auth, "\"postgres\" \"\"\n").expect("write pgbouncer userlist");
        if let Some((uid, gid)) = run_as() {
            for path in [self.dir.path(), auth.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
            }
        }
    }

    fn write_ini(&self) -> PathBuf {
        let dir = self.dir.path().display();
        let ini = format!(
            "[databases]\n\
             * = host={PG_HOST} port={PG_PORT}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = session\n\
             ignore_startup_parameters = extra_float_digits\n\
             server_login_retry = 1\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            port = self.port,
        );
        let path = self.dir.path().join("pgbouncer.ini");
        std::fs::write(&path, ini).expect("write pgbouncer.ini");
        path
    }

    /// Spawns pgbouncer on `self.port` and waits for `SELECT 1`. `Err` if it exited early.
    async fn launch(&mut self) -> Result<(), String> {
        let ini = self.write_ini();
        // A pid file left by a killed instance would make the new one refuse to start.
        let _ = std::fs::remove_file(self.dir.path().join("pgbouncer.pid"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pgbouncer.stderr"))
            .expect("open pgbouncer stderr log");
        let mut cmd = Command::new(binary());
        cmd.arg(&ini)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        if let Some((uid, gid)) = run_as() {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("spawn pgbouncer ({e}); is it installed? scripts/test installs it")
        });
        // Owned by self before waiting, so a timeout panic still kills it on drop.
        self.child = Some(child);

        let url = self.url();
        let what = format!("pgbouncer on port {} to answer SELECT 1", self.port);
        let outcome = wait_ready(&what, READY_TIMEOUT, &mut self.child, || {
            let url = url.clone();
            async move { select_one(&url).await }
        })
        .await;
        outcome.map_err(|status| {
            self.child = None;
            format!(
                "port {}: pgbouncer exited with {status}; log tail:\n{}\n{}",
                self.port,
                tail(&self.log_path(), 20),
                tail(&self.dir.path().join("pgbouncer.stderr"), 20)
            )
        })
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        self.stop();
    }
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
