//! This process's RSS and CPU, sampled for the heartbeat.

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Samples one process only: refreshing the whole process table would cost more than the
/// heartbeat itself on a busy machine.
pub struct Sampler {
    system: Option<System>,
    pid: Pid,
}

impl Sampler {
    pub fn new() -> Self {
        Self {
            system: System::new().ok(),
            pid: Pid::from_u32(std::process::id()),
        }
    }

    /// `(rss_bytes, cpu_percent)`; zeros when the platform does not tell.
    pub fn sample(&mut self) -> (u64, f32) {
        let Some(system) = self.system.as_mut() else {
            return (0, 0.0);
        };
        let kind = ProcessRefreshKind::nothing().with_memory().with_cpu();
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[self.pid]), false, kind);
        system
            .process(self.pid)
            .map_or((0, 0.0), |p| (p.memory(), p.cpu_usage()))
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

/// This machine's name, for the `host` field.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
