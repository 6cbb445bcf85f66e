//! A worker's life as the supervisor runs it: started and waited for until it registers,
//! watched until it exits, stopped on request.
//!
//! Every worker's exit is awaited by a monitor task. An exit the supervisor did not ask for is
//! reported as a crash at once, without waiting for the heartbeat to go stale. When the master
//! stops and leaves its workers running (Redis mode without `--stop-workers`), the monitors
//! end with it instead of holding up the shutdown.

use super::Supervisor;
use super::spawner;
use super::table::{WorkerInfo, WorkerState};
use crate::config::Backend;
use crate::error::{MasterError, Result};
use crate::pools::PoolManager;
use agentpool_registry::ReapMode;
use agentpool_store::Update;
use agentpool_types::ProcessId;
use nix::sys::signal::Signal;
use std::future::Future;
use std::process::ExitStatus;
use std::sync::Arc;
use tokio::sync::watch;

impl Supervisor {
    /// Starts `n` workers of `pool` in the background; `pool.plan` already counted them.
    pub fn start_workers(self: &Arc<Self>, pool: &str, n: u32) {
        for _ in 0..n {
            let sup = self.clone();
            let pool = pool.to_owned();
            self.core.tasks.spawn(async move {
                let Ok(manager) = sup.core.pool(&pool) else {
                    return;
                };
                let outcome = sup.start_worker(manager).await;
                match &outcome {
                    Err(MasterError::ShuttingDown) => {}
                    Err(e) => tracing::error!(%pool, error = %e, "worker start failed"),
                    Ok(_) => {}
                }
                manager.start_finished(outcome.map(|_| ()).map_err(|e| match e {
                    MasterError::WorkerStart { detail, .. } => detail,
                    other => other.to_string(),
                }));
            });
        }
    }

    /// Starts `min_processes` workers for every pool.
    pub fn start_minimum(self: &Arc<Self>) {
        for pool in self.core.pools.iter() {
            let name = pool.name();
            let mut n = 0;
            while self.live(name) + pool.starting() < pool.spec.min_processes
                && pool.reserve_start(self.live(name))
            {
                n += 1;
            }
            if n > 0 {
                tracing::info!(pool = %name, n, "starting min_processes workers");
                self.start_workers(name, n);
            }
        }
    }

