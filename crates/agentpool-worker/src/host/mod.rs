//! `AgentHost`: the agents of this worker, each a supervised task on the agents runtime.
//!
//! - this file: the agents hosted here; start, stop, reconcile with the registry.
//! - `supervise`: each agent's supervisor (status writes, restart policy, one-for-one).
//! - `tasks`: task attempts delivered to agents (by command, or found on reconcile), cancels.
//!
//! A panic inside an agent ends only that agent's task: its supervisor sees it in the
//! `JoinHandle` and applies the restart policy.

mod supervise;
mod tasks;

use crate::running::Running;
use agentpool_registry::{ControlPlane, Hosted};
use agentpool_types::restart::RestartLimits;
use agentpool_types::{
    AgentId, AgentSpec, AgentState, Handler, ProcessId, RestartPolicy, SecretKey, TaskRun,
    WorkerConfig,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop is remembered, so a heartbeat reply older than the stop does not restart it.
const STOP_MEMORY: Duration = Duration::from_secs(30);

/// One hosted agent.
struct Slot {
    spec: AgentSpec,
    stop: CancellationToken,
    abort: Option<AbortHandle>,
    started: Instant,
    /// Where task attempts for the agent's current run go.
    inbox: Option<mpsc::UnboundedSender<TaskRun>>,
    running: Running,
}

#[derive(Default)]
struct Slots {
    running: HashMap<AgentId, Slot>,
    /// When each agent recently left `running`.
    stopped: HashMap<AgentId, Instant>,
}

/// The agents of this worker. Cheap to clone.
#[derive(Clone)]
pub struct AgentHost {
    process_id: ProcessId,
    pool: String,
    policy: RestartPolicy,
    limits: RestartLimits,
    handler: Handler,
    secret_key: Option<SecretKey>,
    control: Arc<dyn ControlPlane>,
    agents_rt: Handle,
    slots: Arc<Mutex<Slots>>,
    supervisors: TaskTracker,
}

impl AgentHost {
    pub fn new(config: &WorkerConfig, control: Arc<dyn ControlPlane>, agents_rt: Handle) -> Self {
        Self {
            process_id: config.process_id.clone(),
            pool: config.pool.name.clone(),
            policy: config.pool.restart,
            limits: config.pool.restart_limits(),
            handler: config.pool.handler.clone(),
            secret_key: config.secret_key.clone(),
            control,
            agents_rt,
            slots: Arc::default(),
            supervisors: TaskTracker::new(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of agents running here.
    pub fn len(&self) -> usize {
        self.slots().running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The agents running here, as a re-registration reports them.
    pub fn hosted(&self) -> Vec<Hosted> {
        self.slots()
            .running
            .values()
            .map(|s| Hosted {
                agent: s.spec.clone(),
                status: if s.running.current().is_some() {
                    AgentState::Busy
                } else {
                    AgentState::Idle
                },
            })
            .collect()
    }

    /// Starts an agent unless it already runs here. Returns at once; the supervisor does the rest.
    pub fn start(&self, spec: AgentSpec) {
        let stop = CancellationToken::new();
        {
            let mut slots = self.slots();
            if slots.running.contains_key(&spec.agent_id) {
                return;
            }
            let slot = Slot {
                spec: spec.clone(),
                stop: stop.clone(),
                abort: None,
                started: Instant::now(),
                inbox: None,
                running: Running::default(),
            };
            slots.running.insert(spec.agent_id.clone(), slot);
        }
        let host = self.clone();
        self.supervisors
            .spawn(async move { host.supervise(spec, stop).await });
    }

    /// Stops an agent: `graceful` lets it finish, otherwise its task is aborted.
    pub fn stop(&self, id: &AgentId, graceful: bool) {
        let slots = self.slots();
        let Some(slot) = slots.running.get(id) else {
            return;
        };
        slot.stop.cancel();
        if !graceful && let Some(abort) = &slot.abort {
            abort.abort();
        }
    }

    /// Aligns the running agents with `assigned`, the registry's view as of `asked_at`.
    pub async fn reconcile(&self, assigned: &[AgentId], asked_at: Instant) {
        let wanted: HashSet<&AgentId> = assigned.iter().collect();
        let (extra, missing) = {
            let mut slots = self.slots();
            slots.stopped.retain(|_, at| at.elapsed() < STOP_MEMORY);
            let extra: Vec<AgentId> = slots
                .running
                .iter()
                .filter(|(id, slot)| !wanted.contains(id) && slot.started < asked_at)
                .map(|(id, _)| id.clone())
                .collect();
            let missing: Vec<AgentId> = assigned
                .iter()
                .filter(|id| !slots.running.contains_key(*id))
                .filter(|id| slots.stopped.get(*id).is_none_or(|at| *at < asked_at))
                .cloned()
                .collect();
            (extra, missing)
        };
        for id in extra {
            tracing::info!(agent_id = %id, "reconcile: stopping agent no longer assigned here");
            self.stop(&id, false);
        }
        for id in missing {
            match self.control.agent(&id).await {
                Ok(Some(a)) if a.process_id.as_ref() == Some(&self.process_id) => {
                    tracing::info!(agent_id = %id, "reconcile: starting assigned agent");
                    self.start(a.spec);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(agent_id = %id, error = %e, "reconcile: cannot read agent")
                }
            }
        }
    }

    /// Stops every agent gracefully, aborting those still running after `grace`.
    pub async fn stop_all(&self, grace: Duration) {
        let ids: Vec<AgentId> = self.slots().running.keys().cloned().collect();
        for id in &ids {
            self.stop(id, true);
        }
        self.supervisors.close();
        if tokio::time::timeout(grace, self.supervisors.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "agents still running after the grace period: aborting"
            );
            self.abort_all();
            self.supervisors.wait().await;
        }
    }

    /// Aborts every agent at once. Used when fenced: the registry no longer lists them here.
    pub fn abort_all(&self) {
        for slot in self.slots().running.values() {
            slot.stop.cancel();
            if let Some(abort) = &slot.abort {
                abort.abort();
            }
        }
    }
}
