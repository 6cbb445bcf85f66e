//! An agent's supervisor: it starts the agent task, writes its status as it goes (`starting`,
//! then ready and taking work, then `stopped`, `restarting`, `failed` or `quarantined`), and
//! applies the restart policy one-for-one when the task fails or panics. A task attempt the
//! agent had in hand when it broke is reported as the agent's failure, so it is retried.

use super::AgentHost;
use crate::agent::{self, AgentCtx};
use agentpool_registry::{Ready, StatusWrite};
use agentpool_types::restart::{Decision, Ending, decide};
use agentpool_types::{AgentId, AgentSpec, AgentState, Event, EventKind, TaskOutcome};
use std::collections::VecDeque;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

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

impl AgentHost {
    /// Runs an agent, restarting it in place as its policy says, until it is stopped or given up.
    pub(super) async fn supervise(self, spec: AgentSpec, stop: CancellationToken) {
        let id = spec.agent_id.clone();
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
        let id = &spec.agent_id;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let ctx = self.agent_ctx(spec);
        let mut task = self
            .agents_rt
            .spawn(agent::run(ctx.clone(), inbox, stop.clone(), ready_tx));
        if let Some(slot) = self.slots().running.get_mut(id) {
            slot.abort = Some(task.abort_handle());
            slot.inbox = Some(inbox_tx);
        }
        let outcome = tokio::select! {
            ready = ready_rx => {
                if ready.is_ok() {
                    self.ready(id, epoch, stop).await;
                }
                task.await
            }
            done = &mut task => done,
        };
        // An agent that panicked or broke mid-task: that attempt failed with it.
        if let (Err(e), Some(run)) = (&outcome, ctx.running.current()) {
            if !e.is_cancelled() {
                let why = format!("the agent panicked: {}", panic_text(e));
                agent::report(&ctx, &run, TaskOutcome::AgentFailed(why)).await;
            }
            ctx.running.end(&run);
        }
        outcome
    }

    /// The agent is up: it becomes ready for tasks and takes the one waiting, if any.
    async fn ready(&self, id: &AgentId, epoch: Option<u64>, stop: &CancellationToken) {
        match self.control.agent_ready(&self.process_id, id, epoch).await {
            Ok(Ready::Run { run, .. }) => self.deliver(run),
            Ok(Ready::Idle { .. }) => {}
            Ok(Ready::Fenced) => {
                tracing::info!(agent_id = %id, "agent no longer ours once ready: stopping it");
                stop.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(agent_id = %id, error = %e, "cannot say the agent is ready; the next heartbeat will")
            }
        }
        self.emit(EventKind::AgentStarted {
            agent_id: id.clone(),
            process_id: self.process_id.clone(),
        })
        .await;
    }

    /// What the agent task works with; its progress reports are published as events.
    fn agent_ctx(&self, spec: &AgentSpec) -> AgentCtx {
        let running = self
            .slots()
            .running
            .get(&spec.agent_id)
            .map(|s| s.running.clone())
            .unwrap_or_default();
        let (progress, mut reports) = mpsc::unbounded_channel();
        let (control, pool, agent_id) = (
            self.control.clone(),
            self.pool.clone(),
            spec.agent_id.clone(),
        );
        tokio::spawn(async move {
            while let Some((task_id, data)) = reports.recv().await {
                let event = Event::new(EventKind::TaskProgress {
                    task_id,
                    agent_id: agent_id.clone(),
                    data,
                });
                if let Err(e) = control.publish(&pool, &event).await {
                    tracing::debug!(error = %e, "progress not published");
                }
            }
        });
        AgentCtx {
            spec: spec.clone(),
            process_id: self.process_id.clone(),
            handler: self.handler.clone(),
            secret_key: self.secret_key.clone(),
            control: self.control.clone(),
            running,
            progress,
        }
    }

    /// Writes the agent's last status and forgets it. An agent that is no longer this
    /// worker's (moved away, or placed again elsewhere) ends silently: its new worker speaks
    /// for it, and a "stopped" from here would overwrite the store's record of the move.
    async fn end(
        &self,
        id: &AgentId,
        status: AgentState,
        error: Option<String>,
        epoch: Option<u64>,
    ) {
        let written = self.write(id, status, error.as_deref(), epoch, false).await;
        if !matches!(written, Written::Fenced) {
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
        }
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

/// The panic's message, or the join error's text.
fn panic_text(e: &JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    "see the worker log".to_owned()
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
