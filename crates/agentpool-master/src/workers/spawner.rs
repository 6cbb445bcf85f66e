//! Starting and signalling worker processes.
//!
//! A worker is this same binary re-executed as `agentpool worker --pool P --process-id ID`, in
//! its own process group so a stop can signal the whole group, with its output in a log file of
//! its own. Its settings travel as JSON in its environment ([`WORKER_CONFIG_ENV`]): the
//! registry URL may carry a password, and a command line is visible to every user.

use crate::config::MasterConfig;
use agentpool_types::{PoolSpec, ProcessId, WORKER_CONFIG_ENV, WorkerConfig};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Bytes of a worker log quoted in an error.
const LOG_TAIL_BYTES: u64 = 2_048;

/// Where a worker's output goes.
pub fn log_path(config: &MasterConfig, pool: &str, id: &ProcessId) -> PathBuf {
    config
        .data_dir
        .join("logs")
        .join(format!("worker-{pool}-{id}.log"))
}

/// Starts one worker process of `pool`.
pub fn spawn(config: &MasterConfig, pool: &PoolSpec, id: &ProcessId) -> std::io::Result<Child> {
    let log = log_path(config, &pool.name, id);
    if let Some(dir) = log.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // Agents' output may hold what their users' configs do: owner only.
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)?;
    let err = out.try_clone()?;
    let settings = WorkerConfig {
        pool: pool.clone(),
        process_id: id.clone(),
        control_url: config.control_url(),
        redis_ca_file: config.redis_ca_file.clone(),
        key_prefix: config.key_prefix.clone(),
        heartbeat_interval_ms: millis(config.heartbeat_interval),
        grace_ms: millis(config.shutdown_grace),
        secret_key: config.secret_key.clone(),
    };
    let settings = serde_json::to_string(&settings).map_err(std::io::Error::other)?;
    let mut cmd = Command::new(&config.worker_exe);
    cmd.arg("worker")
        .args(["--pool", &pool.name])
        .args(["--process-id", id.as_str()]);
    if config.worker_log_json {
        cmd.args(["--log-format", "json"]);
    }
    cmd.env(WORKER_CONFIG_ENV, settings)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        // A child that outlives its `Child` handle must not be killed by tokio: on a master
        // crash workers are meant to live on.
        .kill_on_drop(false)
        .spawn()
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Signals a worker's whole process group. A group that is already gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = killpg(Pid::from_raw(raw), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, ?signal, error = %e, "cannot signal worker process group");
    }
}

/// The last lines of a worker's log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).trim().to_owned();
    if text.is_empty() {
        "(log is empty)".into()
    } else {
        text
    }
}
