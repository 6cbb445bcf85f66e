//! The live registry of agentpool.
//!
//! - [`Registry`]: what the master asks of it (reserve, release, drain, reap, stats, listings).
//! - [`ControlPlane`]: what a worker asks of it (register, heartbeat, status, commands).
//! - [`redis`]: both traits over Redis: key names (`redis/keys.rs`, `lua/keys.lua`), the hash
//!   codec, and the atomic steps as Lua scripts in `lua/`.
//! - [`embedded`]: both traits with no Redis: in the master's memory, workers over a Unix socket.
//! - [`error`]: `RegistryError`, which says whether the registry was unreachable.
//!
//! The traits use boxed futures so the master and the worker can hold `Arc<dyn ...>` and a
//! second backend (the embedded registry) can slot in behind the same calls.

pub mod embedded;
pub mod error;
pub mod redis;

use agentpool_types::{
    Agent, AgentId, AgentSpec, AgentState, Command, Event, Placement, PoolCounts, ProcessId,
    ProcessState, Task, TaskId, TaskReport, TaskRules, TaskRun, TaskState, WorkerProcess,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;

pub use error::{RegistryError, Result};

/// A future the traits return; boxed so the traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One agent to place, and how.
#[derive(Clone, Copy, Debug)]
pub struct Reservation<'a> {
    pub agent: &'a AgentSpec,
    pub placement: Placement,
    /// Set when the agent moves away from a draining worker: its slot there is given back in
    /// the same step that takes the new one.
    pub move_from: Option<&'a ProcessId>,
    /// The agent already exists (a move or a reschedule): if it was terminated meanwhile the
    /// reservation fails with `AgentGone` instead of bringing it back.
    pub must_exist: bool,
}

impl<'a> Reservation<'a> {
    /// A new agent, placed by `placement`.
    pub fn new(agent: &'a AgentSpec, placement: Placement) -> Self {
        Self {
            agent,
            placement,
            move_from: None,
            must_exist: false,
        }
    }
}

/// The autoscaler's scale-down of one pool: which idle agents may go.
#[derive(Clone, Copy, Debug)]
pub struct Retirement<'a> {
    pub pool: &'a str,
    /// Agents the pool keeps, those already stopping not counted.
    pub keep: u64,
    /// How long an agent must have been idle.
    pub idle_for: Duration,
    /// Most agents to retire in this step.
    pub most: u64,
}

/// What `reap` does with the agents of the process it removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReapMode {
    /// The worker died: keep its agents, marked `orphaned`, to be placed again.
    Orphan,
    /// Orderly shutdown: remove its agents from the registry too.
    Delete,
}

/// One status write of a worker's agent.
#[derive(Clone, Copy, Debug)]
pub struct StatusWrite<'a> {
    pub agent: &'a AgentId,
    pub status: AgentState,
    pub error: Option<&'a str>,
    /// The placement generation the worker holds; `None` on its first write.
    pub epoch: Option<u64>,
    /// This write records a restart in place.
    pub restarted: bool,
}

impl<'a> StatusWrite<'a> {
    pub fn new(agent: &'a AgentId, status: AgentState) -> Self {
        Self {
            agent,
            status,
            error: None,
            epoch: None,
            restarted: false,
        }
    }
}

/// Where a command goes.
#[derive(Clone, Debug)]
pub enum Target<'a> {
    Process(&'a ProcessId),
    Pool(&'a str),
}

/// A task attempt the registry says an agent holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub agent_id: AgentId,
    pub task_id: TaskId,
    pub attempt: u32,
}

/// What the heartbeat script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// Registered; these agents are assigned to the worker (the assignment of record), and
    /// these are the task attempts they hold.
    Alive {
        assigned: Vec<AgentId>,
        holding: Vec<Holding>,
    },
    /// The worker was reaped: it must fence itself and exit.
    Reaped,
    /// The registration is gone without a reap (Redis lost its data): register again.
    Unregistered,
}

