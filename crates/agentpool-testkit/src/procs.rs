//! Finding and killing worker processes through `/proc`.
//!
//! Workers run in their own process groups and get reparented when the master dies, so the
//! only reliable handle on them is what they were started with: the master starts them as
//! `agentpool worker ...` with their settings, the registry URL included, as JSON in the
//! `AGENTPOOL_WORKER_CONFIG` environment variable, and each test uses a private registry URL.

use std::fs;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid, getpgrp};

/// Pids of live processes whose argv contains `worker` and whose worker settings name exactly
/// `redis_url` as their registry (or, for stand-ins, whose argv contains it).
pub fn worker_pids(redis_url: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && is_worker_of(pid, redis_url) && !is_zombie(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// SIGKILLs every worker of `redis_url` and its process group; returns the pids found.
pub fn kill_workers(redis_url: &str) -> Vec<i32> {
    let pids = worker_pids(redis_url);
    // Never signal our own group: that would take down the test binary itself.
    let own_group = getpgrp();
    for &pid in &pids {
        let pid = Pid::from_raw(pid);
        if let Ok(pgid) = getpgid(Some(pid))
            && pgid != own_group
            && pgid.as_raw() > 1
        {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        // Errors are expected races (the process already exited), not failures.
        let _ = kill(pid, Signal::SIGKILL);
    }
    pids
}

fn is_worker_of(pid: i32, redis_url: &str) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if !args.iter().any(|a| *a == b"worker") {
        return false;
    }
    args.contains(&redis_url.as_bytes()) || settings_name(pid, redis_url)
}

/// Whether the process's worker settings (JSON in its environment) name `url` as the registry.
fn settings_name(pid: i32, url: &str) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let Ok(quoted) = serde_json::to_string(url) else {
        return false;
    };
    let needle = format!("\"control_url\":{quoted}");
    raw.split(|&b| b == 0)
        .filter_map(|var| var.strip_prefix(b"AGENTPOOL_WORKER_CONFIG="))
        .any(|json| String::from_utf8_lossy(json).contains(&needle))
}

/// A killed worker whose new parent does not reap it stays in /proc as a zombie; it is not
/// "live" for tests that count workers.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true; // gone between the directory scan and now
    };
    // The state field follows the parenthesised command name, which may itself contain ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;
    use std::time::Duration;

    #[tokio::test]
    async fn finds_and_kills_workers_by_exact_url() {
        let url = format!("redis://127.0.0.1:{}", crate::free_port());
        // A stand-in with a worker-like argv, in its own process group like real workers.
        // `read` is a shell builtin blocking on a pipe nobody writes: no fork, no exec, so
        // exactly one process carries this argv for the whole test.
        let mut child = Command::new("sh")
            .args(["-c", "read -r line", "worker", "--control", &url])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;

        // Until the child has exec'd, /proc shows the test binary's argv.
        let found = crate::wait_for(
            "the stand-in worker in /proc",
            Duration::from_secs(10),
            || {
                let pids = worker_pids(&url);
                async move { (!pids.is_empty()).then_some(pids) }
            },
        )
        .await;
        assert_eq!(found, vec![pid]);
        assert!(
            worker_pids(&format!("{url}0")).is_empty(),
            "url must match exactly"
        );

        assert_eq!(kill_workers(&url), vec![pid]);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert!(worker_pids(&url).is_empty());
    }
}
