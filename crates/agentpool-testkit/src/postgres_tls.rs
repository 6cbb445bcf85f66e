//! A private PostgreSQL cluster with `ssl = on`, for the tests of `sslmode` in the database
//! URLs: `initdb` into a scratch directory and `postgres` on a free port, both run as the
//! `postgres` user (the server refuses to run as root), with a certificate from a fresh test CA.
//! The machine's own cluster is left as it is.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Uid, User};
use sqlx::{Connection, PgConnection};

use crate::server::{Server, ServerKind};
use crate::tempdir::TempDir;
use crate::tls::TestCerts;

/// The OS user the cluster runs as.
const PG_USER: &str = "postgres";

/// A TLS-enabled PostgreSQL on 127.0.0.1 (trust auth, user `postgres`); killed on drop.
#[derive(Debug)]
pub struct TestPostgresTls {
    server: Server<Postgres>,
}

#[derive(Debug)]
struct Postgres {
    user: User,
    data: PathBuf,
    certs: TestCerts,
}

impl ServerKind for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn command(&self, port: u16, dir: &Path) -> Command {
        let mut cmd = Command::new(bin_dir().join("postgres"));
        let set = |k: &str, v: &Path| format!("{k}={}", v.display());
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .args(["-c", &set("ssl_cert_file", &self.certs.cert_file)])
            .args(["-c", &set("ssl_key_file", &self.certs.key_file)])
            .args(["-c", &set("unix_socket_directories", dir)])
            .args(["-c", "fsync=off"])
            .uid(self.user.uid.as_raw())
            .gid(self.user.gid.as_raw());
        cmd
    }

    async fn ready(&self, port: u16) -> bool {
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require");
        PgConnection::connect(&url).await.is_ok()
    }
}

impl TestPostgresTls {
    /// Creates the cluster and starts it. `None` when this cannot work here: not root (the
    /// server must run as `postgres`), no `postgres` user, or no PostgreSQL binaries.
    pub async fn start() -> Option<TestPostgresTls> {
        let user = User::from_name(PG_USER).ok().flatten()?;
        if !Uid::effective().is_root() || !bin_dir().join("initdb").exists() {
            return None;
        }
        let dir = TempDir::new("pgtls");
        let own = |p: &Path| {
            std::os::unix::fs::chown(p, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()))
        };
        own(dir.path());
        let data = dir.path().join("data");
        let out = Command::new(bin_dir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", PG_USER, "--no-sync", "-E", "UTF8"])
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let certs = TestCerts::generate(dir.path());
        for f in [&certs.cert_file, &certs.key_file, &certs.ca_file] {
            own(f);
        }
        std::fs::set_permissions(&certs.key_file, std::fs::Permissions::from_mode(0o600))
            .expect("key file 0600");
        let kind = Postgres { user, data, certs };
        Some(TestPostgresTls {
            server: Server::start(kind, dir).await,
        })
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, with `params` appended as the query.
    pub fn url(&self, params: &str) -> String {
        let sep = if params.is_empty() { "" } else { "?" };
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{sep}{params}",
            self.server.port()
        )
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.server.kind().certs.ca_file
    }
}

/// Where Debian keeps the server binaries: the newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|v| v.join("bin"))
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/bin"))
}
