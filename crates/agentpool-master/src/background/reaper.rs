//! The reaper: finds workers whose heartbeat is older than `heartbeat_timeout`, by Redis's
//! clock, in one range query, and reaps them; their agents are placed again.
//!
//! Only one master reaps at a time (a Redis lock with a TTL). When most workers turn stale at
//! once the cause is on the master's or Redis's side (a paused process, a clock jump), so the
//! reaper pauses and says so instead of rescheduling everything. When it resumes, workers
//! still stale get one more `heartbeat_timeout` to heartbeat before they are reaped: a process
//! resumed from a pause (or starved on a loaded host) needs a moment to send its first beat.
//! Reaping a crashed child on its exit does not depend on this loop.

use crate::agents::Agents;
use crate::core::Core;
use crate::workers::Supervisor;
use agentpool_registry::{ReapMode, RegistryError, Staleness};
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
    /// Stale workers were found just after a pause and left for now.
    Held(usize),
    /// Most workers are stale at once: nothing was reaped.
    Paused {
        stale: usize,
        total: u64,
    },
    /// This master's own loop was late: its view of time cannot be trusted this round.
    Late(Duration),
}

/// What the reaper works with.
pub(crate) struct Reaper {
    pub core: Arc<Core>,
    pub supervisor: Arc<Supervisor>,
    pub agents: Arc<Agents>,
}

impl Reaper {
    /// Runs reaper rounds twice per heartbeat interval until shutdown, so a worker is reaped
    /// at most half an interval after its heartbeat went stale.
    pub async fn run(self) {
        let config = &self.core.config;
        let period = config.heartbeat_interval / 2;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut paused = false;
        // Until when stale workers are left alone after a pause.
        let mut grace_until: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.core.stopping.cancelled() => return,
            }
            let lag = last.elapsed().saturating_sub(period);
            last = Instant::now();
            let round = if lag > config.heartbeat_timeout / 2 {
                Round::Late(lag)
            } else {
                let hold = paused || grace_until.is_some_and(|t| Instant::now() < t);
                match self.round(hold).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "reaper round failed");
                        continue;
                    }
                }
            };
            let was_paused = paused;
            paused = report(round, paused);
            if was_paused && !paused {
                grace_until = Some(Instant::now() + config.heartbeat_timeout);
            }
        }
    }

    /// One round: take the lock, find the stale workers, reap them unless most are stale or
    /// `hold` (just after a pause) says to leave them for now.
    pub async fn round(&self, hold: bool) -> Result<Round, RegistryError> {
        let (config, registry) = (&self.core.config, &self.core.registry);
        let ttl = config.heartbeat_interval * 3;
        if !registry.try_lock(REAPER_LOCK, &self.core.id, ttl).await? {
            return Ok(Round::NotReaper);
        }
        let Staleness { total, stale } = registry.stale(config.heartbeat_timeout).await?;
        if stale.is_empty() {
            return Ok(Round::Reaped(0));
        }
        // Workers stopped together cross the timeout up to a beat apart, and the first must
        // not be reaped alone: those within a beat of it count towards "most" too.
        let soon = config
            .heartbeat_timeout
            .saturating_sub(config.heartbeat_interval);
        let n = (registry.stale(soon).await?.stale.len()).max(stale.len()) as u64;
        // All of two or more, or most of three or more: the cause is not the workers.
        if total >= 2 && (n == total || (total >= MASS_STALE_MIN_WORKERS && n * 2 > total)) {
            return Ok(Round::Paused {
                stale: n as usize,
                total,
            });
        }
        if hold && !stale.is_empty() {
            return Ok(Round::Held(stale.len()));
        }
        for id in &stale {
            let orphans = registry.reap(id, ReapMode::Orphan).await?;
            tracing::warn!(process_id = %id, agents = orphans.len(), "reaped worker with a stale heartbeat");
            super::announce::reaped(&self.core, id, "stale_heartbeat", orphans.len());
            self.agents.reschedule(orphans, id);
            self.supervisor.kill_if_hung(id);
        }
        Ok(Round::Reaped(stale.len()))
    }
}

/// Logs what a round found when it changes the picture; returns whether the reaper is paused.
fn report(round: Round, paused: bool) -> bool {
    match round {
        Round::Paused { stale, total } if !paused => {
            tracing::error!(
                stale,
                total,
                "most workers went stale at once: the cause is likely the master or Redis (paused, clock jump), so the reaper pauses instead of rescheduling everything"
            );
            true
        }
        Round::Late(lag) => {
            tracing::warn!(?lag, "master loop was late; skipping a reaper round");
            paused
        }
        Round::Reaped(_) | Round::Held(_) | Round::NotReaper if paused => {
            tracing::info!("reaper resumed");
            false
        }
        _ => paused,
    }
}
