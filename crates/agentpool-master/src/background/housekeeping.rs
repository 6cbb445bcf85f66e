//! Periodic chores: drain workers that stayed empty for `idle_worker_ttl`, keep
//! `min_processes` workers per pool, and keep the `pools` set (Redis may have lost it).

use crate::core::Core;
use crate::workers::{Supervisor, WorkerState};
use agentpool_types::ProcessId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::MissedTickBehavior;

pub(crate) async fn run(core: Arc<Core>, supervisor: Arc<Supervisor>) {
    let mut tick = tokio::time::interval(core.config.heartbeat_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut empty_since: HashMap<ProcessId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = core.stopping.cancelled() => return,
        }
        match core.registry.init_pools(&core.pool_rules()).await {
            Ok(0) => {}
            Ok(_) => {
                tracing::warn!(
                    "the registry lost its pools: Redis was restarted empty or flushed; restoring from the store"
                );
                core.restore_soon.notify_one();
            }
            Err(e) => {
                tracing::debug!(error = %e, "housekeeping skipped: registry unavailable");
                continue;
            }
        }
        drain_idle(&core, &supervisor, &mut empty_since).await;
        supervisor.start_minimum();
    }
}

/// Stops workers of ours that have been empty for their pool's `idle_worker_ttl`, while the
/// pool stays above `min_processes`. Empty workers come from one range query per pool (score
/// = capacity), not a sweep of every worker. The drain checks emptiness in the same step
/// that takes the worker out of placement, so an agent placed meanwhile is never stranded.
async fn drain_idle(
    core: &Arc<Core>,
    supervisor: &Arc<Supervisor>,
    empty_since: &mut HashMap<ProcessId, Instant>,
) {
    let pools = core.pools.capacities(core.pools.names());
    let Ok(empty) = core.registry.empty_workers(&pools).await else {
        return;
    };
    let now = Instant::now();
    let mut seen = Vec::new();
    for (pool_name, id) in empty {
        if supervisor.state(&id) != Some(WorkerState::Running) {
            continue;
        }
        seen.push(id.clone());
        let since = *empty_since.entry(id.clone()).or_insert(now);
        let Ok(pool) = core.pool(&pool_name) else {
            continue;
        };
        let ttl = pool.spec.idle_worker_ttl();
        if since.elapsed() < ttl || supervisor.live(&pool_name) <= pool.spec.min_processes {
            continue;
        }
        if let Ok(Some(_)) = core.registry.drain(&id, true).await {
            tracing::info!(process_id = %id, pool = %pool_name, "worker idle for {ttl:?}: stopping it");
            supervisor.mark_draining(&id);
            let sup = supervisor.clone();
            core.tasks.spawn(async move { sup.stop(&id).await });
        }
    }
    empty_since.retain(|id, _| seen.contains(id));
}
