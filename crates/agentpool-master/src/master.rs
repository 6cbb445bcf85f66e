//! [`Master`]: what the REST routes call. It owns the parts of the master (the shared core,
//! the worker supervisor, the agent placement) and starts their background duties; every
//! route goes through one of its methods, never to the registry or the store directly.

use crate::agents::{Agents, SpawnOrder};
use crate::auth::{Caller, Scope, UnknownToken};
use crate::background::autoscale::Autoscaler;
use crate::background::{crashes, history, housekeeping, reaper::Reaper, restore::Restorer, tend};
use crate::config::{Backend, MasterConfig};
use crate::core::Core;
use crate::error::{MasterError, Result};
use crate::tasks::{Submitted, Tasks};
use crate::workers::Supervisor;
use agentpool_registry::Registry;
use agentpool_store::{AgentEvent, Store, TaskFilter, TaskStats};
use agentpool_types::{
    Agent, AgentId, AgentState, Event, PoolSpec, PoolStats, ProcessId, SealedSecret, SecretConfig,
    SecretError, Task, TaskId, TaskSpec, WorkerProcess,
};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::mpsc;

/// Agents a bulk terminate stops at once.
const TERMINATE_CONCURRENCY: usize = 32;

pub struct Master {
    core: Arc<Core>,
    supervisor: Arc<Supervisor>,
    agents: Arc<Agents>,
    tasks: Arc<Tasks>,
}

/// What `/health` reports: each part's round trip, or why it is down.
pub struct HealthReport {
    pub backend: Backend,
    pub store_backend: &'static str,
    pub workers: usize,
    /// The first restore round is done: listings are complete.
    pub restored: bool,
    pub registry: std::result::Result<Duration, String>,
    pub database: std::result::Result<Duration, String>,
}

impl Master {
    /// Records the pools, starts the background duties and, in Redis mode, adopts the live
    /// workers of a previous master. `disconnects` reports embedded workers whose socket
    /// closed.
    pub async fn start(
        config: MasterConfig,
        registry: Arc<dyn Registry>,
        store: Arc<dyn Store>,
        disconnects: Option<mpsc::UnboundedReceiver<ProcessId>>,
    ) -> Result<Arc<Self>> {
        store.upsert_pools(&config.pools).await?;
        crate::prometheus::start_upkeep();
        let core = Arc::new(Core::new(config, registry, store));
        let (crash_tx, exits) = mpsc::unbounded_channel();
        let supervisor = Arc::new(Supervisor::new(core.clone(), crash_tx));
        let agents = Arc::new(Agents::new(core.clone(), supervisor.clone()));
        core.registry.init_pools(&core.pool_rules()).await?;
        let rolled_back = agents.roll_back_unanswered().await?;
        if rolled_back > 0 {
            tracing::warn!(
                rolled_back,
                "rolled back spawn requests a previous master never answered"
            );
        }
        tokio::spawn(history::pump(core.clone(), core.registry.events().await?));
        let sources = crashes::Sources { exits, disconnects };
        let (c, s, a) = (core.clone(), supervisor.clone(), agents.clone());
        core.tasks.spawn(crashes::run(c, s, a, sources));
        if core.config.backend == Backend::Redis {
            let adopted = supervisor.adopt_all().await?;
            if adopted > 0 {
                tracing::info!(adopted, "took over the workers of a previous master");
            }
        }
        supervisor.start_minimum();
        let reaper = Reaper {
            core: core.clone(),
            supervisor: supervisor.clone(),
            agents: agents.clone(),
        };
        core.tasks.spawn(reaper.run());
        core.tasks
            .spawn(housekeeping::run(core.clone(), supervisor.clone()));
        core.tasks
            .spawn(Restorer::new(core.clone(), agents.clone()).run());
        core.tasks.spawn(tend::run(core.clone()));
        core.tasks
            .spawn(Autoscaler::new(core.clone(), agents.clone()).run());
        let tasks = Arc::new(Tasks::new(core.clone()));
        Ok(Arc::new(Self {
            core,
            supervisor,
            agents,
            tasks,
        }))
    }

