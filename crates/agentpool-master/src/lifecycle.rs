//! Worker processes: start one and wait for its registration, watch it until it exits, stop it.
//!
//! Every worker's `Child` is owned by a monitor task. An exit the master did not ask for is a
//! crash: the worker is reaped at once and its agents are placed again, without waiting for
//! its heartbeat to go stale.

use crate::error::{MasterError, Result};
use crate::master::Master;
use crate::pools::PoolManager;
use crate::spawner;
use crate::workers::{WorkerInfo, WorkerState};
use agentpool_registry::ReapMode;
use agentpool_store::Update;
use agentpool_types::ProcessId;
use nix::sys::signal::Signal;
use std::process::ExitStatus;
use std::sync::Arc;
use tokio::process::Child;
use tokio::sync::watch;

impl Master {
    /// Starts `n` workers of `pool` in the background; `pool.plan` already counted them.
    pub fn start_workers(self: &Arc<Self>, pool: &str, n: u32) {
        for _ in 0..n {
            let master = self.clone();
            let pool = pool.to_owned();
            self.tasks.spawn(async move {
                let Ok(manager) = master.pool(&pool) else {
                    return;
                };
                let outcome = master.start_worker(manager).await;
                if let Err(e) = &outcome {
                    tracing::error!(%pool, error = %e, "worker start failed");
                }
                manager.start_finished(outcome.map(|_| ()).map_err(|e| match e {
                    MasterError::WorkerStart { detail, .. } => detail,
                    other => other.to_string(),
                }));
            });
        }
    }

