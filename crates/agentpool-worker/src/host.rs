//! `AgentHost`: the agents of this worker, each a supervised task on the agents runtime.
//!
//! Each agent gets a supervisor task on the control runtime. It writes the agent's status as it
//! goes (`starting`, `idle`, then `stopped`, `restarting`, `failed` or `quarantined`) and
//! publishes events. A panic inside an agent ends only that agent's task: the supervisor sees it
//! in the `JoinHandle` and applies the restart policy, one-for-one.

use crate::WorkerConfig;
use crate::agent::{self, AgentSpec};
use agentpool_registry::{ControlPlane, HostedAgent, StatusWrite};
use agentpool_types::restart::{Decision, Ending, RestartLimits, decide};
use agentpool_types::{AgentId, AgentState, Event, EventKind, ProcessId, RestartPolicy};
use std::collections::{HashMap, HashSet, VecDeque};
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
    spec: AgentSpec,
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

/// What became of a status write.
enum Written {
    /// Written; the agent's placement epoch.
    Yes(u64),
    /// Refused: the agent is no longer this worker's.
    Fenced,
    /// The registry could not be reached; the agent goes on regardless.
    Unknown,
}

/// How one run of an agent task ended.
type Outcome = Result<Result<(), String>, JoinError>;

/// The agents of this worker. Cheap to clone.
#[derive(Clone)]
pub struct AgentHost {
    process_id: ProcessId,
    pool: String,
    policy: RestartPolicy,
    limits: RestartLimits,
    control: Arc<dyn ControlPlane>,
    agents_rt: Handle,
    slots: Arc<Mutex<Slots>>,
    supervisors: TaskTracker,
}

impl AgentHost {
    pub fn new(config: &WorkerConfig, control: Arc<dyn ControlPlane>, agents_rt: Handle) -> Self {
        Self {
            process_id: config.process_id.clone(),
            pool: config.pool.clone(),
            policy: config.restart,
            limits: config.restart_limits,
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
    pub fn hosted(&self) -> Vec<HostedAgent> {
        self.slots()
            .running
            .values()
            .map(|s| HostedAgent {
                agent_id: s.spec.id.clone(),
                role: s.spec.role.clone(),
                name: s.spec.name.clone(),
                metadata: s.spec.config.to_string(),
                status: AgentState::Idle,
            })
            .collect()
    }

    /// Starts an agent unless it already runs here. Returns at once; the supervisor does the rest.
    pub fn start(&self, spec: AgentSpec) {
        let stop = CancellationToken::new();
        {
            let mut slots = self.slots();
            if slots.running.contains_key(&spec.id) {
                return;
            }
            let slot = Slot {
                spec: spec.clone(),
                stop: stop.clone(),
                abort: None,
                started: Instant::now(),
            };
            slots.running.insert(spec.id.clone(), slot);
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
                    self.start(AgentSpec {
                        id,
                        role: a.role_type,
                        name: a.name,
                        config: a.metadata,
                        restart: a.restart,
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

    /// Runs an agent, restarting it in place as its policy says, until it is stopped or given up.
    async fn supervise(self, spec: AgentSpec, stop: CancellationToken) {
        let id = spec.id.clone();
        let policy = spec.restart.unwrap_or(self.policy);
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut epoch = None;
        loop {
            let starting = self
                .write(&id, AgentState::Starting, None, epoch, false)
                .await;
            match starting {
                Written::Fenced => {
                    tracing::info!(agent_id = %id, "not starting an agent that is no longer ours");
                    return self.leave(&id);
                }
                Written::Yes(e) => epoch = Some(e),
                Written::Unknown => {}
            }
            let outcome = self.run_once(&spec, &stop, epoch).await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Err(e) if e.is_cancelled() => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(panic_message(e)),
            };
            if stop.is_cancelled() {
                return self.end(&id, AgentState::Stopped, error, epoch).await;
            }
            let ending = if error.is_some() {
                Ending::Failure
            } else {
                Ending::Normal
            };
            restarts.retain(|t| t.elapsed() < self.limits.period);
            let recent = u32::try_from(restarts.len()).unwrap_or(u32::MAX);
            let after = match decide(policy, self.limits, ending, recent) {
                Decision::Restart { after } => after,
                Decision::Quarantine => {
                    tracing::error!(agent_id = %id, ?error, "crash loop: agent quarantined");
                    return self.end(&id, AgentState::Quarantined, error, epoch).await;
                }
                Decision::Stop => {
                    let status = if error.is_some() {
                        AgentState::Failed
                    } else {
                        AgentState::Stopped
                    };
                    return self.end(&id, status, error, epoch).await;
                }
            };
            tracing::warn!(agent_id = %id, ?error, ?after, "agent ended; restarting it in place");
            self.write(&id, AgentState::Restarting, error.as_deref(), epoch, true)
                .await;
            self.emit(EventKind::AgentRestarting {
                agent_id: id.clone(),
                process_id: self.process_id.clone(),
                error: error.clone().unwrap_or_default(),
            })
            .await;
            restarts.push_back(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(after) => {}
                _ = stop.cancelled() => return self.end(&id, AgentState::Stopped, None, epoch).await,
            }
        }
    }

    /// One run of the agent task: reports it running once ready, returns how it ended.
    async fn run_once(
        &self,
        spec: &AgentSpec,
        stop: &CancellationToken,
        epoch: Option<u64>,
    ) -> Outcome {
        let id = &spec.id;
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut task = self
            .agents_rt
            .spawn(agent::run(spec.clone(), stop.clone(), ready_tx));
        if let Some(slot) = self.slots().running.get_mut(id) {
            slot.abort = Some(task.abort_handle());
        }
        tokio::select! {
            ready = ready_rx => {
                if ready.is_ok() {
                    self.write(id, AgentState::Idle, None, epoch, false).await;
                    self.emit(EventKind::AgentStarted { agent_id: id.clone(), process_id: self.process_id.clone() }).await;
                }
                task.await
            }
            done = &mut task => done,
        }
    }

    /// Writes the agent's last status and forgets it.
    async fn end(
        &self,
        id: &AgentId,
        status: AgentState,
        error: Option<String>,
        epoch: Option<u64>,
    ) {
        self.write(id, status, error.as_deref(), epoch, false).await;
        let process_id = self.process_id.clone();
        let agent_id = id.clone();
        let kind = match error {
            Some(error) => EventKind::AgentFailed {
                agent_id,
                process_id,
                error,
            },
            None => EventKind::AgentStopped {
                agent_id,
                process_id,
            },
        };
        self.emit(kind).await;
        // Leave `running` only after the status is written, so a reconcile never sees the
        // agent absent while its hash still says it should run.
        self.leave(id);
    }

    fn leave(&self, id: &AgentId) {
        let mut slots = self.slots();
        slots.running.remove(id);
        slots.stopped.insert(id.clone(), Instant::now());
    }

    async fn write(
        &self,
        id: &AgentId,
        status: AgentState,
        error: Option<&str>,
        epoch: Option<u64>,
        restarted: bool,
    ) -> Written {
        let w = StatusWrite {
            agent: id,
            status,
            error,
            epoch,
            restarted,
        };
        match self.control.set_agent_status(&self.process_id, w).await {
            Ok(Some(epoch)) => Written::Yes(epoch),
            Ok(None) => {
                tracing::debug!(agent_id = %id, %status, "status not written: agent is no longer ours");
                Written::Fenced
            }
            Err(e) => {
                tracing::warn!(agent_id = %id, %status, error = %e, "status not written");
                Written::Unknown
            }
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
