//! `PoolManager`: how many workers a pool is starting and how many spawns wait for room.
//!
//! Growth is planned from demand, not per request: a burst of N spawns that find no room
//! starts ceil(N / capacity) workers, counting capacity that is still starting. Each worker
//! that comes up hands out one wake-up per slot, so waiters retry `reserve` only when a slot
//! may be there for them.

use crate::error::{MasterError, Result};
use agentpool_types::PoolSpec;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Semaphore;

/// The configured pools, by name and in configuration order.
pub struct Pools {
    by_name: HashMap<String, PoolManager>,
    names: Vec<String>,
}

impl Pools {
    pub fn new(specs: &[PoolSpec]) -> Self {
        Self {
            by_name: specs
                .iter()
                .map(|p| (p.name.clone(), PoolManager::new(p.clone())))
                .collect(),
            names: specs.iter().map(|p| p.name.clone()).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Result<&PoolManager> {
        self.by_name
            .get(name)
            .ok_or_else(|| MasterError::UnknownPool(name.to_owned()))
    }

    /// Pool names in configuration order, for listings.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn iter(&self) -> impl Iterator<Item = &PoolManager> {
        self.names.iter().filter_map(|n| self.by_name.get(n))
    }

    /// The given pools with their capacity per worker, as the registry's counting steps take
    /// them; unknown names are skipped.
    pub fn capacities(&self, names: &[String]) -> Vec<(String, u32)> {
        names
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .map(|p| (p.spec.name.clone(), p.spec.max_agents_per_process))
            .collect()
    }
}

pub struct PoolManager {
    pub spec: PoolSpec,
    growth: Mutex<Growth>,
    /// One permit per slot that came up; waiters take one before retrying `reserve`.
    slots: Semaphore,
}

#[derive(Default)]
struct Growth {
    /// Workers being started now.
    starting: u32,
    /// Spawn requests waiting for room.
    waiting: u64,
    /// Wake-ups handed out and not yet claimed by a waiter. Counted here rather than read
    /// from the semaphore: permits it assigns to parked waiters vanish from
    /// `available_permits` before those waiters stop counting as `waiting`.
    fresh: u64,
    /// Start failures so far, and the last one's message.
    failures: u64,
    last_failure: String,
}

/// Counts a request as waiting for room until it holds a slot wake-up or is dropped.
pub struct WaitTicket<'a> {
    pool: &'a PoolManager,
    /// Holds a wake-up: the request is served by capacity that already came up.
    claimed: bool,
}

impl WaitTicket<'_> {
    /// Waits for a slot wake-up, at most `max`; returns whether one came.
    pub async fn await_slot(&mut self, max: std::time::Duration) -> bool {
        self.still_waiting();
        let Ok(Ok(permit)) = tokio::time::timeout(max, self.pool.slots.acquire()).await else {
            return false;
        };
        permit.forget();
        let mut g = self.pool.growth();
        g.waiting -= 1;
        g.fresh = g.fresh.saturating_sub(1);
        self.claimed = true;
        true
    }

    /// The last wake-up led to no slot (taken by a termination's gap or a fast path, or
    /// standing for a worker that has since stopped): count this request as demand again,
    /// before the pool plans its growth, or the plan would start no worker for it.
    pub fn still_waiting(&mut self) {
        if self.claimed {
            self.pool.growth().waiting += 1;
            self.claimed = false;
        }
    }

    /// The request got its slot. A request that got it without a wake-up takes one, so
    /// wake-ups keep matching the fresh slots they stand for.
    pub fn served(self) {
        if !self.claimed {
            self.pool.consume_wakeup();
        }
    }
}

impl Drop for WaitTicket<'_> {
    fn drop(&mut self) {
        if !self.claimed {
            self.pool.growth().waiting -= 1;
        }
    }
}

impl PoolManager {
    pub fn new(spec: PoolSpec) -> Self {
        Self {
            spec,
            growth: Mutex::default(),
            slots: Semaphore::new(0),
        }
    }

