//! Starting and signalling worker processes.
//!
//! A worker is this same binary re-executed as `agentpool worker ...`, in its own process
//! group so a stop can signal the whole group, with its output in a log file of its own.

use crate::config::MasterConfig;
use agentpool_types::{PoolSpec, ProcessId};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
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
        std::fs::create_dir_all(dir)?;
    }
    let out = OpenOptions::new().create(true).append(true).open(&log)?;
    let err = out.try_clone()?;
    Command::new(&config.worker_exe)
        .arg("worker")
        .args(["--pool", &pool.name])
        .args(["--process-id", id.as_str()])
        .args(["--control", &config.control_url()])
        .args(["--key-prefix", &config.key_prefix])
        .args(["--max-agents", &pool.max_agents_per_process.to_string()])
        .args(["--heartbeat-ms", &millis(config.heartbeat_interval)])
        .args(["--grace-ms", &millis(config.shutdown_grace)])
        .args(["--restart", pool.restart.as_str()])
        .args(["--max-restarts", &pool.max_restarts.to_string()])
        .args([
            "--restart-period-ms",
            &(pool.restart_period_secs * 1000).to_string(),
        ])
        .args(["--restart-backoff-ms", &pool.restart_backoff_ms.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        // A child that outlives its `Child` handle must not be killed by tokio: on a master
        // crash workers are meant to live on.
        .kill_on_drop(false)
        .spawn()
}

fn millis(d: std::time::Duration) -> String {
    d.as_millis().to_string()
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
