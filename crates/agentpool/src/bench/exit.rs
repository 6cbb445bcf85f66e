//! How a bench ends: the tasks it left unfinished are cancelled and the agents it spawned are
//! terminated, on every way out.
//!
//! The bench body runs as its own task. SIGINT or SIGTERM aborts it (dropping its futures,
//! so a SIGSTOPped worker gets its SIGCONT), a panic ends it, an error returns from it; in
//! each case the spawn requests still in flight are awaited, and every agent they and the
//! body spawned is terminated. A second signal during that cleanup gives up on it.

use super::report::count;
use super::tracked::Api;
use super::{ops, progress};
use anyhow::{Result, anyhow, bail};
use std::future::Future;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Runs `body`, then terminates what it left running, unless it completed and `keep` is set.
pub async fn supervise<T, F>(api: Api, keep: bool, body: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    // Installed before the body starts, so an early Ctrl-C cannot kill the bench unhandled.
    let mut signals = Signals::install()?;
    let mut task = tokio::spawn(body);
    let outcome = tokio::select! {
        joined = &mut task => joined.unwrap_or_else(|e| Err(anyhow!("the bench failed: {e}"))),
        name = signals.next() => {
            task.abort();
            let _ = task.await;
            Err(anyhow!("interrupted by {name}"))
        }
    };
    if keep && outcome.is_ok() {
        return outcome;
    }
    let cleanup = tokio::select! {
        r = cleanup(&api) => r,
        name = signals.next() => Err(abandoned(&api, name)),
    };
    match (outcome, cleanup) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(c)) => Err(c),
        (Err(e), Err(c)) => {
            progress!("error: {c:#}");
            Err(e)
        }
    }
}

/// Waits for the requests in flight, then cancels every task still unfinished (so none waits
/// in the queue for agents that are going away) and terminates every agent still running.
async fn cleanup(api: &Api) -> Result<()> {
    if api.in_flight() > 0 {
        let n = count(api.in_flight() as u64, "request");
        progress!("waiting for {n} in flight");
        api.settle().await;
    }
    let tasks = api.unfinished();
    if !tasks.is_empty() {
        let n = count(tasks.len() as u64, "task");
        progress!("cancelling the {n} the bench left unfinished");
        ops::cancel_all(api, &tasks).await?;
    }
    let left = api.live();
    if left.is_empty() {
        return Ok(());
    }
    progress!(
        "terminating the {} the bench left running",
        count(left.len() as u64, "agent")
    );
    ops::terminate_all(api, &left).await?;
    Ok(())
}

fn abandoned(api: &Api, signal: &str) -> anyhow::Error {
    let mut text = format!(
        "cleanup abandoned on {signal}: up to {} spawned by the bench may still run \
         (terminate them with `agentpool terminate`)",
        count(api.live().len() as u64, "agent")
    );
    let tasks = api.unfinished().len();
    if tasks > 0 {
        let n = count(tasks as u64, "task");
        text.push_str(&format!(
            ", and {n} it submitted may not have finished (`agentpool task cancel`)"
        ));
    }
    anyhow!(text)
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        let (Ok(interrupt), Ok(terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            bail!("cannot install the SIGINT and SIGTERM handlers");
        };
        Ok(Self {
            interrupt,
            terminate,
        })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