    /// Who presents `bearer`: `Ok(None)` for no token on an API with tokens (only `/health`
    /// answers such a caller), `Err` for a token that is not known. An open API takes every
    /// caller as `admin`.
    pub fn caller(
        &self,
        bearer: Option<&str>,
    ) -> std::result::Result<Option<Caller>, UnknownToken> {
        let tokens = &self.core.config.tokens;
        if tokens.is_open() {
            return Ok(Some(Caller {
                name: None,
                scope: Scope::Admin,
            }));
        }
        match bearer {
            None => Ok(None),
            Some(t) => tokens.check(t).map(Some).ok_or(UnknownToken),
        }
    }

    /// How old a worker's last heartbeat may get before it counts as stale.
    pub fn heartbeat_timeout(&self) -> std::time::Duration {
        self.core.config.heartbeat_timeout
    }

    pub fn pool_names(&self) -> &[String] {
        self.core.pools.names()
    }

    /// A configured pool's spec.
    pub fn pool(&self, name: &str) -> Result<&PoolSpec> {
        Ok(&self.core.pool(name)?.spec)
    }

    /// Seals an agent's `secret_config` under the master's key, so it opens for that agent
    /// only.
    pub fn seal_secret(&self, secret: &SecretConfig, agent: &AgentId) -> Result<SealedSecret> {
        let key = self.core.config.secret_key.as_ref();
        Ok(key
            .ok_or(SecretError::NoKey)?
            .seal(secret, agent.as_str())?)
    }

    /// Spawns every agent of the order, or none; a retried idempotency key answers the same
    /// agents.
    pub async fn spawn(&self, order: SpawnOrder) -> Result<Vec<Agent>> {
        self.agents.spawn(order).await
    }

    pub async fn terminate(&self, id: &AgentId, graceful: bool) -> Result<Agent> {
        self.agents.terminate(id, graceful).await
    }

    /// Terminates the oldest `count` agents of a pool (all with `None`), optionally only those
    /// in one status, a bounded number at a time.
    pub async fn terminate_many(
        &self,
        pool: &str,
        count: Option<usize>,
        status: Option<AgentState>,
        graceful: bool,
    ) -> Result<Vec<Agent>> {
        let mut chosen = self.agents(Some(pool), status).await?;
        chosen.truncate(count.unwrap_or(usize::MAX));
        let agents = self.agents.clone();
        let stops = chosen.into_iter().map(move |a| {
            let agents = agents.clone();
            async move { agents.terminate(a.id(), graceful).await }
        });
        let done: Vec<Result<Agent>> = futures::stream::iter(stops)
            .buffer_unordered(TERMINATE_CONCURRENCY)
            .collect()
            .await;
        done.into_iter().collect()
    }

    /// Drains and stops one worker; returns how many agents moved.
    pub async fn drain(&self, id: &ProcessId) -> Result<usize> {
        self.agents.drain(id).await
    }

    pub async fn agent(&self, id: &AgentId) -> Result<Agent> {
        self.core.ensure_restored()?;
        self.core
            .registry
            .agent(id)
            .await?
            .ok_or_else(|| MasterError::UnknownAgent(id.to_string()))
    }

    /// Agents of one pool or of all, optionally in one status.
    pub async fn agents(
        &self,
        pool: Option<&str>,
        status: Option<AgentState>,
    ) -> Result<Vec<Agent>> {
        self.core.ensure_restored()?;
        let pools = match pool {
            Some(p) => vec![self.core.pool(p)?.name().to_owned()],
            None => self.core.pools.names().to_vec(),
        };
        let mut agents = self.core.registry.agents(&pools).await?;
        if let Some(status) = status {
            agents.retain(|a| a.status == status);
        }
        Ok(agents)
    }

    /// An agent's history, oldest first, from the store: it outlives the agent.
    pub async fn agent_events(&self, id: &AgentId) -> Result<Vec<AgentEvent>> {
        let events = self.core.store.events(id).await?;
        if events.is_empty() && self.core.store.agent(id).await?.is_none() {
            return Err(MasterError::UnknownAgent(id.to_string()));
        }
        Ok(events)
    }

