//! A private `redis-server` per test: isolated data, and killable to simulate an outage.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::server::{Server, ServerKind};
use crate::tempdir::TempDir;
use crate::tls::TestCerts;

/// How long a test's own Redis commands may take to answer.
const TEST_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A `redis-server` child on 127.0.0.1 with no persistence; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct TestRedis {
    server: Server<Redis>,
}

/// How a [`TestRedis`] is set up beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only (`--port 0 --tls-port`), with a fresh CA and server certificate.
    pub tls: bool,
    /// The default user's password (`requirepass`); [`TestRedis::url`] carries it.
    pub password: Option<String>,
    /// Extra `redis.conf` lines, such as `user <name> on >pw ~key:* +get`.
    pub conf: Vec<String>,
}

/// How the testkit runs redis-server.
#[derive(Debug)]
struct Redis {
    certs: Option<TestCerts>,
    password: Option<String>,
}

impl ServerKind for Redis {
    fn name(&self) -> &'static str {
        "redis-server"
    }

    fn command(&self, port: u16, dir: &Path) -> Command {
        let mut cmd = Command::new("redis-server");
        cmd.arg(dir.join(CONF_FILE))
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        match &self.certs {
            None => cmd.args(["--port", &port.to_string()]),
            Some(c) => cmd
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&c.cert_file)
                .arg("--tls-key-file")
                .arg(&c.key_file)
                .arg("--tls-ca-cert-file")
                .arg(&c.ca_file)
                .args(["--tls-auth-clients", "no"]),
        };
        cmd
    }

    async fn ready(&self, port: u16) -> bool {
        ping(&self.client(port)).await
    }
}

/// Where the extra configuration goes, in the server's directory.
const CONF_FILE: &str = "redis.conf";

impl Redis {
    fn url(&self, port: u16) -> String {
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        format!("{scheme}://{auth}127.0.0.1:{port}")
    }

    /// A client of `url`, trusting the test CA when the server speaks TLS.
    fn client_of(&self, url: &str) -> redis::Client {
        match &self.certs {
            None => redis::Client::open(url).expect("valid redis url"),
            Some(c) => {
                let root = std::fs::read(&c.ca_file).expect("read test CA");
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                };
                redis::Client::build_with_tls(url, certs).expect("valid rediss url")
            }
        }
    }

    fn client(&self, port: u16) -> redis::Client {
        self.client_of(&self.url(port))
    }
}

impl TestRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> TestRedis {
        Self::start_with(RedisOptions::default()).await
    }

    /// Starts a server set up as `opts` says and waits until it answers PING.
    pub async fn start_with(opts: RedisOptions) -> TestRedis {
        let dir = TempDir::new("redis");
        let mut conf = opts.conf.join("\n");
        if let Some(pw) = &opts.password {
            conf = format!("requirepass {pw}\n{conf}");
        }
        std::fs::write(dir.path().join(CONF_FILE), conf + "\n").expect("write redis.conf");
        let certs = opts.tls.then(|| TestCerts::generate(dir.path()));
        let kind = Redis {
            certs,
            password: opts.password,
        };
        TestRedis {
            server: Server::start(kind, dir).await,
        }
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS, with the password if one is set).
    pub fn url(&self) -> String {
        self.server.kind().url(self.port())
    }

    /// The same server as `user`: `redis[s]://user:password@127.0.0.1:<port>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let scheme = if self.is_tls() { "rediss" } else { "redis" };
        format!("{scheme}://{user}:{password}@127.0.0.1:{}", self.port())
    }

    /// The CA certificate file clients must trust; `None` without TLS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.server
            .kind()
            .certs
            .as_ref()
            .map(|c| c.ca_file.as_path())
    }

    fn is_tls(&self) -> bool {
        self.server.kind().certs.is_some()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Pid of the running server; panics if it is stopped.
    pub fn pid(&self) -> i32 {
        self.server.pid().expect("TestRedis is stopped") as i32
    }

    /// A client as the default user (trusting the test CA when the server speaks TLS).
    pub fn client(&self) -> redis::Client {
        self.server.kind().client(self.port())
    }

    /// A client of another URL of this server (another user's), trusting its CA.
    pub fn client_of(&self, url: &str) -> redis::Client {
        self.server.kind().client_of(url)
    }

    /// A connection for the test itself. redis-rs gives up on an answer after 500 ms by
    /// default, which a loaded test machine can exceed; a test waits as long as it must.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(TEST_RESPONSE_TIMEOUT));
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// SIGKILLs the server and reaps it: clients see an abrupt outage, not a clean shutdown.
    pub fn stop(&mut self) {
        self.server.kill();
    }

    /// Starts a new, empty server on the same port (stopping the current one if needed),
    /// so clients configured with [`TestRedis::url`] reconnect to it.
    pub async fn restart(&mut self) {
        self.server.restart().await;
    }
}

async fn ping(client: &redis::Client) -> bool {
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok_and(|pong| pong == "PONG")
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::AsyncCommands;

    #[tokio::test]
    async fn start_stop_restart_on_same_port_empty() {
        let mut redis = TestRedis::start().await;
        let port = redis.port();
        assert!(redis.url().ends_with(&format!(":{port}")));
        let first_pid = redis.pid();

        let mut conn = redis.conn().await;
        let _: () = conn.set("k", "v").await.unwrap();
        let v: String = conn.get("k").await.unwrap();
        assert_eq!(v, "v");

        redis.stop();
        assert!(!ping(&redis.client()).await, "stopped redis still answers");
        assert!(
            redis
                .client()
                .get_multiplexed_async_connection()
                .await
                .is_err(),
            "stopped redis still accepts connections"
        );

        redis.restart().await;
        assert_eq!(redis.port(), port);
        assert_ne!(redis.pid(), first_pid);
        let mut conn = redis.conn().await;
        let v: Option<String> = conn.get("k").await.unwrap();
        assert_eq!(v, None, "restarted redis must be empty");
    }

    #[tokio::test]
    async fn drop_kills_the_server() {
        let redis = TestRedis::start().await;
        let client = redis.client();
        let pid = redis.pid();
        drop(redis);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!ping(&client).await);
    }
}
