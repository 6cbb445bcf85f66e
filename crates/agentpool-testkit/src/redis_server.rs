//! A private `redis-server` per test: isolated data, and killable to simulate an outage.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net::free_port;
use crate::tempdir::{TempDir, tail};
use crate::wait::wait_ready;

/// How long a fresh redis-server gets to answer PING; it normally takes a few ms.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before giving up; a retry only happens when the server exits early, which on a
/// busy machine usually means another process took the port between pick and bind.
const ATTEMPTS: usize = 5;

/// A `redis-server` child on 127.0.0.1 with no persistence; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct TestRedis {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl TestRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> TestRedis {
        let mut redis = TestRedis {
            port: 0,
            child: None,
            dir: TempDir::new("redis"),
        };
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            redis.port = free_port();
            match redis.launch().await {
                Ok(()) => return redis,
                Err(e) => failures.push(e),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of the running server; panics if it is stopped.
    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("TestRedis is stopped");
        child.id() as i32
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// SIGKILLs the server and reaps it: clients see an abrupt outage, not a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port (stopping the current one if needed),
    /// so clients configured with [`TestRedis::url`] reconnect to it.
    pub async fn restart(&mut self) {
        self.stop();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "redis-server did not restart on port {}:\n{}",
            self.port,
            failures.join("\n")
        );
    }

    /// Spawns redis-server on `self.port` and waits for PING. `Err` if it exited early.
    async fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("redis.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open redis log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn redis-server ({e}); is it installed? scripts/test installs it")
            });
        // Owned by self before waiting, so a timeout panic still kills it on drop.
        self.child = Some(child);

        let url = self.url();
        let what = format!("redis-server on port {} to answer PING", self.port);
        let outcome = wait_ready(&what, READY_TIMEOUT, &mut self.child, || {
            let url = url.clone();
            async move { ping(&url).await }
        })
        .await;
        outcome.map_err(|status| {
            self.child = None;
            format!(
                "port {}: redis-server exited with {status}; log tail:\n{}",
                self.port,
                tail(&log_path, 20)
            )
        })
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
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
