//! [`EmbeddedRegistry`]: both traits over [`EmbeddedState`] in this process. The master uses
//! it as its `Registry`; the socket server (and in-process workers, and tests) use it as the
//! `ControlPlane` that remote workers reach over the socket.

use super::state::EmbeddedState;
use crate::{
    BoxFuture, ControlPlane, Finished, Heartbeat, Hosted, Ready, ReapMode, Registry, Reservation,
    Result, Retirement, Staleness, StatusWrite, Target, Tended,
};
use agentpool_types::{
    Agent, AgentId, AgentState, Command, Event, PoolCounts, ProcessId, ProcessState, Task, TaskId,
    TaskReport, TaskRules, TaskState, WorkerProcess,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The registry in this process's memory, its channels included. Clones share the same
/// registry.
#[derive(Clone, Default)]
pub struct EmbeddedRegistry {
    state: Arc<EmbeddedState>,
}

impl EmbeddedRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The data, for callers that want the synchronous calls.
    pub fn state(&self) -> &EmbeddedState {
        &self.state
    }
}

/// Wraps a synchronous step as the traits' future. The step runs when the future is first
/// polled, not when it is made, so a future dropped unpolled did nothing, as with Redis.
fn ready<'a, T: Send + 'a>(step: impl FnOnce() -> T + Send + 'a) -> BoxFuture<'a, Result<T>> {
    Box::pin(async move { Ok(step()) })
}

impl Registry for EmbeddedRegistry {
    fn init_pools<'a>(&'a self, pools: &'a [(String, TaskRules)]) -> BoxFuture<'a, Result<u64>> {
        ready(move || self.state.init_pools(pools))
    }

    fn submit_tasks<'a>(&'a self, tasks: &'a [Task]) -> BoxFuture<'a, Result<u64>> {
        ready(move || self.state.submit_tasks(tasks))
    }

    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>> {
        ready(move || self.state.task(id))
    }

    fn cancel_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>> {
        ready(move || self.state.cancel_task(id))
    }

    fn retry_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>> {
        ready(move || self.state.retry_task(id))
    }

    fn tend_tasks<'a>(&'a self, pool: &'a str) -> BoxFuture<'a, Result<Tended>> {
        ready(move || self.state.tend_tasks(pool))
    }

    fn reserve<'a>(&'a self, r: Reservation<'a>) -> BoxFuture<'a, Result<Option<ProcessId>>> {
        Box::pin(async move { self.state.reserve(r) })
    }

    fn release<'a>(&'a self, agent: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        ready(move || self.state.release(agent))
    }

    fn drain<'a>(
        &'a self,
        process: &'a ProcessId,
        only_if_empty: bool,
    ) -> BoxFuture<'a, Result<Option<Vec<AgentId>>>> {
        ready(move || self.state.drain(process, only_if_empty))
    }

    fn reap<'a>(
        &'a self,
        process: &'a ProcessId,
        mode: ReapMode,
    ) -> BoxFuture<'a, Result<Vec<AgentId>>> {
        ready(move || self.state.reap(process, mode))
    }

    fn pool_counts<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<PoolCounts>>> {
        ready(move || self.state.pool_counts(pools))
    }

    fn empty_workers<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<(String, ProcessId)>>> {
        ready(move || self.state.empty_workers(pools))
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        ready(move || self.state.agent(id))
    }

    fn agents<'a>(&'a self, pools: &'a [String]) -> BoxFuture<'a, Result<Vec<Agent>>> {
        ready(move || self.state.agents(pools))
    }

    fn process<'a>(&'a self, id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerProcess>>> {
        ready(move || self.state.process(id))
    }

    fn processes(&self) -> BoxFuture<'_, Result<Vec<WorkerProcess>>> {
        ready(move || self.state.processes())
    }

    fn send<'a>(&'a self, to: Target<'a>, cmd: &'a Command) -> BoxFuture<'a, Result<()>> {
        ready(move || self.state.hub().send(&to, cmd))
    }

    fn events(&self) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<Event>>> {
        ready(move || self.state.hub().subscribe_events())
    }

    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        // The "round trip" is taking the lock once, so /health still notices a stuck registry.
        ready(move || {
            let start = Instant::now();
            drop(self.state.lock());
            start.elapsed()
        })
    }

    fn stale(&self, timeout: Duration) -> BoxFuture<'_, Result<Staleness>> {
        ready(move || self.state.stale(timeout))
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(move || self.state.try_lock(name, holder, ttl))
    }

    fn mark_agent<'a>(
        &'a self,
        agent: &'a AgentId,
        status: AgentState,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Agent>>> {
        ready(move || self.state.mark_agent(agent, status, error))
    }

    fn undrain<'a>(&'a self, process: &'a ProcessId) -> BoxFuture<'a, Result<bool>> {
        ready(move || self.state.undrain(process))
    }

    fn retire_idle<'a>(&'a self, r: Retirement<'a>) -> BoxFuture<'a, Result<Vec<AgentId>>> {
        ready(move || self.state.retire_idle(r))
    }
}

impl ControlPlane for EmbeddedRegistry {
    fn agent_ready<'a>(
        &'a self,
        process: &'a ProcessId,
        agent: &'a AgentId,
        epoch: Option<u64>,
    ) -> BoxFuture<'a, Result<Ready>> {
        ready(move || self.state.agent_ready(process, agent, epoch))
    }

    fn finish_task<'a>(&'a self, report: &'a TaskReport) -> BoxFuture<'a, Result<Finished>> {
        ready(move || self.state.finish_task(report))
    }

    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>> {
        ready(move || self.state.task(id))
    }

    fn register_with<'a>(
        &'a self,
        p: &'a WorkerProcess,
        agents: &'a [Hosted],
    ) -> BoxFuture<'a, Result<()>> {
        ready(move || self.state.register_with(p, agents))
    }

    fn heartbeat<'a>(
        &'a self,
        id: &'a ProcessId,
        rss_bytes: u64,
        cpu_percent: f32,
    ) -> BoxFuture<'a, Result<Heartbeat>> {
        ready(move || self.state.heartbeat(id, rss_bytes, cpu_percent))
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        ready(move || self.state.agent(id))
    }

    fn set_agent_status<'a>(
        &'a self,
        process: &'a ProcessId,
        w: StatusWrite<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        ready(move || self.state.set_agent_status(process, &w))
    }

    fn set_process_status<'a>(
        &'a self,
        id: &'a ProcessId,
        status: ProcessState,
    ) -> BoxFuture<'a, Result<()>> {
        ready(move || self.state.set_process_status(id, status))
    }

    fn publish<'a>(&'a self, _pool: &'a str, event: &'a Event) -> BoxFuture<'a, Result<()>> {
        // Redis publishes per pool but the master listens to every pool: one list suffices.
        ready(move || self.state.hub().publish(event))
    }

    fn commands<'a>(
        &'a self,
        pool: &'a str,
        id: &'a ProcessId,
    ) -> BoxFuture<'a, Result<mpsc::UnboundedReceiver<Command>>> {
        ready(move || self.state.hub().subscribe_commands(pool, id))
    }
}
