//! The embedded registry's data, in memory behind one mutex.
//!
//! Every public method takes the lock once and does all its work inside it: that critical
//! section is what a Lua script's atomicity is in Redis, so no caller can observe (or interleave
//! with) half of a step. The slot-moving steps (reserve, release, drain, reap, pool counts) are
//! in `slots.rs`, the task queue's rules in `tasks.rs` and its steps in `task_steps.rs`; this
//! file holds the data, the worker's steps and the reads.
//!
//! What a step publishes (a worker's command, a task's event) is sent through the [`Hub`]
//! before its critical section ends, as a script's `PUBLISH` is part of the script: two steps'
//! messages never arrive interleaved or out of order.

use super::hub::Hub;
use super::tasks::{Entry, Out, PoolTasks};
use super::zset::ZSet;
use crate::{Heartbeat, Holding, Hosted, Staleness, StatusWrite, Target};
use agentpool_types::now_rfc3339;
use agentpool_types::{
    Agent, AgentId, AgentSpec, AgentState, ProcessId, ProcessState, TaskId, TaskRules, TaskState,
    WorkerProcess,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a reap tombstone lasts: as long as Redis's `reaped:<id>` key (a day), which
/// outlives any pause a worker could come back from.
pub(super) const TOMBSTONE_TTL: Duration = Duration::from_secs(86_400);

/// One registered worker: its record, the agents assigned to it, and its last heartbeat.
pub(super) struct Proc {
    pub record: WorkerProcess,
    pub agents: BTreeSet<AgentId>,
    /// Monotonic, so `stale` cannot be fooled by a wall-clock jump.
    pub heartbeat: Instant,
}

/// Everything the Redis keys hold, by the same names.
#[derive(Default)]
pub(super) struct Data {
    /// `pools`.
    pub pools: BTreeSet<String>,
    /// `pool:<p>:processes`: free slots per worker in placement. Signed like a zset score:
    /// a worker that registers again holding more agents than it has room for goes negative.
    pub placement: HashMap<String, BTreeMap<ProcessId, i64>>,
    /// `pool:<p>:agents`.
    pub pool_agents: HashMap<String, BTreeSet<AgentId>>,
    /// `process:<id>`, `process:<id>:agents` and the `processes:heartbeats` member.
    pub processes: HashMap<ProcessId, Proc>,
    /// `agent:<id>`.
    pub agents: HashMap<AgentId, Agent>,
    /// `reaped:<id>`, with its expiry.
    pub tombstones: HashMap<ProcessId, Instant>,
    /// `lock:<name>`: holder and expiry.
    pub locks: HashMap<String, (String, Instant)>,
    /// `task:<id>`.
    pub tasks: HashMap<TaskId, Entry>,
    /// The finished tasks' `PEXPIRE`, soonest first.
    pub expiries: BTreeSet<(Instant, TaskId)>,
    /// `pool:<p>:rules`.
    pub rules: HashMap<String, TaskRules>,
    /// `pool:<p>:{queue,asked,delayed,running,idle,dead,circuit}`.
    pub pool_tasks: HashMap<String, PoolTasks>,
    /// `agent:<a>:queue`: the tasks waiting for that agent alone.
    pub agent_queues: HashMap<AgentId, ZSet<TaskId>>,
    /// What the current step publishes, sent when it ends.
    pub outbox: Vec<Out>,
}

impl Data {
    /// The worker record as `process()` shows it: `agent_count` is the size of its agent set,
    /// the invariant the Redis scripts keep by hand.
    pub fn record(p: &Proc) -> WorkerProcess {
        WorkerProcess {
            agent_count: u32::try_from(p.agents.len()).unwrap_or(u32::MAX),
            ..p.record.clone()
        }
    }

    pub fn tombstoned(&mut self, id: &ProcessId, now: Instant) -> bool {
        self.tombstones.retain(|_, expiry| *expiry > now);
        self.tombstones.contains_key(id)
    }

    /// Sets or clears (`PERSIST`) a task's expiry.
    pub fn expire(&mut self, id: &TaskId, at: Option<Instant>) {
        let Some(e) = self.tasks.get_mut(id) else {
            return;
        };
        if let Some(old) = std::mem::replace(&mut e.expires, at) {
            self.expiries.remove(&(old, id.clone()));
        }
        if let Some(at) = at {
            self.expiries.insert((at, id.clone()));
        }
    }

    /// Drops the finished tasks whose time is up: Redis would no longer show their keys.
    fn drop_expired(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.first()
            && *at <= now
        {
            if let Some((_, id)) = self.expiries.pop_first() {
                self.tasks.remove(&id);
            }
        }
    }

    /// The attempts a worker's agents hold, as the heartbeat hands them back: only those
    /// still running on that agent.
    fn holding(&self, agents: &[AgentId]) -> Vec<Holding> {
        agents
            .iter()
            .filter_map(|a| {
                let id = self.agents.get(a)?.current_task.as_ref()?;
                let e = self.tasks.get(id)?;
                let t = &e.task;
                let running = t.status == TaskState::Running && t.agent_id.as_ref() == Some(a);
                running.then(|| Holding {
                    agent_id: a.clone(),
                    task_id: id.clone(),
                    attempt: e.runs,
                })
            })
            .collect()
    }
}

/// The embedded registry's state. Shared by the master's and the workers' side.
#[derive(Default)]
pub struct EmbeddedState {
    data: Mutex<Data>,
    hub: Hub,
}

/// One critical section: the data, and on the way out what the step published.
pub(super) struct Guard<'a> {
    data: MutexGuard<'a, Data>,
    hub: &'a Hub,
}

