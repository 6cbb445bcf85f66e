//! A private `redis-server` per test: isolated data, and killable to simulate an outage.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::server::{Server, ServerKind};
use crate::tempdir::TempDir;

/// How long a test's own Redis commands may take to answer.
const TEST_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A `redis-server` child on 127.0.0.1 with no persistence; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct TestRedis {
    server: Server<Redis>,
}

/// How the testkit runs redis-server.
#[derive(Debug)]
struct Redis;

impl ServerKind for Redis {
    fn name(&self) -> &'static str {
        "redis-server"
    }

    fn command(&self, port: u16, dir: &Path) -> Command {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        cmd
    }

    async fn ready(&self, port: u16) -> bool {
        ping(&url(port)).await
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

impl TestRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> TestRedis {
        TestRedis {
            server: Server::start(Redis, TempDir::new("redis")).await,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        url(self.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Pid of the running server; panics if it is stopped.
    pub fn pid(&self) -> i32 {
        self.server.pid().expect("TestRedis is stopped") as i32
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
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

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
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
        assert!(!ping(&redis.url()).await, "stopped redis still answers");
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
        let url = redis.url();
        let pid = redis.pid();
        drop(redis);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!ping(&url).await);
    }
}
