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
    /// pool stays above `min_processes`. Empty workers come from one range query per pool (score
    /// = capacity), not a sweep of every worker. The drain checks emptiness in the same step
    /// that takes the worker out of placement, so an agent placed meanwhile is never stranded.
    async fn drain_idle(self: &Arc<Self>, empty_since: &mut HashMap<ProcessId, Instant>) {
        let pools = self.capacities(self.pool_names());
        let Ok(empty) = self.registry.empty_workers(&pools).await else {
            return;
        };
        let now = Instant::now();
        let mut seen = Vec::new();
        for (pool_name, id) in empty {
            let Some(info) = self.workers.get(&id) else {
                continue;
            };
            if info.state != WorkerState::Running {
                continue;
            }
            seen.push(id.clone());
            let since = *empty_since.entry(id.clone()).or_insert(now);
            let Ok(pool) = self.pool(&pool_name) else {
                continue;
            };
            if since.elapsed() < pool.spec.idle_worker_ttl()
                || self.workers.live(&pool_name) <= pool.spec.min_processes
            {
                continue;
            }
            if let Ok(Some(_)) = self.registry.drain(&id, true).await {
                tracing::info!(process_id = %id, pool = %pool_name, "worker idle for {:?}: stopping it", pool.spec.idle_worker_ttl());
                self.workers.set_state(&id, WorkerState::Draining);
                let master = self.clone();
                self.tasks
                    .spawn(async move { master.stop_worker(&id).await });
            }
        }
        empty_since.retain(|id, _| seen.contains(id));
    }
}
