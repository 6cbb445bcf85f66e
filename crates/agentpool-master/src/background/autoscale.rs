//! The autoscaler: sizes each pool with `[pools.autoscale]` by its task backlog.
//!
//! A round reads every autoscaled pool's counts in one registry round trip and compares what
//! the backlog calls for (`desired`) with the agents the pool has plus those being spawned.
//! Short of it, the difference is spawned as one request, so the pool's demand-driven growth
//! starts the workers for all of them at once. Above it, autoscaled agents idle for
//! `scale_down_idle_secs` are retired by the registry in one step (out of the idle set and
//! marked `stopping`, so no task reaches them) and then terminated gracefully; a busy agent is
//! never touched. Empty workers then go by their pool's idle TTL.
//!
//! Rounds run every [`ROUND_INTERVAL`] and at once on a submit, at most one per
//! [`MIN_ROUND_GAP`]. With several masters on one registry, only the holder of the
//! `autoscaler` lock scales. Each decision is logged once with its inputs and counted.

use crate::agents::{Agents, SpawnOrder};
use crate::core::Core;
use crate::error::Result;
use agentpool_registry::Retirement;
use agentpool_types::{AgentSpec, Autoscale, PoolCounts};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// How often every autoscaled pool is looked at, whatever happens.
pub const ROUND_INTERVAL: Duration = Duration::from_millis(250);
/// Least time between two rounds, however fast tasks arrive.
const MIN_ROUND_GAP: Duration = Duration::from_millis(5);
/// Name of the lock that makes one master the autoscaler.
const AUTOSCALER_LOCK: &str = "autoscaler";
/// How long the lock outlives its holder's last renewal.
const LOCK_TTL: Duration = Duration::from_secs(3);
/// The holder renews the lock when this much of it is spent.
const LOCK_RENEW_AFTER: Duration = Duration::from_secs(1);

/// One autoscaled pool and what this master has under way for it.
struct Scaled {
    name: String,
    rule: Autoscale,
    /// Agents of spawn requests sent and not yet answered.
    spawning: Arc<AtomicU64>,
    /// The last decision logged, so an unchanged one is not logged again.
    last: Option<Decision>,
}

/// What a round decided for one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// Spawn this many agents.
    Up(u64),
    /// This many idle agents were retired.
    Down(u64),
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Up(n) => write!(f, "spawning {n} agents"),
            Decision::Down(n) => write!(f, "retiring {n} idle agents"),
        }
    }
}

pub(crate) struct Autoscaler {
    core: Arc<Core>,
    agents: Arc<Agents>,
    pools: Vec<Scaled>,
    /// When this master last took or renewed the lock, if it holds it.
    leased: Option<Instant>,
}

impl Autoscaler {
    pub fn new(core: Arc<Core>, agents: Arc<Agents>) -> Self {
        let pools = core
            .pools
            .iter()
            .filter_map(|p| {
                Some(Scaled {
                    name: p.name().to_owned(),
                    rule: p.spec.autoscale?,
                    spawning: Arc::default(),
                    last: None,
                })
            })
            .collect();
        Self {
            core,
            agents,
            pools,
            leased: None,
        }
    }

