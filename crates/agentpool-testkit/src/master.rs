//! The real `agentpool serve` binary as a child process, plus JSON helpers for its REST API.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::net::free_port;
use crate::procs::kill_workers;
use crate::tempdir::{TempDir, tail};
use crate::wait::wait_for;

/// The master must answer `/health` within this; a debug build boots in well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Graceful shutdown budget for [`TestMaster::terminate`].
const TERM_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one helper request, so a hung endpoint fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Spawn attempts; a retry only happens when the listen port was taken in the meantime.
const ATTEMPTS: usize = 3;
/// Log lines shown in panic messages.
const TAIL_LINES: usize = 60;

/// How to run the master. `bin` is normally `env!("CARGO_BIN_EXE_agentpool")`.
#[derive(Debug, Clone, Default)]
pub struct MasterOptions {
    pub bin: PathBuf,
    pub redis_url: String,
    /// Full text of the config file; written to `<tempdir>/config.toml`.
    pub config_toml: String,
    /// Extra environment, applied last (so it may override `RUST_LOG` and the defaults).
    pub env: Vec<(String, String)>,
    /// Extra arguments appended after `serve --config <file> --listen <addr>`.
    pub args: Vec<String>,
}

/// A running master. Drop SIGKILLs it and every worker started against its Redis URL.
#[derive(Debug)]
pub struct TestMaster {
    redis_url: String,
    port: u16,
    child: Option<Child>,
    exit: Option<ExitStatus>,
    http: reqwest::Client,
    dir: TempDir,
}

impl TestMaster {
    /// Spawns `<bin> serve` on a free port and waits until `GET /health` answers as a master
    /// past its startup.
    /// Panics with the tail of `master.log` if the master exits or never answers.
    pub async fn start(opts: MasterOptions) -> TestMaster {
        Self::start_until(opts, Ready::PastStartup).await
    }

    /// Like [`TestMaster::start`], but returns as soon as `GET /health` answers at all, also
    /// with 503 `starting` while the master waits for Redis or the database: for tests of a
    /// master that cannot reach them.
    pub async fn start_answering(opts: MasterOptions) -> TestMaster {
        Self::start_until(opts, Ready::Answering).await
    }

    async fn start_until(opts: MasterOptions, until: Ready) -> TestMaster {
        let dir = TempDir::new("master");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, &opts.config_toml).expect("write master config");
        std::fs::create_dir_all(dir.path().join("data")).expect("create master data dir");
        let http = reqwest::Client::builder()
            .no_proxy() // tests talk to 127.0.0.1 only; an ambient HTTP_PROXY must not interfere
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build reqwest client");
        let mut master = TestMaster {
            redis_url: opts.redis_url.clone(),
            port: 0,
            child: None,
            exit: None,
            http,
            dir,
        };
        for attempt in 1..=ATTEMPTS {
            master.port = free_port();
            let Err(status) = master.launch(&opts, &config, until).await else {
                return master;
            };
            let log = master.log();
            let port_taken = log.contains("Address already in use") || log.contains("AddrInUse");
            if !port_taken || attempt == ATTEMPTS {
                panic!(
                    "agentpool master exited with {status} before answering /health; \
                     master.log tail:\n{}",
                    master.log_tail()
                );
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Spawns the master and waits for `/health`; `Err` if the process exited first.
    async fn launch(
        &mut self,
        opts: &MasterOptions,
        config: &std::path::Path,
        until: Ready,
    ) -> Result<(), ExitStatus> {
        let log = File::create(self.log_path()).expect("create master.log");
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&opts.args)
            .env("REDIS_URL", &opts.redis_url)
            .env("AGENTPOOL_DATA_DIR", self.data_dir())
            .env("RUST_LOG", "info,agentpool=debug")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", opts.bin.display()));
        // Owned by self before waiting, so a timeout panic still kills it on drop.
        self.child = Some(child);
        self.exit = None;

        let health = format!("{}/health", self.url());
        let http = self.http.clone();
        let what = format!("agentpool master to answer GET {health}");
        let child = &mut self.child;
        let outcome = wait_for(&what, READY_TIMEOUT, || {
            let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            let req = http.get(&health).timeout(Duration::from_secs(2));
            async move {
                match exited {
                    Some(status) => Some(Err(status)),
                    None => ready(req, until).await.then_some(Ok(())),
                }
            }
        })
        .await;
        if let Err(status) = outcome {
            self.child = None;
            self.exit = Some(status);
        }
        outcome
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// Pid of the master; panics once it has been killed or terminated.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("master is not running").id() as i32
    }

    /// Everything the master wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, self.http.get(self.at(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, self.http.post(self.at(path)).json(&body))
            .await
    }

    /// POST with an arbitrary body and content type, for malformed or oversized payloads.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let req = self
            .http
            .post(self.at(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send("POST", path, req).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, self.http.delete(self.at(path)))
            .await
    }

    /// SIGKILLs the master and reaps it (a crash, from the workers' point of view).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    /// Sends SIGTERM and waits up to 30 s for a graceful exit; panics if it does not exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = self.child.as_mut().expect("master was never started");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM the master");
        let status = wait_for(
            "agentpool master to exit after SIGTERM",
            TERM_TIMEOUT,
            || {
                let status = child.try_wait().ok().flatten();
                async move { status }
            },
        )
        .await;
        self.child = None;
        self.exit = Some(status);
        status
    }

    fn at(&self, path: &str) -> String {
        let sep = if path.starts_with('/') { "" } else { "/" };
        format!("{}{sep}{path}", self.url())
    }

    async fn send(&self, method: &str, path: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let fail = |e: reqwest::Error| -> ! {
            panic!(
                "{method} {path}: {e}; master.log tail:\n{}",
                self.log_tail()
            )
        };
        let resp = req.send().await.unwrap_or_else(|e| fail(e));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_else(|e| fail(e));
        (status, parse_body(&bytes))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("master.log")
    }

    fn log_tail(&self) -> String {
        tail(&self.log_path(), TAIL_LINES)
    }
}

impl Drop for TestMaster {
    fn drop(&mut self) {
        self.kill();
        // The master is dead, so no new workers can appear; the ones it left are orphans.
        kill_workers(&self.redis_url);
        if std::thread::panicking() {
            eprintln!(
                "--- agentpool master.log tail ({}) ---\n{}",
                self.url(),
                self.log_tail()
            );
        }
    }
}

/// What [`TestMaster`] waits for after spawning the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ready {
    /// `/health` answers as a master past its startup.
    PastStartup,
    /// `/health` answers at all.
    Answering,
}

/// Whether `/health` answers as `until` asks: while the master waits for Redis or the
/// database it answers `{"status": "starting"}`.
async fn ready(req: reqwest::RequestBuilder, until: Ready) -> bool {
    let Ok(resp) = req.send().await else {
        return false;
    };
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    until == Ready::Answering || body["status"] != "starting"
}

/// JSON if the body parses, `Null` if it is empty, otherwise the raw text as a JSON string.
fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(expected = "before answering /health")]
    async fn start_panics_when_the_binary_exits_early() {
        TestMaster::start(MasterOptions {
            bin: PathBuf::from("false"),
            redis_url: "redis://127.0.0.1:1".into(),
            ..MasterOptions::default()
        })
        .await;
    }

    #[test]
    fn body_parsing() {
        assert_eq!(parse_body(b""), Value::Null);
        assert_eq!(parse_body(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(parse_body(b"oops"), Value::String("oops".into()));
    }
}