impl Deref for Guard<'_> {
    type Target = Data;
    fn deref(&self) -> &Data {
        &self.data
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Data {
        &mut self.data
    }
}

impl Drop for Guard<'_> {
    /// Sends the step's messages while the lock is still held, in the order it made them.
    fn drop(&mut self) {
        for out in self.data.outbox.drain(..) {
            match out {
                Out::Command(pid, cmd) => self.hub.send(&Target::Process(&pid), &cmd),
                Out::Event(event) => self.hub.publish(&event),
            }
        }
    }
}

/// A status stored the way Redis stores it: `{:.1}` text read back as a number.
fn cpu(value: f32) -> f32 {
    format!("{value:.1}").parse().unwrap_or(0.0)
}

impl EmbeddedState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The one lock. A panic inside a step cannot leave half-written data behind that a later
    /// step would trip over any worse than the panic itself, so a poisoned lock is taken over.
    /// Finished tasks past their time are gone before the step looks.
    pub(super) fn lock(&self) -> Guard<'_> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        data.drop_expired(Instant::now());
        Guard {
            data,
            hub: &self.hub,
        }
    }

    /// The pub/sub channels, which live with the data so steps publish inside their section.
    pub(super) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Records the pools and (again, as the master starts) their task rules.
    pub fn init_pools(&self, pools: &[(String, TaskRules)]) -> u64 {
        let mut d = self.lock();
        let mut added = 0;
        for (pool, rules) in pools {
            // As in Redis: missing from the set, or without rules (only the master sets them).
            let new_in_set = d.pools.insert(pool.clone());
            let had_rules = d.rules.insert(pool.clone(), *rules).is_some();
            added += u64::from(new_in_set || !had_rules);
        }
        added
    }

    /// `register.lua`: the record, the hosted agents not owned elsewhere, placement by free
    /// slots (agents already assigned keep theirs), and a first heartbeat.
    pub fn register_with(&self, p: &WorkerProcess, hosted: &[Hosted]) {
        let mut d = self.lock();
        let (instant, now) = (Instant::now(), now_rfc3339());
        let pid = &p.process_id;
        let pool = &p.pool_name;
        let mut assigned = d
            .processes
            .remove(pid)
            .map(|old| old.agents)
            .unwrap_or_default();
        for h in hosted {
            let id = &h.agent.agent_id;
            let owner = d.agents.get(id).map(|a| a.process_id.clone());
            if matches!(&owner, Some(Some(o)) if o != pid) {
                continue;
            }
            let agent = d.agents.entry(id.clone()).or_insert_with(|| Agent {
                spec: AgentSpec {
                    pool_name: pool.clone(),
                    ..h.agent.clone()
                },
                process_id: None,
                status: h.status,
                restarts: 0,
                registered_at: now.clone(),
                updated_at: now.clone(),
                error: None,
                epoch: 1,
                current_task: None,
                tasks_done: 0,
                tasks_failed: 0,
            });
            agent.process_id = Some(pid.clone());
            agent.status = h.status;
            agent.updated_at.clone_from(&now);
            assigned.insert(id.clone());
            d.pool_agents
                .entry(pool.clone())
                .or_default()
                .insert(id.clone());
        }
        let free = i64::from(p.max_agents) - assigned.len() as i64;
        let record = WorkerProcess {
            status: ProcessState::Running,
            last_heartbeat: now,
            rss_bytes: p.rss_bytes,
            cpu_percent: cpu(p.cpu_percent),
            ..p.clone()
        };
        let proc = Proc {
            record,
            agents: assigned,
            heartbeat: instant,
        };
        d.processes.insert(pid.clone(), proc);
        d.placement
            .entry(pool.clone())
            .or_default()
            .insert(pid.clone(), free);
        d.pools.insert(pool.clone());
    }

    /// `heartbeat.lua`: stamps the worker and hands back the agents that should run, with the
    /// task attempts they hold.
    pub fn heartbeat(&self, id: &ProcessId, rss_bytes: u64, cpu_percent: f32) -> Heartbeat {
        let mut d = self.lock();
        let instant = Instant::now();
        let Some(p) = d.processes.get_mut(id) else {
            return if d.tombstoned(id, instant) {
                Heartbeat::Reaped
            } else {
                Heartbeat::Unregistered
            };
        };
        p.heartbeat = instant;
        p.record.last_heartbeat = now_rfc3339();
        p.record.rss_bytes = rss_bytes;
        p.record.cpu_percent = cpu(cpu_percent);
        let ids: Vec<AgentId> = p.agents.iter().cloned().collect();
        // Agents on their way out are left out, or a terminate racing a heartbeat would start
        // them again. An id without an agent is handed back, as the script does.
        let assigned: Vec<AgentId> = ids
            .into_iter()
            .filter(|a| {
                d.agents.get(a).is_none_or(|a| {
                    !matches!(
                        a.status,
                        AgentState::Stopping
                            | AgentState::Stopped
                            | AgentState::Failed
                            | AgentState::Quarantined
                    )
                })
            })
            .collect();
        let holding = d.holding(&assigned);
        Heartbeat::Alive { assigned, holding }
    }

    /// `agent_status.lua`: written only while the agent is `process`'s under `w.epoch`.
    pub fn set_agent_status(&self, process: &ProcessId, w: &StatusWrite<'_>) -> Option<u64> {
        let mut d = self.lock();
        let a = d.agents.get_mut(w.agent)?;
        if a.process_id.as_ref() != Some(process) || w.epoch.is_some_and(|e| e != a.epoch) {
            return None;
        }
        // An agent being terminated may only be reported ended, as in the script.
        if a.status == AgentState::Stopping && !w.status.is_terminal() {
            return None;
        }
        a.status = w.status;
        a.updated_at = now_rfc3339();
        if let Some(e) = w.error.filter(|e| !e.is_empty()) {
            a.error = Some(e.to_owned());
        }
        if w.restarted {
            a.restarts += 1;
        }
        let epoch = a.epoch;
        // Only agent_ready and finish_task make an agent available for tasks.
        if !matches!(w.status, AgentState::Idle | AgentState::Busy) {
            let pool = a.spec.pool_name.clone();
            d.pool_tasks(&pool).idle.remove(w.agent);
        }
        (epoch > 0).then_some(epoch)
    }

    /// `process_status.lua`: never resurrects a reaped registration.
    pub fn set_process_status(&self, id: &ProcessId, status: ProcessState) {
        if let Some(p) = self.lock().processes.get_mut(id) {
            p.record.status = status;
        }
    }

    /// `agent_mark.lua`: the master's status write; the agent as it was, `None` when gone.
    pub fn mark_agent(
        &self,
        id: &AgentId,
        status: AgentState,
        error: Option<&str>,
    ) -> Option<Agent> {
        let mut d = self.lock();
        let a = d.agents.get_mut(id)?;
        let before = a.clone();
        a.status = status;
        a.updated_at = now_rfc3339();
        if let Some(e) = error.filter(|e| !e.is_empty()) {
            a.error = Some(e.to_owned());
        }
        Some(before)
    }

    /// A worker's free slots while it is in its pool's placement: what the Redis zset score
    /// shows, for inspection.
    pub fn free_slots(&self, pool: &str, id: &ProcessId) -> Option<i64> {
        self.lock().placement.get(pool)?.get(id).copied()
    }

    /// A pool's idle agents, longest idle first: the `pool:<p>:idle` zset, for inspection.
    pub fn idle_agents(&self, pool: &str) -> Vec<AgentId> {
        let d = self.lock();
        d.pool_tasks
            .get(pool)
            .map_or(Vec::new(), |t| t.idle.members())
    }

    /// A pool's failed tasks, oldest first: the `pool:<p>:dead` zset, for inspection.
    pub fn dead_tasks(&self, pool: &str) -> Vec<TaskId> {
        let d = self.lock();
        d.pool_tasks
            .get(pool)
            .map_or(Vec::new(), |t| t.dead.members())
    }

    pub fn agent(&self, id: &AgentId) -> Option<Agent> {
        self.lock().agents.get(id).cloned()
    }

    /// Every agent of `pools`, ordered by id.
    pub fn agents(&self, pools: &[String]) -> Vec<Agent> {
        let d = self.lock();
        let mut out: Vec<Agent> = pools
            .iter()
            .filter_map(|p| d.pool_agents.get(p))
            .flatten()
            .filter_map(|id| d.agents.get(id).cloned())
            .collect();
        out.sort_by(|a, b| a.id().cmp(b.id()));
        out
    }

    pub fn process(&self, id: &ProcessId) -> Option<WorkerProcess> {
        self.lock().processes.get(id).map(Data::record)
    }

    /// Every registered worker, ordered by id.
    pub fn processes(&self) -> Vec<WorkerProcess> {
        let d = self.lock();
        let mut out: Vec<WorkerProcess> = d.processes.values().map(Data::record).collect();
        out.sort_by(|a, b| a.process_id.cmp(&b.process_id));
        out
    }

    /// `stale.lua`: workers whose last heartbeat is more than `timeout` ago, oldest first.
    pub fn stale(&self, timeout: Duration) -> Staleness {
        let d = self.lock();
        let now = Instant::now();
        let mut stale: Vec<(Instant, ProcessId)> = d
            .processes
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.heartbeat) > timeout)
            .map(|(id, p)| (p.heartbeat, id.clone()))
            .collect();
        stale.sort();
        Staleness {
            total: d.processes.len() as u64,
            stale: stale.into_iter().map(|(_, id)| id).collect(),
        }
    }

    /// `lock.lua`: takes a free or expired lock, or renews the caller's own.
    pub fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> bool {
        let mut d = self.lock();
        let now = Instant::now();
        let held_by_other = d
            .locks
            .get(name)
            .is_some_and(|(h, expiry)| h != holder && *expiry > now);
        if held_by_other {
            return false;
        }
        d.locks
            .insert(name.to_owned(), (holder.to_owned(), now + ttl));
        true
    }
}