    /// Starts one worker and returns once it has registered.
    async fn start_worker(self: &Arc<Self>, pool: &PoolManager) -> Result<ProcessId> {
        let _permit = tokio::select! {
            permit = self.start_slots.acquire() => permit.map_err(|_| MasterError::ShuttingDown)?,
            _ = self.core.stopping.cancelled() => return Err(MasterError::ShuttingDown),
        };
        self.core.ensure_running()?;
        let id = ProcessId::new();
        // Known before the worker's first event, so `process_started` names its pool.
        self.core.feed.note_process(&id, pool.name());
        let mut child = spawner::spawn(&self.core.config, &pool.spec, &id)?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pool = pool.name(), process_id = %id, pid, "starting worker");
        let timeout = self.core.config.worker_start_timeout;
        let registered = self.core.hub.wait(id.as_str(), timeout, || async {
            Ok::<_, MasterError>(self.core.registry.process(&id).await?.map(|_| ()))
        });
        let failure = tokio::select! {
            r = registered => match r {
                Ok(Some(())) => None,
                Ok(None) => Some(format!("did not register within {timeout:?}")),
                Err(e) => Some(e.to_string()),
            },
            status = child.wait() => {
                // It may have registered and died before the wait above saw it: then it is a
                // worker that crashed, and its agents are placed again like any other's.
                if let Ok(Some(_)) = self.core.registry.process(&id).await {
                    self.core.record(Update::worker_started(&id, pool.name(), pid));
                    self.watch(id.clone(), pool.name(), pid, async move { status });
                    return Ok(id);
                }
                Some(format!("exited before registering ({})", describe(&status)))
            }
            _ = self.core.stopping.cancelled() => Some("the master is shutting down".to_owned()),
        };
        if let Some(reason) = failure {
            self.core.feed.forget_process(&id);
            spawner::signal_group(pid, Signal::SIGKILL);
            let _ = child.wait().await;
            let _ = self.core.registry.reap(&id, ReapMode::Delete).await;
            if self.core.stopping.is_cancelled() {
                return Err(MasterError::ShuttingDown);
            }
            let log = spawner::log_path(&self.core.config, pool.name(), &id);
            let tail = spawner::log_tail(&log);
            return Err(MasterError::WorkerStart {
                pool: pool.name().to_owned(),
                detail: format!("{reason}; worker log ends with:\n{tail}"),
            });
        }
        self.watch(
            id.clone(),
            pool.name(),
            pid,
            async move { child.wait().await },
        );
        self.core
            .record(Update::worker_started(&id, pool.name(), pid));
        tracing::info!(pool = pool.name(), process_id = %id, pid, "worker registered");
        Ok(id)
    }

    /// Whether the workers stop when the master does: embedded workers cannot outlive the
    /// registry they live in.
    fn stop_with_master(&self) -> bool {
        self.core.config.stop_workers_on_exit || self.core.config.backend == Backend::Embedded
    }

    /// Records a running worker and watches `exit`, which resolves when the process is gone:
    /// the exit is then handled (expected, or a crash) and announced to waiters.
    pub(super) fn watch<F>(self: &Arc<Self>, id: ProcessId, pool: &str, pid: u32, exit: F)
    where
        F: Future<Output = std::io::Result<ExitStatus>> + Send + 'static,
    {
        let (exited_tx, exited) = watch::channel(false);
        let info = WorkerInfo {
            pool: pool.to_owned(),
            pid,
            state: WorkerState::Running,
            exited,
        };
        self.core.feed.note_process(&id, pool);
        self.table.insert(id.clone(), info);
        let sup = self.clone();
        let left_running = !self.stop_with_master();
        self.core.tasks.spawn(async move {
            let status = tokio::select! {
                status = exit => status,
                _ = sup.core.stopping.cancelled(), if left_running => return,
            };
            sup.on_exit(&id, status).await;
            let _ = exited_tx.send(true);
        });
    }

    async fn on_exit(&self, id: &ProcessId, status: std::io::Result<ExitStatus>) {
        let Some(info) = self.table.get(id) else {
            return;
        };
        self.core
            .record(Update::worker_exited(id, describe(&status)));
        if info.state == WorkerState::Stopping {
            tracing::info!(process_id = %id, pid = info.pid, status = %describe(&status), "worker exited");
            if let Err(e) = self.core.registry.reap(id, ReapMode::Delete).await {
                tracing::warn!(process_id = %id, error = %e, "cannot remove stopped worker from registry");
            }
        } else {
            tracing::warn!(process_id = %id, pid = info.pid, pool = %info.pool, status = %describe(&status), "worker exited unexpectedly: reaping it now");
            let _ = self.crashes.send(id.clone());
        }
        // Removed only now, so a disconnect noticed meanwhile still finds it and knows whether
        // the exit was expected.
        self.table.remove(id);
    }

    /// Whether a worker that went away was expected to: one being stopped, or one this master
    /// no longer watches (its exit was handled already).
    pub fn exit_expected(&self, id: &ProcessId) -> bool {
        self.table
            .get(id)
            .is_none_or(|w| w.state == WorkerState::Stopping)
    }

    /// Asks a worker to exit (SIGTERM to its group), waits up to the grace period, then
    /// SIGKILLs the group. Returns once the worker is gone from the registry.
    pub async fn stop(&self, id: &ProcessId) {
        let Some(mut info) = self.table.get(id) else {
            return;
        };
        self.table.set_state(id, WorkerState::Stopping);
        spawner::signal_group(info.pid, Signal::SIGTERM);
        let grace = self.core.config.shutdown_grace;
        if tokio::time::timeout(grace, info.exited.wait_for(|e| *e))
            .await
            .is_err()
        {
            tracing::warn!(process_id = %id, pid = info.pid, "worker ignored SIGTERM for {grace:?}: SIGKILL");
            spawner::signal_group(info.pid, Signal::SIGKILL);
            let _ = info.exited.wait_for(|e| *e).await;
        }
    }

    /// Stops every worker this master watches, at once, when they stop with the master.
    pub async fn stop_all(&self) {
        let workers = self.table.all();
        if self.stop_with_master() {
            tracing::info!(workers = workers.len(), "stopping workers");
            let stops = workers.iter().map(|(id, _)| self.stop(id));
            futures::future::join_all(stops).await;
        } else {
            tracing::info!(
                workers = workers.len(),
                "leaving workers running for the next master to adopt (--stop-workers stops them)"
            );
        }
    }

    /// A reaped worker of ours fences itself when it wakes up; one that never does (stopped
    /// for good) is killed after another timeout, so it stops counting against the pool.
    pub fn kill_if_hung(self: &Arc<Self>, id: &ProcessId) {
        let Some(mut info) = self.table.get(id) else {
            return;
        };
        let wait = self.core.config.heartbeat_timeout;
        let stopping = self.core.stopping.clone();
        self.core.tasks.spawn(async move {
            tokio::select! {
                exited = tokio::time::timeout(wait, info.exited.wait_for(|e| *e)) => {
                    if exited.is_err() {
                        tracing::warn!(pid = info.pid, "reaped worker did not exit: SIGKILL");
                        spawner::signal_group(info.pid, Signal::SIGKILL);
                    }
                }
                _ = stopping.cancelled() => {}
            }
        });
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown: {e}"),
    }
}

impl Supervisor {
    /// Stops a worker whether or not this master watches it: its own by signal, any other by a
    /// shutdown command, then removes it from the registry.
    pub async fn stop_any(&self, id: &ProcessId) -> Result<()> {
        if self.table.get(id).is_some() {
            self.stop(id).await;
            return Ok(());
        }
        let grace = u64::try_from(self.core.config.shutdown_grace.as_millis()).unwrap_or(u64::MAX);
        let cmd = agentpool_types::Command::new(agentpool_types::CommandKind::Shutdown {
            grace_ms: grace,
        });
        self.core
            .registry
            .send(agentpool_registry::Target::Process(id), &cmd)
            .await?;
        self.core.registry.reap(id, ReapMode::Delete).await?;
        Ok(())
    }
}
