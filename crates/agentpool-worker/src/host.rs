//! `AgentHost`: the agents of this worker, each a supervised task on the agents runtime.
//!
//! Each agent gets a monitor task on the control runtime that writes its status as it goes
//! (`starting`, `idle`, then `stopped` or `failed`) and publishes events. A panic inside an
//! agent ends only that agent's task: the monitor sees it in the `JoinHandle` and marks the
//! agent `failed` with the panic message.

use crate::WorkerConfig;
use crate::agent::{self, AgentSpec};
use agentpool_registry::ControlPlane;
use agentpool_types::{AgentId, AgentState, Event, EventKind, ProcessId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop is remembered, so a heartbeat reply older than the stop does not restart it.
const STOP_MEMORY: Duration = Duration::from_secs(30);

/// One hosted agent.
struct Slot {
    stop: CancellationToken,
    abort: Option<AbortHandle>,
    started: Instant,
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
    control: Arc<dyn ControlPlane>,
    agents_rt: Handle,
    slots: Arc<Mutex<Slots>>,
    monitors: TaskTracker,
}

impl AgentHost {
    pub fn new(config: &WorkerConfig, control: Arc<dyn ControlPlane>, agents_rt: Handle) -> Self {
        Self {
            process_id: config.process_id.clone(),
            pool: config.pool.clone(),
            control,
            agents_rt,
            slots: Arc::default(),
            monitors: TaskTracker::new(),
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

    /// Starts an agent unless it already runs here. Returns at once; the monitor does the rest.
    pub fn start(&self, spec: AgentSpec) {
        let stop = CancellationToken::new();
        {
            let mut slots = self.slots();
            if slots.running.contains_key(&spec.id) {
                return;
            }
            let slot = Slot {
                stop: stop.clone(),
                abort: None,
                started: Instant::now(),
            };
            slots.running.insert(spec.id.clone(), slot);
        }
        let host = self.clone();
        self.monitors
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
                    self.start(AgentSpec {
                        id,
                        role: a.role_type,
                        name: a.name,
                        config: a.metadata,
                    });
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
        self.monitors.close();
        if tokio::time::timeout(grace, self.monitors.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "agents still running after the grace period: aborting"
            );
            self.abort_all();
            self.monitors.wait().await;
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

    async fn supervise(self, spec: AgentSpec, stop: CancellationToken) {
        let id = spec.id.clone();
        self.set_status(&id, AgentState::Starting, None).await;
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut task = self.agents_rt.spawn(agent::run(spec, stop, ready_tx));
        if let Some(slot) = self.slots().running.get_mut(&id) {
            slot.abort = Some(task.abort_handle());
        }
        let outcome = tokio::select! {
            ready = ready_rx => {
                if ready.is_ok() {
                    self.set_status(&id, AgentState::Idle, None).await;
                    self.emit(EventKind::AgentStarted { agent_id: id.clone(), process_id: self.process_id.clone() }).await;
                }
                task.await
            }
            done = &mut task => done,
        };
        self.finish(&id, outcome).await;
    }

    async fn finish(&self, id: &AgentId, outcome: Result<Result<(), String>, JoinError>) {
        let error = match outcome {
            Ok(Ok(())) => None,
            Err(e) if e.is_cancelled() => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(panic_message(e)),
        };
        let process_id = self.process_id.clone();
        match error {
            None => {
                self.set_status(id, AgentState::Stopped, None).await;
                self.emit(EventKind::AgentStopped {
                    agent_id: id.clone(),
                    process_id,
                })
                .await;
            }
            Some(error) => {
                tracing::error!(agent_id = %id, %error, "agent failed");
                self.set_status(id, AgentState::Failed, Some(&error)).await;
                self.emit(EventKind::AgentFailed {
                    agent_id: id.clone(),
                    process_id,
                    error,
                })
                .await;
            }
        }
        // Leave `running` only after the status is written, so a reconcile never sees the
        // agent absent while its hash still says it should run.
        let mut slots = self.slots();
        slots.running.remove(id);
        slots.stopped.insert(id.clone(), Instant::now());
    }

    async fn set_status(&self, id: &AgentId, status: AgentState, error: Option<&str>) {
        match self
            .control
            .set_agent_status(&self.process_id, id, status, error)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(agent_id = %id, %status, "status not written: agent is no longer ours")
            }
            Err(e) => tracing::warn!(agent_id = %id, %status, error = %e, "status not written"),
        }
    }

    async fn emit(&self, kind: EventKind) {
        if let Err(e) = self.control.publish(&self.pool, &Event::new(kind)).await {
            tracing::warn!(error = %e, "event not published");
        }
    }
}

fn panic_message(e: JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            format!("panicked: {msg}")
        }
        Err(e) => e.to_string(),
    }
}
