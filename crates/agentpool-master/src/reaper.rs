//! The reaper: finds workers whose heartbeat is older than `heartbeat_timeout`, by Redis's
//! clock, in one range query, and reaps them; their agents are placed again.
//!
//! Only one master reaps at a time (a Redis lock with a TTL). When most workers turn stale at
//! once the cause is on the master's or Redis's side (a paused process, a clock jump), so the
//! reaper pauses and says so instead of rescheduling everything. Reaping a crashed child on
//! its exit does not depend on this loop.

use crate::master::Master;
use crate::spawner;
use agentpool_registry::{ReapMode, Staleness};
use nix::sys::signal::Signal;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// Name of the lock that makes one master the reaper.
const REAPER_LOCK: &str = "reaper";
/// "Most" applies from this many workers on; below it, only "all of them" (from two) pauses:
/// one stale worker of one is just dead.
const MASS_STALE_MIN_WORKERS: u64 = 3;

/// What one reaper round found.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// Another master holds the lock.
    NotReaper,
    Reaped(usize),
    /// Most workers are stale at once: nothing was reaped.
    Paused {
        stale: usize,
        total: u64,
    },
    /// This master's own loop was late: its view of time cannot be trusted this round.
    Late(Duration),
}

impl Master {
    /// Runs reaper rounds twice per heartbeat interval until shutdown, so a worker is reaped
    /// at most half an interval after its heartbeat went stale.
    pub async fn reap_loop(self: Arc<Self>) {
        let period = self.config.heartbeat_interval / 2;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut paused = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stopping.cancelled() => return,
            }
            let lag = last.elapsed().saturating_sub(period);
            last = Instant::now();
            let round = if lag > self.config.heartbeat_timeout / 2 {
                Round::Late(lag)
            } else {
                match self.reap_round().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "reaper round failed");
                        continue;
                    }
                }
            };
            match round {
                Round::Paused { stale, total } if !paused => {
                    paused = true;
                    tracing::error!(
                        stale,
                        total,
                        "most workers went stale at once: the cause is likely the master or Redis (paused, clock jump), so the reaper pauses instead of rescheduling everything"
                    );
                }
                Round::Late(lag) => {
                    tracing::warn!(?lag, "master loop was late; skipping a reaper round")
                }
                Round::Reaped(_) | Round::NotReaper if paused => {
                    paused = false;
                    tracing::info!("reaper resumed");
                }
                _ => {}
            }
        }
    }

    /// One round: take the lock, find the stale workers, reap them unless most are stale.
    pub async fn reap_round(self: &Arc<Self>) -> Result<Round, agentpool_registry::RegistryError> {
        let ttl = self.config.heartbeat_interval * 3;
        if !self.registry.try_lock(REAPER_LOCK, &self.id, ttl).await? {
            return Ok(Round::NotReaper);
        }
        let Staleness { total, stale } = self.registry.stale(self.config.heartbeat_timeout).await?;
        let n = stale.len() as u64;
        // All of two or more, or most of three or more: the cause is not the workers.
        if total >= 2 && (n == total || (total >= MASS_STALE_MIN_WORKERS && n * 2 > total)) {
            return Ok(Round::Paused {
                stale: stale.len(),
                total,
            });
        }
        for id in &stale {
            let orphans = self.registry.reap(id, ReapMode::Orphan).await?;
            tracing::warn!(process_id = %id, agents = orphans.len(), "reaped worker with a stale heartbeat");
            self.reschedule(orphans, id);
            self.kill_if_hung(id);
        }
        Ok(Round::Reaped(stale.len()))
    }

    /// A reaped worker of ours fences itself when it wakes up; one that never does (stopped
    /// for good) is killed after another timeout, so it stops counting against the pool.
    fn kill_if_hung(self: &Arc<Self>, id: &agentpool_types::ProcessId) {
        let Some(mut info) = self.workers.get(id) else {
            return;
        };
        let wait = self.config.heartbeat_timeout;
        self.tasks.spawn(async move {
            if tokio::time::timeout(wait, info.exited.wait_for(|e| *e))
                .await
                .is_err()
            {
                tracing::warn!(pid = info.pid, "reaped worker did not exit: SIGKILL");
                spawner::signal_group(info.pid, Signal::SIGKILL);
            }
        });
    }
}