/// An agent a worker runs, as it tells the registry when it registers again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hosted {
    pub agent: AgentSpec,
    pub status: AgentState,
}

/// What `agent_ready` answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// The agent is no longer the worker's (or is being terminated).
    Fenced,
    /// Idle, waiting for work; its placement epoch.
    Idle { epoch: u64 },
    /// It took a task at once.
    Run { epoch: u64, run: TaskRun },
}

/// What `finish_task` answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// False when the report was for an attempt that is no longer current: it was dropped.
    pub accepted: bool,
    /// The agent's next task, taken in the same step.
    pub next: Option<TaskRun>,
}

/// What one `tend_tasks` round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tended {
    /// Retries whose backoff was over, back in line.
    pub due: u64,
    /// Attempts whose lease ran out.
    pub expired: u64,
}

/// Workers whose heartbeat is older than the timeout, and how many workers there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staleness {
    pub total: u64,
    pub stale: Vec<ProcessId>,
}

/// The master's view of the registry.
pub trait Registry: Send + Sync {
    /// Records the configured pools in the `pools` set, with each pool's task rules; returns
    /// how many pools were missing (from the set, or their rules), which after startup means
    /// Redis lost its data.
    fn init_pools<'a>(&'a self, pools: &'a [(String, TaskRules)]) -> BoxFuture<'a, Result<u64>>;
    /// Takes one slot by the pool's placement, atomically. `None` when every worker is full.
    fn reserve<'a>(&'a self, r: Reservation<'a>) -> BoxFuture<'a, Result<Option<ProcessId>>>;
    /// Gives the agent's slot back and removes the agent. `None` when the agent is unknown.
    fn release<'a>(&'a self, agent: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>>;
    /// Takes a worker out of placement and marks it draining; returns its agents. With
    /// `only_if_empty`, does nothing and returns `None` unless the worker has no agent.
    fn drain<'a>(
        &'a self,
        process: &'a ProcessId,
        only_if_empty: bool,
    ) -> BoxFuture<'a, Result<Option<Vec<AgentId>>>>;
    /// Removes a worker and all its keys; returns the agents it held.
    fn reap<'a>(
        &'a self,
        process: &'a ProcessId,
        mode: ReapMode,
    ) -> BoxFuture<'a, Result<Vec<AgentId>>>;
    /// Counts for `/pools`, in one round trip, for pools given with their capacity per worker.
    fn pool_counts<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<PoolCounts>>>;
    /// Workers in placement with every slot free (score = capacity), for pools given with their
    /// capacity per worker: one range query per pool, in one round trip.
    fn empty_workers<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<(String, ProcessId)>>>;
    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>>;
    /// Every agent of the given pools.
    fn agents<'a>(&'a self, pools: &'a [String]) -> BoxFuture<'a, Result<Vec<Agent>>>;
    fn process<'a>(&'a self, id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerProcess>>>;
    /// Every registered worker, of every pool.
    fn processes(&self) -> BoxFuture<'_, Result<Vec<WorkerProcess>>>;
    /// Sends a command. Delivery is best effort; the registry is what counts.
    fn send<'a>(&'a self, to: Target<'a>, cmd: &'a Command) -> BoxFuture<'a, Result<()>>;
    /// Every worker's events. The stream survives reconnects; events sent while the connection
    /// was down are lost, which is why waiters also poll the registry.
    fn events(&self) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<Event>>>;
    /// Round trip time, for `/health`.
    fn ping(&self) -> BoxFuture<'_, Result<Duration>>;
    /// Workers whose last heartbeat is older than `timeout` by Redis's clock (one range query).
    fn stale(&self, timeout: Duration) -> BoxFuture<'_, Result<Staleness>>;
    /// Takes or renews the lock `name` for `holder`; true while the holder has it.
    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Records tasks (queued, with the attempts already spent) and queues them by priority;
    /// idle agents take them at once, their workers told in the same step. A task already
    /// known is left as it is. Returns how many were new.
    fn submit_tasks<'a>(&'a self, tasks: &'a [Task]) -> BoxFuture<'a, Result<u64>>;
    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>>;
    /// Cancels a task: at once when queued; a running one is stopped by its worker, which
    /// reports it. Returns its status after the step, `None` when unknown.
    fn cancel_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>>;
    /// Puts a failed task back in line, attempts reset. Returns its status after the step.
    fn retry_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>>;
    /// A pool's clockwork: retries due back in line, expired leases retried or failed, idle
    /// agents handed what waits.
    fn tend_tasks<'a>(&'a self, pool: &'a str) -> BoxFuture<'a, Result<Tended>>;
    /// Sets an agent's status from the master's side and returns the agent as it was before;
    /// `None` when the agent is gone. Marking it `stopping` keeps moves and reschedules from
    /// placing it again, and its worker from reporting it anything but stopped.
    fn mark_agent<'a>(
        &'a self,
        agent: &'a AgentId,
        status: AgentState,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Agent>>>;
    /// Puts a draining worker back in placement (a drain that could not move an agent);
    /// false when it is unknown or not draining.
    fn undrain<'a>(&'a self, process: &'a ProcessId) -> BoxFuture<'a, Result<bool>>;
    /// Takes autoscaled agents idle long enough out of service, longest idle first, in one
    /// step: each is marked `stopping` and leaves the idle set, so no task reaches it; the
    /// caller terminates them. None while tasks wait in the pool's queue. Returns their ids.
    fn retire_idle<'a>(&'a self, r: Retirement<'a>) -> BoxFuture<'a, Result<Vec<AgentId>>>;
}

