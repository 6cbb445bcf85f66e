//! Periodic chores: drain workers that stayed empty for `idle_worker_ttl`, keep
//! `min_processes` workers per pool, and keep the `pools` set (Redis may have lost it).

use crate::master::Master;
use crate::workers::WorkerState;
use agentpool_types::ProcessId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::MissedTickBehavior;

impl Master {
    pub async fn housekeeping_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut empty_since: HashMap<ProcessId, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stopping.cancelled() => return,
            }
            match self.registry.init_pools(self.pool_names()).await {
                Ok(0) => {}
                Ok(_) => {
                    tracing::warn!(
                        "the registry lost its pools: Redis was restarted empty or flushed; restoring from the store"
                    );
                    self.restore_soon.notify_one();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "housekeeping skipped: registry unavailable");
                    continue;
                }
            }
            self.drain_idle(&mut empty_since).await;
            self.start_minimum();
        }
    }

    /// Stops workers of ours that have been empty for their pool's `idle_worker_ttl`, while the
    /// pool stays above `min_processes`. The drain checks emptiness in the same step that takes
    /// the worker out of placement, so an agent placed meanwhile is never stranded.
    async fn drain_idle(self: &Arc<Self>, empty_since: &mut HashMap<ProcessId, Instant>) {
        let Ok(processes) = self.registry.processes().await else {
            return;
        };
        let now = Instant::now();
        let mut seen = Vec::new();
        for p in processes {
            let Some(info) = self.workers.get(&p.process_id) else {
                continue;
            };
            if p.agent_count > 0 || info.state != WorkerState::Running {
                continue;
            }
            seen.push(p.process_id.clone());
            let since = *empty_since.entry(p.process_id.clone()).or_insert(now);
            let Ok(pool) = self.pool(&info.pool) else {
                continue;
            };
            if since.elapsed() < pool.spec.idle_worker_ttl()
                || self.workers.live(&info.pool) <= pool.spec.min_processes
            {
                continue;
            }
            if let Ok(Some(_)) = self.registry.drain(&p.process_id, true).await {
                tracing::info!(process_id = %p.process_id, pool = %info.pool, "worker idle for {:?}: stopping it", pool.spec.idle_worker_ttl());
                self.workers.set_state(&p.process_id, WorkerState::Draining);
                let master = self.clone();
                let id = p.process_id.clone();
                self.tasks
                    .spawn(async move { master.stop_worker(&id).await });
            }
        }
        empty_since.retain(|id, _| seen.contains(id));
    }
}
