//! The task queue's clockwork: a few times a second each pool's retries that are due go back
//! in line, attempts whose lease ran out are retried or failed, and idle agents get what waits
//! (the registry's `tend_tasks` step). Once an hour the store trims finished tasks past their
//! retention.

use crate::core::Core;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// How often each pool is tended: the resolution of retry backoffs and lease expiry.
pub const TEND_INTERVAL: Duration = Duration::from_millis(100);
/// How often finished tasks past their retention are trimmed.
const TRIM_INTERVAL: Duration = Duration::from_secs(3600);

pub(crate) async fn run(core: Arc<Core>) {
    let mut tick = tokio::time::interval(TEND_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_trim = Instant::now() + TRIM_INTERVAL;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = core.stopping.cancelled() => return,
        }
        for pool in core.pools.names() {
            match core.registry.tend_tasks(pool).await {
                Ok(t) if t.expired > 0 => {
                    tracing::warn!(%pool, expired = t.expired, "task attempts whose worker stopped reporting: retried or failed");
                }
                Ok(_) => {}
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "cannot tend the task queues; retrying");
                    }
                    continue;
                }
            }
            failing = false;
        }
        if Instant::now() >= next_trim {
            next_trim = Instant::now() + TRIM_INTERVAL;
            trim(&core).await;
        }
    }
}

/// Deletes finished tasks past the retention period, and past the newest kept per pool.
pub(crate) async fn trim(core: &Core) {
    let (age, count) = (core.config.task_retention, core.config.task_retention_count);
    match core.store.trim_tasks(age, count).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(trimmed = n, "finished tasks past their retention removed"),
        Err(e) => tracing::warn!(error = %e, "cannot trim finished tasks"),
    }
}
