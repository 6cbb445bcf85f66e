//! The task queue's one set of rules, `lua/tasks.lua` over [`Data`]: every step hands out,
//! retries and ends tasks through these, so both backends do it the same way. The functions
//! keep the script's names; read that file's header for where a task waits and why.
//!
//! Times are the wall clock in ms, as Redis's `TIME`: scores (queue order, lease deadlines,
//! retry schedules) and timestamps must mean what they mean in Redis. Only a finished task's
//! expiry is an `Instant`, as it is Redis's own business there.

use super::circuit::Circuit;
use super::state::Data;
use super::zset::ZSet;
use agentpool_types::{
    AgentId, AgentState, Command, CommandKind, Event, EventKind, ProcessId, Task, TaskChange,
    TaskId, TaskRules, TaskRun, TaskState, now_rfc3339,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The rules of a pool the master has not described yet: `DEFAULT_RULES` of the script.
pub(super) const DEFAULT_RULES: TaskRules = TaskRules {
    default_timeout_ms: 300_000,
    lease_grace_ms: 5_000,
    retry_backoff_ms: 1_000,
    retry_backoff_max_ms: 60_000,
    circuit_failures: 0,
    circuit_cooldown_ms: 30_000,
    final_ttl_ms: 3_600_000,
};

/// Priorities are ten bands of this width in a queue's score; creation time orders each band.
const PRIORITY_BAND: i64 = 10_000_000_000_000;

/// `task:<id>`: the task as readers see it, and the fields only the steps read.
pub(super) struct Entry {
    pub task: Task,
    /// Its creation time (the uuid v7's), which orders it within its priority.
    pub created_ms: i64,
    /// The worker of the attempt under way.
    pub process_id: Option<ProcessId>,
    /// Cancelled while running: however the attempt ends, the task ends `cancelled`.
    pub cancel: bool,
    /// Starts so far, never reset (a retry by hand resets `attempts`): each start's own
    /// number, the fence its report must show.
    pub runs: u32,
    /// When a finished task goes, as Redis's `PEXPIRE`.
    pub expires: Option<Instant>,
}

impl Entry {
    /// A task as `task_submit` records it: queued, with the attempts already spent.
    pub fn submitted(t: &Task) -> Self {
        let mut spec = t.spec.clone();
        // Redis stores an empty key as no key.
        spec.idempotency_key = spec.idempotency_key.filter(|k| !k.is_empty());
        let mut task = Task::queued(spec, t.created_at.clone());
        task.attempts = t.attempts;
        Self {
            task,
            created_ms: ms(t.spec.task_id.created_ms().unwrap_or(0)),
            process_id: None,
            cancel: false,
            runs: t.attempts,
            expires: None,
        }
    }
}

/// A pool's task sets, by their Redis names.
#[derive(Default)]
pub(super) struct PoolTasks {
    pub queue: ZSet<TaskId>,
    pub asked: ZSet<TaskId>,
    pub delayed: ZSet<TaskId>,
    pub running: ZSet<TaskId>,
    pub idle: ZSet<AgentId>,
    pub dead: ZSet<TaskId>,
    pub circuit: Circuit,
}

/// The clock a step reads once, as a script calls `redis_now()` once.
pub(super) struct Now {
    pub ms: i64,
    pub iso: String,
    pub at: Instant,
}

impl Now {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            ms: i64::try_from(wall.as_millis()).unwrap_or(i64::MAX),
            iso: now_rfc3339(),
            at: Instant::now(),
        }
    }
}

/// What a step publishes: a command to one worker, or an event for the master.
pub(super) enum Out {
    Command(ProcessId, Command),
    Event(Event),
}

