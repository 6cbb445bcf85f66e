//! The live registry of agentpool.
//!
//! - [`Registry`]: what the master asks of it (reserve, release, drain, reap, stats, listings).
//! - [`ControlPlane`]: what a worker asks of it (register, heartbeat, status, commands).
//! - [`keys`]: every Redis key name, in one place.
//! - [`redis`]: both traits over Redis, with the atomic steps as Lua scripts in `lua/`.
//! - [`embedded`]: both traits with no Redis: in the master's memory, workers over a Unix socket.
//! - [`error`]: `RegistryError`, which says whether the registry was unreachable.
//!
//! The traits use boxed futures so the master and the worker can hold `Arc<dyn ...>` and a
//! second backend (the embedded registry) can slot in behind the same calls.

pub mod embedded;
pub mod error;
pub mod keys;
pub mod redis;

use agentpool_types::{
    Agent, AgentId, AgentState, Command, Event, Placement, ProcessId, ProcessState, RestartPolicy,
    WorkerProcess,
};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;

pub use error::{RegistryError, Result};
pub use keys::Keys;

/// A future the traits return; boxed so the traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One agent to place, with what its hash records.
#[derive(Clone, Debug)]
pub struct Reservation {
    pub agent_id: AgentId,
    pub pool: String,
    pub placement: Placement,
    pub role: String,
    pub name: String,
    /// The spawn request's `config` as JSON text.
    pub metadata: String,
    /// Set when the agent moves away from a draining worker: its slot there is given back in
    /// the same step that takes the new one.
    pub move_from: Option<ProcessId>,
    /// The agent already exists (a move or a reschedule): if it was terminated meanwhile the
    /// reservation fails with `AgentGone` instead of bringing it back.
    pub must_exist: bool,
    /// The agent's own restart policy, overriding the pool's.
    pub restart: Option<RestartPolicy>,
}

/// What `reap` does with the agents of the process it removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReapMode {
    /// The worker died: keep its agents, marked `orphaned`, to be placed again.
    Orphan,
    /// Orderly shutdown: remove its agents from the registry too.
    Delete,
}

/// What one pool's registry entries add up to, counted in one round trip for all pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolCounts {
    pub pool: String,
    pub process_count: u64,
    pub total_capacity: u64,
    pub available_capacity: u64,
    pub agent_count: u64,
    pub active_worker_processes: u64,
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

/// What the heartbeat script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// Registered; these agents are assigned to the worker (the assignment of record).
    Alive { assigned: Vec<AgentId> },
    /// The worker was reaped: it must fence itself and exit.
    Reaped,
    /// The registration is gone without a reap (Redis lost its data): register again.
    Unregistered,
}

/// An agent a worker runs, as it tells the registry when it registers again.
#[derive(Clone, Debug)]
pub struct HostedAgent {
    pub agent_id: AgentId,
    pub role: String,
    pub name: String,
    pub metadata: String,
    pub status: AgentState,
}

/// Workers whose heartbeat is older than the timeout, and how many workers there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staleness {
    pub total: u64,
    pub stale: Vec<ProcessId>,
}

/// The master's view of the registry.
pub trait Registry: Send + Sync {
    /// Records the configured pools in the `pools` set; returns how many were missing, which
    /// after startup means Redis lost its data.
    fn init_pools<'a>(&'a self, pools: &'a [String]) -> BoxFuture<'a, Result<u64>>;
    /// Takes one slot by the pool's placement, atomically. `None` when every worker is full.
    fn reserve<'a>(&'a self, r: &'a Reservation) -> BoxFuture<'a, Result<Option<ProcessId>>>;
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
    /// Sets an agent's status from the master's side; false when the agent is gone.
    fn mark_agent<'a>(
        &'a self,
        agent: &'a AgentId,
        status: AgentState,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool>>;
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
        agents: &'a [HostedAgent],
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
