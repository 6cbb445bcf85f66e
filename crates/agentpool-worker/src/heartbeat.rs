//! The heartbeat loop. Each beat is one script call that also returns the worker's assignment,
//! which drives reconcile; a "reaped" answer fences the worker.

use crate::Exit;
use crate::host::AgentHost;
use crate::metrics::Sampler;
use agentpool_registry::{ControlPlane, Heartbeat};
use agentpool_types::WorkerConfig;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Beats until shutdown (returns `Shutdown`) or until the registry says reaped (`Fenced`).
pub async fn run(
    config: WorkerConfig,
    host: AgentHost,
    control: Arc<dyn ControlPlane>,
    shutdown: CancellationToken,
) -> Exit {
    let mut sampler = Sampler::new();
    let mut tick = tokio::time::interval(config.heartbeat_interval());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return Exit::Shutdown,
        }
        let (rss, cpu) = sampler.sample();
        let asked_at = Instant::now();
        match control.heartbeat(&config.process_id, rss, cpu).await {
            Ok(Heartbeat::Alive { assigned, holding }) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("registry reachable again");
                }
                host.reconcile(&assigned, asked_at).await;
                host.reconcile_tasks(&holding).await;
            }
            Ok(Heartbeat::Unregistered) => {
                // Redis lost its data (restarted empty, or flushed): put this worker and what
                // it runs back, then carry on.
                tracing::warn!("registration lost without a reap: registering again");
                let me = crate::describe(&config, rss, cpu);
                if let Err(e) = control.register_with(&me, &host.hosted()).await {
                    tracing::warn!(error = %e, "registering again failed; retrying next beat");
                }
            }
            Ok(Heartbeat::Reaped) => {
                shutdown.cancel();
                return Exit::Fenced;
            }
            Err(e) => {
                // Agents keep running through a registry outage; say so once, not every beat.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "heartbeat failed; agents keep running, retrying");
                }
            }
        }
    }
}