/// A worker's view of the registry.
pub trait ControlPlane: Send + Sync {
    /// Registers a new worker.
    fn register<'a>(&'a self, p: &'a WorkerProcess) -> BoxFuture<'a, Result<()>> {
        self.register_with(p, &[])
    }
    /// Registers a worker together with the agents it already runs (after Redis lost its data).
    fn register_with<'a>(
        &'a self,
        p: &'a WorkerProcess,
        agents: &'a [Hosted],
    ) -> BoxFuture<'a, Result<()>>;
    fn heartbeat<'a>(
        &'a self,
        id: &'a ProcessId,
        rss_bytes: u64,
        cpu_percent: f32,
    ) -> BoxFuture<'a, Result<Heartbeat>>;
    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>>;
    /// Writes an agent's status, only while the agent is still assigned to `process` under the
    /// placement `epoch` (when given), so a stale worker cannot overwrite the new owner's view.
    /// Returns the agent's epoch when written, `None` when the write was fenced.
    fn set_agent_status<'a>(
        &'a self,
        process: &'a ProcessId,
        w: StatusWrite<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>>>;
    /// The agent came up: idle, and handed its next task when one waits.
    fn agent_ready<'a>(
        &'a self,
        process: &'a ProcessId,
        agent: &'a AgentId,
        epoch: Option<u64>,
    ) -> BoxFuture<'a, Result<Ready>>;
    /// Reports how an attempt ended; the agent takes its next task in the same step.
    fn finish_task<'a>(&'a self, report: &'a TaskReport) -> BoxFuture<'a, Result<Finished>>;
    /// A task, for a worker that must run an attempt it missed the command for.
    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>>;
    fn set_process_status<'a>(
        &'a self,
        id: &'a ProcessId,
        status: ProcessState,
    ) -> BoxFuture<'a, Result<()>>;
    fn publish<'a>(&'a self, pool: &'a str, event: &'a Event) -> BoxFuture<'a, Result<()>>;
    /// Commands for this worker and its pool, resubscribed after every reconnect.
    fn commands<'a>(
        &'a self,
        pool: &'a str,
        id: &'a ProcessId,
    ) -> BoxFuture<'a, Result<mpsc::UnboundedReceiver<Command>>>;
}