    /// Starts one worker and returns once it has registered.
    async fn start_worker(self: &Arc<Self>, pool: &PoolManager) -> Result<ProcessId> {
        let _permit = self
            .start_slots
            .acquire()
            .await
            .map_err(|_| MasterError::ShuttingDown)?;
        self.ensure_running()?;
        let id = ProcessId::new();
        let mut child = spawner::spawn(&self.config, &pool.spec, &id)?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pool = pool.name(), process_id = %id, pid, "starting worker");
        let timeout = self.config.worker_start_timeout;
        let registered = self.hub.wait(id.as_str(), timeout, || async {
            Ok::<_, MasterError>(self.registry.process(&id).await?.map(|_| ()))
        });
        let failure = tokio::select! {
            r = registered => match r {
                Ok(Some(())) => None,
                Ok(None) => Some(format!("did not register within {timeout:?}")),
                Err(e) => Some(e.to_string()),
            },
            status = child.wait() => Some(format!("exited before registering ({})", describe(&status))),
        };
        if let Some(reason) = failure {
            spawner::signal_group(pid, Signal::SIGKILL);
            let _ = child.wait().await;
            let _ = self.registry.reap(&id, ReapMode::Delete).await;
            let log = spawner::log_path(&self.config, pool.name(), &id);
            let tail = spawner::log_tail(&log);
            return Err(MasterError::WorkerStart {
                pool: pool.name().to_owned(),
                detail: format!("{reason}; worker log ends with:\n{tail}"),
            });
        }
        self.adopt_child(id.clone(), pool.name(), pid, child);
        self.record(Update::worker_started(&id, pool.name(), pid));
        tracing::info!(pool = pool.name(), process_id = %id, pid, "worker registered");
        Ok(id)
    }

    /// Records a registered worker and hands its `Child` to a monitor task.
    fn adopt_child(self: &Arc<Self>, id: ProcessId, pool: &str, pid: u32, mut child: Child) {
        self.watch_worker(id, pool, pid, async move { child.wait().await });
    }

    /// Records a running worker and watches `exit`, which resolves when the process is gone:
    /// the exit is then handled (expected, or a crash to reap) and announced to waiters.
    pub(crate) fn watch_worker<F>(self: &Arc<Self>, id: ProcessId, pool: &str, pid: u32, exit: F)
    where
        F: std::future::Future<Output = std::io::Result<ExitStatus>> + Send + 'static,
    {
        let (exited_tx, exited) = watch::channel(false);
        let info = WorkerInfo {
            pool: pool.to_owned(),
            pid,
            state: WorkerState::Running,
            exited,
        };
        self.workers.insert(id.clone(), info);
        let master = self.clone();
        self.tasks.spawn(async move {
            let status = exit.await;
            master.on_exit(&id, status).await;
            let _ = exited_tx.send(true);
        });
    }

    pub(crate) async fn on_exit(
        self: &Arc<Self>,
        id: &ProcessId,
        status: std::io::Result<ExitStatus>,
    ) {
        let Some(info) = self.workers.remove(id) else {
            return;
        };
        self.record(Update::worker_exited(id, describe(&status)));
        if info.state == WorkerState::Stopping {
            tracing::info!(process_id = %id, pid = info.pid, status = %describe(&status), "worker exited");
            if let Err(e) = self.registry.reap(id, ReapMode::Delete).await {
                tracing::warn!(process_id = %id, error = %e, "cannot remove stopped worker from registry");
            }
            return;
        }
        tracing::warn!(process_id = %id, pid = info.pid, pool = %info.pool, status = %describe(&status), "worker exited unexpectedly: reaping it now");
        match self.registry.reap(id, ReapMode::Orphan).await {
            Ok(orphans) => self.reschedule(orphans, id),
            Err(e) => tracing::error!(process_id = %id, error = %e, "cannot reap crashed worker"),
        }
    }

    /// Embedded mode: a worker's socket closing means it died; reap it without waiting for
    /// its heartbeat to go stale (its exit, if it is our child, is seen too; reaping twice is
    /// harmless).
    pub async fn reap_on_disconnect(
        self: Arc<Self>,
        mut closed: tokio::sync::mpsc::UnboundedReceiver<ProcessId>,
    ) {
        while let Some(id) = closed.recv().await {
            if self
                .workers
                .get(&id)
                .is_some_and(|w| w.state == WorkerState::Stopping)
            {
                continue;
            }
            match self.registry.reap(&id, ReapMode::Orphan).await {
                Ok(orphans) if !orphans.is_empty() => {
                    tracing::warn!(process_id = %id, agents = orphans.len(), "worker connection closed: reaped");
                    self.reschedule(orphans, &id);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(process_id = %id, error = %e, "cannot reap disconnected worker")
                }
            }
        }
    }

    /// Asks a worker to exit (SIGTERM to its group), waits up to the grace period, then
    /// SIGKILLs the group. Returns once the worker is gone from the registry.
    pub async fn stop_worker(&self, id: &ProcessId) {
        let Some(mut info) = self.workers.get(id) else {
            return;
        };
        self.workers.set_state(id, WorkerState::Stopping);
        spawner::signal_group(info.pid, Signal::SIGTERM);
        let grace = self.config.shutdown_grace;
        if tokio::time::timeout(grace, info.exited.wait_for(|e| *e))
            .await
            .is_err()
        {
            tracing::warn!(process_id = %id, pid = info.pid, "worker ignored SIGTERM for {grace:?}: SIGKILL");
            spawner::signal_group(info.pid, Signal::SIGKILL);
            let _ = info.exited.wait_for(|e| *e).await;
        }
    }

    /// Starts `min_processes` workers for every pool.
    pub fn start_minimum(self: &Arc<Self>) {
        for name in self.pool_names() {
            let Ok(pool) = self.pool(name) else { continue };
            let mut n = 0;
            while self.workers.live(name) + pool.starting() < pool.spec.min_processes
                && pool.reserve_start(self.workers.live(name))
            {
                n += 1;
            }
            if n > 0 {
                tracing::info!(pool = %name, n, "starting min_processes workers");
                self.start_workers(name, n);
            }
        }
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown: {e}"),
    }
}