    pub async fn run(mut self) {
        if self.pools.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(ROUND_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.core.autoscale_soon.notified() => {}
                _ = self.core.stopping.cancelled() => return,
            }
            match self.round().await {
                Ok(()) => failing = false,
                Err(e) if !std::mem::replace(&mut failing, true) => {
                    tracing::warn!(error = %e, "autoscaler: cannot read or scale the pools; retrying");
                }
                Err(_) => {}
            }
            tokio::time::sleep(MIN_ROUND_GAP).await;
        }
    }

    /// One round over every autoscaled pool, if this master holds the lock.
    async fn round(&mut self) -> Result<()> {
        if !self.lead().await? {
            return Ok(());
        }
        let names: Vec<String> = self.pools.iter().map(|p| p.name.clone()).collect();
        let capacities = self.core.pools.capacities(&names);
        // Read before the counts: a spawn answered in between is then counted twice (one
        // round spawns too few), never missed (one round spawns too many).
        let spawning: Vec<u64> = self
            .pools
            .iter()
            .map(|p| p.spawning.load(Ordering::Acquire))
            .collect();
        let counts = self.core.registry.pool_counts(&capacities).await?;
        for c in counts {
            let Some(i) = self.pools.iter().position(|p| p.name == c.pool) else {
                continue;
            };
            self.scale(i, &c, spawning[i]).await?;
        }
        Ok(())
    }

    /// Takes or renews the autoscaler lock when due; whether this master holds it.
    async fn lead(&mut self) -> Result<bool> {
        if self
            .leased
            .is_some_and(|at| at.elapsed() < LOCK_RENEW_AFTER)
        {
            return Ok(true);
        }
        let registry = &self.core.registry;
        let held = registry
            .try_lock(AUTOSCALER_LOCK, &self.core.id, LOCK_TTL)
            .await?;
        if held != self.leased.is_some() {
            tracing::info!(held, "autoscaler lock");
        }
        self.leased = held.then(Instant::now);
        Ok(held)
    }

    /// Compares one pool's backlog with its agents and acts on the difference.
    async fn scale(&mut self, i: usize, c: &PoolCounts, spawning: u64) -> Result<()> {
        let pool = &self.pools[i];
        let desired = pool
            .rule
            .desired(c.tasks.queued_tasks, c.tasks.running_tasks);
        let have = c.agent_count + spawning;
        let decision = if desired > have {
            Some(Decision::Up(desired - have))
        } else if desired < c.agent_count && spawning == 0 {
            let retired = self.retire(i, desired, c.agent_count - desired).await?;
            (retired > 0).then_some(Decision::Down(retired))
        } else {
            None
        };
        if let Some(Decision::Up(n)) = decision {
            self.spawn(i, n);
        }
        let pool = &mut self.pools[i];
        if let Some(d) = decision {
            if decision != pool.last {
                let t = &c.tasks;
                tracing::info!(
                    pool = %pool.name, queued = t.queued_tasks, running = t.running_tasks,
                    agents = c.agent_count, spawning, desired, "autoscale: {d}"
                );
            }
            let direction = match d {
                Decision::Up(_) => "up",
                Decision::Down(_) => "down",
            };
            metrics::counter!("agentpool_autoscale_decisions_total", "pool" => pool.name.clone(), "direction" => direction)
                .increment(1);
            let data = serde_json::json!({ "direction": direction, "desired": desired, "agents": c.agent_count, "queued": c.tasks.queued_tasks });
            self.core.feed.publish("autoscale", Some(&pool.name), data);
        }
        pool.last = decision;
        Ok(())
    }

    /// Spawns `n` autoscaled agents as one request, in the background; they count as spawning
    /// until it answers.
    fn spawn(&self, i: usize, n: u64) {
        let pool = &self.pools[i];
        let Ok(spec) = self.core.pool(&pool.name).map(|p| p.spec.clone()) else {
            return;
        };
        let specs: Vec<AgentSpec> = (0..n)
            .map(|_| AgentSpec {
                autoscaled: true,
                ..AgentSpec::new(&spec, None, None, serde_json::json!({}))
            })
            .collect();
        let order = SpawnOrder {
            agents: specs,
            key: None,
            body_hash: String::new(),
            wait: false,
        };
        let (agents, spawning, name) = (
            self.agents.clone(),
            pool.spawning.clone(),
            pool.name.clone(),
        );
        spawning.fetch_add(n, Ordering::AcqRel);
        self.core.tasks.spawn(async move {
            if let Err(e) = agents.spawn(order).await {
                tracing::warn!(pool = %name, agents = n, error = %e, "autoscaler: scale-up failed; retrying next round");
            }
            spawning.fetch_sub(n, Ordering::AcqRel);
        });
    }

    /// Retires up to `most` idle autoscaled agents, keeping `keep`, and terminates them in the
    /// background. Returns how many were retired.
    async fn retire(&self, i: usize, keep: u64, most: u64) -> Result<u64> {
        let pool = &self.pools[i];
        let retired = self
            .core
            .registry
            .retire_idle(Retirement {
                pool: &pool.name,
                keep,
                idle_for: pool.rule.scale_down_idle(),
                most,
            })
            .await?;
        for id in &retired {
            let (agents, id) = (self.agents.clone(), id.clone());
            self.core.tasks.spawn(async move {
                if let Err(e) = agents.terminate(&id, true).await {
                    tracing::warn!(agent_id = %id, error = %e, "autoscaler: cannot terminate a retired agent; restore will");
                }
            });
        }
        Ok(retired.len() as u64)
    }
}
