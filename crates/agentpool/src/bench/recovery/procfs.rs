//! The `/proc` safety checks: a pid is signalled only while it is a live child of the master
//! on this machine, and a reused pid is told from the worker by its start time.

use anyhow::{Context, Result, bail};
use nix::errno::Errno;

/// The fields of `/proc/<pid>/stat` the bench needs.
#[derive(Debug, PartialEq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    pub start_time: u64,
}

/// The stat of `pid`, refused unless it runs here as a child of `master_pid`.
pub fn child_of(pid: u32, master_pid: u32) -> Result<ProcStat> {
    let stat =
        proc_stat(pid)?.with_context(|| format!("pid {pid} is not running on this machine"))?;
    if stat.ppid != master_pid {
        bail!(
            "pid {pid} is not a child of the master (pid {master_pid}) on this machine: run the \
             bench on the master's host"
        );
    }
    Ok(stat)
}

/// The process started at `start_time` is gone: no `/proc` entry, a zombie, or the pid now
/// names another process.
pub fn exited(pid: u32, start_time: u64) -> Result<bool> {
    Ok(proc_stat(pid)?.is_none_or(|s| s.state == 'Z' || s.start_time != start_time))
}

/// `None` when the process does not exist (any more).
fn proc_stat(pid: u32) -> Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text)
            .map(Some)
            .with_context(|| format!("unexpected content in {path}: {text:?}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // Reading the file of a process that exits meanwhile fails with ESRCH.
        Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// `pid (comm) state ppid … starttime …`; comm may hold spaces and parentheses, so the fields
/// are counted from the last `)`: state is field 3, ppid field 4, starttime field 22.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let text = "4723 (agent (pool) x) S 4652 4723 4723 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 \
                    3 0 987654 12345 1 18446744073709551615";
        let want = ProcStat {
            state: 'S',
            ppid: 4652,
            start_time: 987_654,
        };
        assert_eq!(parse_stat(text), Some(want));
        assert_eq!(parse_stat("4723 (x) Z 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let stat = proc_stat(std::process::id()).unwrap().unwrap();
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw().unsigned_abs());
        assert!(proc_stat(u32::MAX).unwrap().is_none());
    }

    #[test]
    fn only_a_child_of_the_master_passes() {
        let me = std::process::id();
        let parent = nix::unistd::getppid().as_raw().unsigned_abs();
        assert!(child_of(me, parent).is_ok());
        let err = child_of(me, parent + 1).unwrap_err().to_string();
        assert!(err.contains("is not a child of the master"), "{err}");
        assert!(child_of(u32::MAX, parent).is_err());
        let start = proc_stat(me).unwrap().unwrap().start_time;
        assert!(!exited(me, start).unwrap());
        assert!(
            exited(me, start + 1).unwrap(),
            "another start time: a reused pid"
        );
    }
}