    /// `/pools`: one registry round trip for all the named pools, plus what only the master
    /// knows (spawns waiting, workers starting).
    pub async fn pool_stats(&self, names: &[String]) -> Result<Vec<PoolStats>> {
        let capacities = self.core.pools.capacities(names);
        let counts = self.core.registry.pool_counts(&capacities).await?;
        counts
            .into_iter()
            .map(|c| {
                let pool = self.core.pool(&c.pool)?;
                let live = self.supervisor.live(&c.pool);
                let can_grow = live + pool.starting() < pool.spec.max_processes;
                let waiting = pool.waiting();
                Ok(PoolStats::new(c, waiting, can_grow).autoscaled(pool.spec.autoscale.as_ref()))
            })
            .collect()
    }

    /// Registered workers, optionally of one pool.
    pub async fn processes(&self, pool: Option<&str>) -> Result<Vec<WorkerProcess>> {
        if let Some(pool) = pool {
            self.core.pool(pool)?;
        }
        let mut all = self.core.registry.processes().await?;
        if let Some(pool) = pool {
            all.retain(|p| p.pool_name == pool);
        }
        Ok(all)
    }

    /// Submits tasks to their pool (each spec names it); with `wait`, answers once they finish
    /// or the wait is over.
    pub async fn submit_tasks(
        &self,
        specs: Vec<TaskSpec>,
        wait: Option<Duration>,
    ) -> Result<Submitted> {
        for pool in specs.iter().map(|s| &s.pool_name) {
            self.core.pool(pool)?;
        }
        self.tasks.submit(specs, wait).await
    }

    /// The pool of an agent a task is asked of; it must exist.
    pub async fn pool_of_agent(&self, agent: &AgentId) -> Result<String> {
        self.tasks.target(agent).await
    }

    /// The agents of a pool that can run a task now, for a broadcast.
    pub async fn running_agents(&self, pool: &str) -> Result<Vec<AgentId>> {
        self.tasks.running_agents(pool).await
    }

    pub async fn task(&self, id: &TaskId) -> Result<Task> {
        self.tasks.get(id).await
    }

    pub async fn tasks(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        if let Some(pool) = &filter.pool {
            self.core.pool(pool)?;
        }
        self.tasks.list(filter).await
    }

    pub async fn cancel_task(&self, id: &TaskId) -> Result<Task> {
        self.tasks.cancel(id).await
    }

    pub async fn retry_task(&self, id: &TaskId) -> Result<Task> {
        self.tasks.retry(id).await
    }

    /// Every task announcement and progress report from now on.
    pub fn task_events(&self) -> broadcast::Receiver<Event> {
        self.core.task_events.subscribe()
    }

    /// The text of a Prometheus scrape, with the gauges read from the registry now.
    pub async fn metrics_text(&self) -> Result<String> {
        let stats = self.pool_stats(self.pool_names()).await?;
        crate::prometheus::render(&self.core, stats).await
    }

    /// The feed's events after `after`, and the live ones from then on.
    pub fn subscribe_events(&self, after: Option<u64>) -> crate::feed::Subscription {
        self.core.feed.subscribe(after)
    }

    /// Analytics of a pool's tasks over `window`, from the store.
    pub async fn task_stats(&self, pool: &str, window: Duration) -> Result<TaskStats> {
        let name = self.core.pool(pool)?.name().to_owned();
        Ok(self.core.store.task_stats(&name, window).await?)
    }

    /// The master, the registry and the database, each with its round trip.
    pub async fn health(&self) -> HealthReport {
        let (registry, database) = tokio::join!(self.core.registry.ping(), self.core.store.ping());
        HealthReport {
            backend: self.core.config.backend,
            store_backend: self.core.store.backend(),
            workers: self.supervisor.count(),
            restored: self.core.ensure_restored().is_ok(),
            registry: registry.map_err(|e| e.to_string()),
            database: database.map_err(|e| e.to_string()),
        }
    }

    /// Begins the shutdown: new work is refused, spawns waiting for room give up at once.
    pub fn begin_shutdown(&self) {
        self.core.stopping.cancel();
    }

    /// Stops the workers when they stop with the master, waits for background work, and
    /// flushes the history.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.supervisor.stop_all().await;
        let grace = self.core.config.shutdown_grace;
        self.core.tasks.close();
        if tokio::time::timeout(grace, self.core.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running after the grace period");
        }
        if tokio::time::timeout(grace, self.core.history.clone().close())
            .await
            .is_err()
        {
            tracing::warn!("history not fully written: the database did not answer in time");
        }
        tracing::info!("master stopped");
    }
}
