//! The body of one agent task: it builds its handler, says it is ready, then runs the tasks
//! its inbox brings, one at a time, reporting each attempt and taking the next one the
//! registry hands back in the same step.
//!
//! The `fault` key of an agent's config injects failures, so supervision can be shown working
//! against real processes: `"panic"` panics on start, `"error"` fails on start.

use crate::handlers::{self, Outcome, Progress, TaskInput};
use crate::running::Running;
use agentpool_registry::ControlPlane;
use agentpool_types::{
    AgentSpec, Handler, ProcessId, SecretConfig, SecretError, SecretKey, TaskOutcome, TaskReport,
    TaskRun,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How long a report keeps being retried while the registry cannot be reached. Past it the
/// attempt's lease runs out anyway and the registry retries the task.
const REPORT_PATIENCE: Duration = Duration::from_secs(30);

/// What one agent works with.
#[derive(Clone)]
pub struct AgentCtx {
    pub spec: AgentSpec,
    pub process_id: ProcessId,
    pub handler: Handler,
    /// Opens the agent's sealed `secret_config`; from the worker's environment.
    pub secret_key: Option<SecretKey>,
    pub control: Arc<dyn ControlPlane>,
    /// The attempt in hand, shared with the worker's control side (cancel, reconcile).
    pub running: Running,
    pub progress: Progress,
}

/// Runs the agent until `stop` is cancelled. Sends on `ready` once it can take work.
pub async fn run(
    ctx: AgentCtx,
    inbox: mpsc::UnboundedReceiver<TaskRun>,
    stop: CancellationToken,
    ready: oneshot::Sender<()>,
) -> Result<(), String> {
    let id = &ctx.spec.agent_id;
    match ctx.spec.metadata.get("fault").and_then(|f| f.as_str()) {
        Some("panic") => panic!("agent {id} panicked on start (fault injection)"),
        Some("error") => return Err(format!("agent {id} failed on start (fault injection)")),
        _ => {}
    }
    let secret = open_secret(&ctx).map_err(|e| format!("secret_config: {e}"))?;
    let mut handler = handlers::start(&ctx.handler, &ctx.spec, secret.as_ref()).await?;
    drop(secret);
    let _ = ready.send(());
    let served = serve(&ctx, handler.as_mut(), inbox, &stop).await;
    handler.shutdown().await;
    served
}

/// The agent's `secret_config`, opened just before its handler starts and held no longer
/// than the handler needs it.
fn open_secret(ctx: &AgentCtx) -> Result<Option<SecretConfig>, SecretError> {
    let Some(sealed) = &ctx.spec.secret_config else {
        return Ok(None);
    };
    let key = ctx.secret_key.as_ref().ok_or(SecretError::NoKey)?;
    key.open(sealed, ctx.spec.agent_id.as_str()).map(Some)
}

/// Takes tasks until stopped; an agent failure ends it with the error, for its supervisor's
/// restart policy.
async fn serve(
    ctx: &AgentCtx,
    handler: &mut dyn handlers::AgentHandler,
    mut inbox: mpsc::UnboundedReceiver<TaskRun>,
    stop: &CancellationToken,
) -> Result<(), String> {
    loop {
        let first = tokio::select! {
            run = inbox.recv() => match run { Some(run) => run, None => return Ok(()) },
            _ = stop.cancelled() => return Ok(()),
        };
        let mut next = Some(first);
        while let Some(run) = next.take() {
            let cancel = ctx.running.begin(&run);
            let input = TaskInput {
                task_id: run.task_id.clone(),
                input: run.input.clone(),
            };
            let timeout = Duration::from_millis(run.timeout_ms);
            let outcome = handler.run(input, timeout, &ctx.progress, cancel).await;
            let broke = match &outcome {
                Outcome::AgentFailed(e) => Some(e.clone()),
                _ => None,
            };
            next = report(ctx, &run, outcome_of(outcome)).await;
            ctx.running.end(&run);
            if let Some(e) = broke {
                return Err(e);
            }
            if stop.is_cancelled() {
                // A task handed over as the agent stops stays with it until its lease runs
                // out or its worker is reaped; then it is retried elsewhere.
                return Ok(());
            }
        }
    }
}

fn outcome_of(outcome: Outcome) -> TaskOutcome {
    match outcome {
        Outcome::Succeeded(v) => TaskOutcome::Succeeded(v),
        Outcome::Failed(e) => TaskOutcome::Failed(e),
        Outcome::Cancelled => TaskOutcome::Cancelled,
        Outcome::AgentFailed(e) => TaskOutcome::AgentFailed(e),
    }
}

/// Reports an attempt, retrying while the registry cannot be reached; returns the next task
/// the registry handed the agent in the same step.
pub async fn report(ctx: &AgentCtx, run: &TaskRun, outcome: TaskOutcome) -> Option<TaskRun> {
    let report = TaskReport {
        task_id: run.task_id.clone(),
        agent_id: run.agent_id.clone(),
        process_id: ctx.process_id.clone(),
        attempt: run.attempt,
        outcome,
    };
    let deadline = tokio::time::Instant::now() + REPORT_PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        match ctx.control.finish_task(&report).await {
            Ok(finished) => {
                if !finished.accepted {
                    tracing::info!(task_id = %run.task_id, attempt = run.attempt, "report dropped: the attempt is no longer current");
                }
                return finished.next;
            }
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(task_id = %run.task_id, error = %e, "cannot report the attempt; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(task_id = %run.task_id, error = %e, "attempt not reported; its lease will run out and the task be retried");
                return None;
            }
        }
    }
}
