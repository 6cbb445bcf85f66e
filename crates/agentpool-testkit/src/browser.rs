//! A real headless Chromium, driven over the DevTools protocol (a few JSON commands on a
//! WebSocket), for tests of the dashboard. The browser runs in its own process group, which is
//! SIGKILLed on drop with every renderer it started.

use crate::tempdir::{TempDir, tail};
use crate::wait::wait_for;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Overrides where the Chromium binary is.
pub const ENV_CHROMIUM: &str = "AGENTPOOL_CHROMIUM";
/// Debian's package installs it here.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// A cold start on a loaded machine can take a while.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One DevTools command; evaluating a script that awaits the page may take a few seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The window, and so the screenshot, size.
const WINDOW: &str = "--window-size=1280,1000";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A headless Chromium with a private profile, killed on drop.
pub struct Browser {
    child: Child,
    port: u16,
    dir: TempDir,
}

/// One tab, reached on its own DevTools socket.
pub struct Page {
    socket: Mutex<Socket>,
    next_id: std::sync::atomic::AtomicU64,
    /// Uncaught script errors seen so far (`Runtime.exceptionThrown`).
    exceptions: std::sync::Mutex<Vec<String>>,
}

impl Browser {
    /// Starts Chromium (`AGENTPOOL_CHROMIUM`, else `/usr/bin/chromium`) headless and waits for
    /// its DevTools port.
    pub async fn start() -> Browser {
        let bin = std::env::var(ENV_CHROMIUM).unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
        let dir = TempDir::new("chromium");
        let profile = dir.path().join("profile");
        let log = std::fs::File::create(dir.path().join("chromium.log")).expect("chromium log");
        let child = Command::new(&bin)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", WINDOW])
            .args(["--no-first-run", "--no-default-browser-check"])
            .args(["--disable-extensions", "--disable-background-networking"])
            .args(["--disable-dev-shm-usage", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("chromium log"))
            .stderr(log)
            // Its own group: drop kills the browser and every helper process it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (install the chromium package): {e}"));
        let mut browser = Browser {
            child,
            port: 0,
            dir,
        };
        browser.port = browser.devtools_port(&profile).await;
        browser
    }

    /// Chromium writes the port it picked to `DevToolsActivePort` in the profile.
    async fn devtools_port(&mut self, profile: &Path) -> u16 {
        let file = profile.join("DevToolsActivePort");
        let log = self.log_path();
        wait_for("Chromium's DevTools port", START_TIMEOUT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromium exited ({status}):\n{}", tail(&log, 30));
            }
            let port = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse().ok());
            async move { port }
        })
        .await
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("chromium.log")
    }

    /// The end of the browser's own log, for failure messages.
    pub fn log(&self) -> String {
        tail(&self.log_path(), 40)
    }

    /// Opens a new tab on `url` and connects to it.
    pub async fn open(&self, url: &str) -> Page {
        let endpoint = format!("http://127.0.0.1:{}/json/new?about:blank", self.port);
        let target: Value = reqwest::Client::new()
            .put(endpoint)
            .send()
            .await
            .expect("DevTools /json/new")
            .json()
            .await
            .expect("DevTools target");
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no webSocketDebuggerUrl in {target}"));
        let (socket, _) = connect_async(ws).await.expect("DevTools WebSocket");
        let page = Page {
            socket: Mutex::new(socket),
            next_id: Default::default(),
            exceptions: Default::default(),
        };
        page.call("Runtime.enable", json!({})).await;
        page.call("Page.enable", json!({})).await;
        page.navigate(url).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Page {
    /// Sends one command and returns its `result`; panics on a protocol error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let answer = self.send(method, params).await;
        if !answer["error"].is_null() {
            panic!("{method} failed: {}", answer["error"]);
        }
        answer["result"].clone()
    }

    /// Sends one command and returns the whole answer, error or not. Events read while
    /// waiting are looked at for uncaught exceptions and otherwise dropped.
    async fn send(&self, method: &str, params: Value) -> Value {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut socket = self.socket.lock().await;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        socket.send(Message::text(request)).await.expect("send");
        tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                let msg = socket.next().await.expect("DevTools closed").expect("read");
                let Message::Text(text) = msg else { continue };
                let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
                if v["id"].as_u64() == Some(id) {
                    return v;
                }
                self.note_event(&v);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within {COMMAND_TIMEOUT:?}"))
    }

    fn note_event(&self, event: &Value) {
        if event["method"] == "Runtime.exceptionThrown" {
            let details = &event["params"]["exceptionDetails"];
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception")
                .to_owned();
            self.exceptions.lock().unwrap().push(text);
        }
    }

    /// Uncaught script errors the page has thrown so far.
    pub fn exceptions(&self) -> Vec<String> {
        self.exceptions.lock().unwrap().clone()
    }

    /// Opens `url` in this tab and waits until the new document has loaded: the marker set
    /// on the old one is gone and the page is `complete`.
    pub async fn navigate(&self, url: &str) {
        self.eval("window.__testkitOldDocument = true").await;
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r["errorText"].as_str() {
            panic!("cannot open {url}: {e}");
        }
        let loaded = "!window.__testkitOldDocument && document.readyState === 'complete'";
        wait_for(&format!("{url} to load"), START_TIMEOUT, || async {
            // While the documents swap, evaluating may fail: that is "not yet".
            let answer = self
                .send("Runtime.evaluate", json!({"expression": loaded}))
                .await;
            (answer["result"]["result"]["value"] == Value::Bool(true)).then_some(())
        })
        .await;
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON;
    /// panics when it throws.
    pub async fn eval(&self, expression: &str) -> Value {
        let params = json!({
            "expression": expression,
            "returnByValue": true,
            "awaitPromise": true,
        });
        let r = self.call("Runtime.evaluate", params).await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Saves a PNG of the tab's viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