/// A duration in ms as a score term.
pub(super) fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Data {
    pub fn rules(&self, pool: &str) -> TaskRules {
        self.rules.get(pool).copied().unwrap_or(DEFAULT_RULES)
    }

    pub fn pool_tasks(&mut self, pool: &str) -> &mut PoolTasks {
        self.pool_tasks.entry(pool.to_owned()).or_default()
    }

    /// `command`: a command envelope for a worker, ids as the script makes them.
    pub fn command(&mut self, pid: &ProcessId, id: String, kind: CommandKind, now: &Now) {
        let timestamp = now.iso.clone();
        let cmd = Command {
            id,
            kind,
            timestamp,
        };
        self.outbox.push(Out::Command(pid.clone(), cmd));
    }

    /// `announce`: tells the master (its waiters, its history, its stream) where a task stands.
    pub fn announce(&mut self, id: &TaskId, now: &Now) {
        let Some(e) = self.tasks.get(id) else {
            return;
        };
        let mut change = TaskChange::of(&e.task);
        // The script sends the stored output's JSON text as is: `null` reads as no output.
        change.output = change.output.filter(|v| !v.is_null());
        let event = Event {
            id: format!("{id}:{}:{}", change.status, change.attempts),
            kind: EventKind::TaskChanged(change),
            timestamp: now.iso.clone(),
        };
        self.outbox.push(Out::Event(event));
    }

    /// `finalize`: a task that will not run again, kept a while for readers.
    pub fn finalize(&mut self, id: &TaskId, status: TaskState, now: &Now) {
        let Some(e) = self.tasks.get_mut(id) else {
            return;
        };
        e.task.status = status;
        e.task.finished_at = Some(now.iso.clone());
        e.process_id = None;
        let pool = e.task.spec.pool_name.clone();
        let ttl = self.rules(&pool).final_ttl_ms;
        if ttl > 0 {
            self.expire(id, Some(now.at + Duration::from_millis(ttl)));
        }
    }

    /// `enqueue`: back in line, in its target's queue or its pool's.
    pub fn enqueue(&mut self, id: &TaskId) {
        let Some(e) = self.tasks.get_mut(id) else {
            return;
        };
        e.task.status = TaskState::Queued;
        e.process_id = None;
        e.task.agent_id.clone_from(&e.task.spec.target_agent_id);
        let score = (9 - i64::from(e.task.spec.priority)) * PRIORITY_BAND + e.created_ms;
        let (pool, target) = (e.task.spec.pool_name.clone(), e.task.agent_id.clone());
        match target {
            None => self.pool_tasks(&pool).queue.add(id, score),
            Some(agent) => {
                self.agent_queues.entry(agent).or_default().add(id, score);
                self.pool_tasks(&pool).asked.add(id, score);
            }
        }
    }

    /// `ZREM agent:<a>:queue`: an empty queue goes, as an empty zset is no key in Redis.
    pub fn unask(&mut self, agent: &AgentId, id: &TaskId) {
        if let Some(own) = self.agent_queues.get_mut(agent) {
            own.remove(id);
            if own.len() == 0 {
                self.agent_queues.remove(agent);
            }
        }
    }

    /// `start`: an attempt of `id` on `agent` of worker `pid`; `None` for an unknown task.
    fn start(
        &mut self,
        id: &TaskId,
        agent: &AgentId,
        pid: &ProcessId,
        now: &Now,
    ) -> Option<TaskRun> {
        let pool = self.tasks.get(id)?.task.spec.pool_name.clone();
        let r = self.rules(&pool);
        let e = self.tasks.get_mut(id)?;
        e.runs += 1;
        let t = &mut e.task;
        t.attempts += 1;
        let timeout = t
            .spec
            .timeout_secs
            .map_or(r.default_timeout_ms, |s| s.saturating_mul(1000));
        t.status = TaskState::Running;
        t.agent_id = Some(agent.clone());
        t.started_at = Some(now.iso.clone());
        t.finished_at = None;
        e.process_id = Some(pid.clone());
        let run = TaskRun {
            task_id: id.clone(),
            agent_id: agent.clone(),
            attempt: e.runs,
            timeout_ms: timeout,
            input: t.spec.input.clone(),
        };
        let targeted = t.spec.target_agent_id.is_some();
        let deadline = now.ms + ms(timeout) + ms(r.lease_grace_ms);
        let sets = self.pool_tasks(&pool);
        sets.running.add(id, deadline);
        if targeted {
            sets.asked.remove(id);
        }
        sets.idle.remove(agent);
        if let Some(a) = self.agents.get_mut(agent) {
            a.status = AgentState::Busy;
            a.current_task = Some(id.clone());
            a.updated_at.clone_from(&now.iso);
        }
        self.announce(id, now);
        Some(run)
    }

    /// Starts `id` on `agent` and tells its worker, as `dispatch` and `offer_to_target` do.
    fn start_and_tell(&mut self, id: &TaskId, agent: &AgentId, pid: &ProcessId, now: &Now) {
        if let Some(run) = self.start(id, agent, pid, now) {
            self.command(pid, format!("{id}:run"), CommandKind::RunTask(run), now);
        }
    }

    /// `next_for`: an agent's own queue first, then its pool's, circuit permitting.
    fn next_for(&mut self, agent: &AgentId, pool: &str, now: &Now) -> Option<TaskId> {
        let own = self
            .agent_queues
            .get(agent)
            .and_then(|q| q.first().cloned());
        if let Some(id) = own {
            self.unask(agent, &id);
            return Some(id);
        }
        let head = self.pool_tasks(pool).queue.first().cloned()?;
        if !self.circuit_allows(pool, &head, now) {
            return None;
        }
        self.pool_tasks(pool).queue.remove(&head);
        Some(head)
    }

    /// `free_agent`: an agent free for work takes its next task, or becomes idle.
    pub fn free_agent(
        &mut self,
        agent: &AgentId,
        pid: &ProcessId,
        pool: &str,
        now: &Now,
    ) -> Option<TaskRun> {
        if let Some(id) = self.next_for(agent, pool, now) {
            return self.start(&id, agent, pid, now);
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.status = AgentState::Idle;
            a.current_task = None;
            a.updated_at.clone_from(&now.iso);
        }
        self.pool_tasks(pool).idle.add(agent, now.ms);
        None
    }

    /// `available`: the agent's worker when it can take a task now (idle, placed, registered).
    fn available(&self, agent: &AgentId) -> Option<ProcessId> {
        let a = self.agents.get(agent)?;
        let pid = a
            .process_id
            .clone()
            .filter(|_| a.status == AgentState::Idle)?;
        self.processes.contains_key(&pid).then_some(pid)
    }

    /// `dispatch`: queued tasks to idle agents, longest idle first, until either runs out;
    /// stale entries of the idle set are dropped on the way.
    pub fn dispatch(&mut self, pool: &str, now: &Now) {
        loop {
            let Some(agent) = self.pool_tasks(pool).idle.first().cloned() else {
                return;
            };
            let Some(pid) = self.available(&agent) else {
                self.pool_tasks(pool).idle.remove(&agent);
                continue;
            };
            let Some(id) = self.pool_tasks(pool).queue.first().cloned() else {
                return;
            };
            if !self.circuit_allows(pool, &id, now) {
                return;
            }
            self.pool_tasks(pool).queue.remove(&id);
            self.start_and_tell(&id, &agent, &pid, now);
        }
    }

    /// `offer_to_target`: a targeted task goes to its agent at once when the agent is idle.
    pub fn offer_to_target(&mut self, id: &TaskId, now: &Now) {
        let Some(target) = self
            .tasks
            .get(id)
            .and_then(|e| e.task.spec.target_agent_id.clone())
        else {
            return;
        };
        let Some(pid) = self.available(&target) else {
            return;
        };
        self.unask(&target, id);
        self.start_and_tell(id, &target, &pid, now);
    }

    /// `retry_or_fail`: an attempt ended without a result. Retried after a backoff (`delay`),
    /// at once (its worker died: not the task's fault), or failed for good once its attempts
    /// are spent.
    pub fn retry_or_fail(&mut self, id: &TaskId, pool: &str, delay: bool, now: &Now) {
        let Some(e) = self.tasks.get(id) else {
            return;
        };
        let (attempts, cancel) = (e.task.attempts, e.cancel);
        if cancel {
            self.finalize(id, TaskState::Cancelled, now);
        } else if attempts >= e.task.spec.max_attempts {
            self.finalize(id, TaskState::Failed, now);
            self.pool_tasks(pool).dead.add(id, now.ms);
        } else if delay {
            let wait = self.rules(pool).backoff(attempts);
            if let Some(e) = self.tasks.get_mut(id) {
                e.task.status = TaskState::Queued;
                e.process_id = None;
            }
            let due = now.ms + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            self.pool_tasks(pool).delayed.add(id, due);
        } else {
            self.enqueue(id);
        }
        self.announce(id, now);
    }

    /// `reclaim`: the attempt an agent held ends with it (its worker died, it was terminated
    /// or moved): retried at once elsewhere.
    pub fn reclaim(&mut self, agent: &AgentId, why: &str, now: &Now) {
        let Some(id) = self
            .agents
            .get_mut(agent)
            .and_then(|a| a.current_task.take())
        else {
            return;
        };
        let Some(e) = self.tasks.get_mut(&id) else {
            return;
        };
        if e.task.status != TaskState::Running || e.task.agent_id.as_ref() != Some(agent) {
            return;
        }
        e.task.error = Some(why.to_owned());
        let pool = e.task.spec.pool_name.clone();
        self.pool_tasks(&pool).running.remove(&id);
        self.retry_or_fail(&id, &pool, false, now);
    }

    /// `fail_for_gone`: a task that only a removed agent may run can never run.
    fn fail_for_gone(&mut self, id: &TaskId, agent: &AgentId, pool: &str, now: &Now) {
        if let Some(e) = self.tasks.get_mut(id) {
            e.task.error = Some(format!("its agent {agent} was terminated"));
        }
        self.finalize(id, TaskState::Failed, now);
        self.pool_tasks(pool).dead.add(id, now.ms);
        self.announce(id, now);
    }

    /// `fail_asked`: the tasks in the queue of an agent that is gone.
    pub fn fail_asked(&mut self, agent: &AgentId, pool: &str, now: &Now) {
        let waiting = self.agent_queues.remove(agent).map(|q| q.members());
        for id in waiting.unwrap_or_default() {
            self.pool_tasks(pool).asked.remove(&id);
            self.fail_for_gone(&id, agent, pool, now);
        }
    }

    /// `fail_delayed`: the retries of gone agents' tasks that wait out a backoff, found in
    /// one pass over the pool's schedule.
    pub fn fail_delayed(&mut self, gone: &BTreeSet<AgentId>, pool: &str, now: &Now) {
        if gone.is_empty() {
            return;
        }
        for id in self.pool_tasks(pool).delayed.members() {
            let target = self
                .tasks
                .get(&id)
                .and_then(|e| e.task.spec.target_agent_id.clone());
            if let Some(agent) = target.filter(|a| gone.contains(a)) {
                self.pool_tasks(pool).delayed.remove(&id);
                self.fail_for_gone(&id, &agent, pool, now);
            }
        }
    }
}