    fn growth(&self) -> MutexGuard<'_, Growth> {
        self.growth.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn begin_wait(&self) -> WaitTicket<'_> {
        self.growth().waiting += 1;
        WaitTicket {
            pool: self,
            claimed: false,
        }
    }

    /// A spawn took a slot without waiting: one fresh slot fewer to hand out.
    pub fn consume_wakeup(&self) {
        if let Ok(permit) = self.slots.try_acquire() {
            permit.forget();
            let mut g = self.growth();
            g.fresh = g.fresh.saturating_sub(1);
        }
    }

    /// Spawn requests waiting for room: `pending_spawns` of `/pools`.
    pub fn waiting(&self) -> u64 {
        self.growth().waiting
    }

    pub fn starting(&self) -> u32 {
        self.growth().starting
    }

    /// Start failures so far; a waiter compares it with the count when it began.
    pub fn failures(&self) -> u64 {
        self.growth().failures
    }

    pub fn last_failure(&self) -> String {
        self.growth().last_failure.clone()
    }

    /// How many workers to start now, given `live` workers of the pool, and counts them as
    /// starting. Demand already covered by fresh slots not yet handed out does not count.
    /// Fails when more are needed, none may start, and none is on its way.
    pub fn plan(&self, live: u32) -> Result<u32> {
        let mut g = self.growth();
        let cap = u64::from(self.spec.max_agents_per_process);
        let uncovered = g.waiting.saturating_sub(g.fresh);
        let needed = u32::try_from(uncovered.div_ceil(cap)).unwrap_or(u32::MAX);
        let needed = needed.saturating_sub(g.starting);
        let room = self.spec.max_processes.saturating_sub(live + g.starting);
        let n = needed.min(room);
        if n == 0 && needed > 0 && g.starting == 0 {
            return Err(MasterError::PoolFull {
                pool: self.spec.name.clone(),
                max_processes: self.spec.max_processes,
            });
        }
        g.starting += n;
        Ok(n)
    }

    /// Counts one more worker as starting, outside of demand (`min_processes`).
    pub fn reserve_start(&self, live: u32) -> bool {
        let mut g = self.growth();
        if live + g.starting >= self.spec.max_processes {
            return false;
        }
        g.starting += 1;
        true
    }

    /// A start ended. On success its slots are handed to waiters as wake-ups; a failure is
    /// recorded, and waiters see it on their next retry.
    pub fn start_finished(&self, outcome: std::result::Result<(), String>) {
        let mut g = self.growth();
        g.starting -= 1;
        match outcome {
            Ok(()) => {
                g.fresh += u64::from(self.spec.max_agents_per_process);
                self.slots
                    .add_permits(self.spec.max_agents_per_process as usize);
            }
            Err(e) => {
                g.failures += 1;
                g.last_failure = e;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cap: u32, max: u32) -> PoolManager {
        let mut spec = PoolSpec::new("p", "r");
        spec.max_agents_per_process = cap;
        spec.max_processes = max;
        PoolManager::new(spec)
    }

    #[test]
    fn a_burst_starts_ceil_n_over_capacity_workers() {
        let p = pool(10, 100);
        let mut started = 0;
        let mut tickets = Vec::new();
        for _ in 0..25 {
            tickets.push(p.begin_wait());
            started += p.plan(0).unwrap();
        }
        assert_eq!(started, 3);
        assert_eq!(p.starting(), 3);
        drop(tickets);
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn full_only_when_nothing_can_start_and_nothing_is_starting() {
        let p = pool(10, 2);
        let _t = p.begin_wait();
        assert_eq!(p.plan(1).unwrap(), 1);
        assert_eq!(p.plan(1).unwrap(), 0, "one is already starting");
        p.start_finished(Ok(()));
        assert_eq!(
            p.plan(2).unwrap(),
            0,
            "the new worker's fresh slots cover the demand"
        );
        for _ in 0..10 {
            p.consume_wakeup();
        }
        assert!(matches!(p.plan(2), Err(MasterError::PoolFull { .. })));
    }

    #[test]
    fn failures_are_counted_with_their_message() {
        let p = pool(10, 2);
        assert!(p.reserve_start(0));
        p.start_finished(Err("boom".into()));
        assert_eq!((p.failures(), p.last_failure().as_str()), (1, "boom"));
        assert_eq!(p.starting(), 0);
    }
}
