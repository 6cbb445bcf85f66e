//! The SIGSTOP runs: a frozen worker stays registered but its heartbeat stops, so the master
//! must notice the stale heartbeat. Once resumed, the worker should find itself replaced and
//! exit by itself.

use super::fleet::{AGENTS_PER_RUN, Bench, Victim};
use super::tally::{Outcome, Tally};
use crate::bench::progress;
use crate::bench::report::{Report, count};
use crate::bench::stats::{Summary, ms};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// How long a resumed worker gets to notice it was replaced and exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two looks at `/proc` while waiting for that exit.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// SIGSTOPs a full worker per run, times until its agents run elsewhere, then resumes it and
/// times until it exits.
pub async fn runs(
    bench: &mut Bench,
    runs: u32,
    target: Duration,
    report: &mut Report,
) -> Result<()> {
    progress!(
        "SIGSTOP: {}, {} each, target {:.1} s",
        count(runs, "run"),
        count(AGENTS_PER_RUN, "agent"),
        target.as_secs_f64()
    );
    let mut tally = Tally::default();
    let mut fenced = Vec::new();
    for run in 1..=runs {
        let victim = bench.prepare().await?;
        let (outcome, fence) = one_run(bench, &victim).await?;
        progress!(
            "SIGSTOP run {run}/{runs}: pid {}: {outcome}; after SIGCONT: {fence}",
            victim.pid
        );
        fenced.push(fence);
        tally.add(outcome);
        bench.retire(&victim).await?;
    }
    let target_s = target.as_secs_f64();
    match Summary::of(tally.times.clone()) {
        Some(s) => {
            report.target("SIGSTOP recovery p50", s.p50.as_secs_f64(), target_s, "s");
            report.target("SIGSTOP recovery max", s.max.as_secs_f64(), target_s, "s");
        }
        None => report.info("SIGSTOP recovery", tally.none_recovered()),
    }
    report.info("SIGSTOP runs recovered", tally.runs(runs));
    report.info("stopped worker exited", fence_summary(&fenced));
    Ok(())
}

/// Freezes the victim until its agents moved (or the run ended otherwise), then resumes it.
async fn one_run(bench: &Bench, victim: &Victim) -> Result<(Outcome, Fence)> {
    let start = Instant::now();
    let frozen = Frozen::stop(victim)?;
    let outcome = bench.wait_moved(victim, start).await;
    let gone_before = victim.exited()?;
    frozen.resume()?;
    let outcome = outcome?;
    let fence = if gone_before {
        Fence::GoneBeforeResume
    } else {
        wait_exit(victim).await?
    };
    Ok((outcome, fence))
}

async fn wait_exit(victim: &Victim) -> Result<Fence> {
    let start = Instant::now();
    loop {
        if victim.exited()? {
            return Ok(Fence::Exited(start.elapsed()));
        }
        if start.elapsed() >= EXIT_DEADLINE {
            return Ok(Fence::StillRunning);
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
}

/// A SIGSTOPped worker; dropping it without [`Frozen::resume`] still sends SIGCONT, so an
/// error or Ctrl-C never leaves the worker frozen.
struct Frozen {
    pid: Option<Pid>,
}

impl Frozen {
    fn stop(victim: &Victim) -> Result<Self> {
        victim.signal(Signal::SIGSTOP)?;
        Ok(Self {
            pid: Some(victim.pid),
        })
    }

    /// Sends SIGCONT; a worker already gone (the master may have killed it) is fine.
    fn resume(mut self) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        match kill(pid, Signal::SIGCONT) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("sending SIGCONT to worker pid {pid}")),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }
}

/// What the frozen worker did once resumed.
enum Fence {
    /// Gone before SIGCONT: something else (the master) ended it.
    GoneBeforeResume,
    /// It exited by itself this long after SIGCONT.
    Exited(Duration),
    StillRunning,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fence::GoneBeforeResume => f.write_str("already gone before SIGCONT"),
            Fence::Exited(d) => write!(f, "exited by itself after {:.1} ms", ms(*d)),
            Fence::StillRunning => write!(f, "still running after {} s", EXIT_DEADLINE.as_secs()),
        }
    }
}

/// `2/2 by itself (max 12.3 ms after SIGCONT)`, naming the runs where it did not.
fn fence_summary(fenced: &[Fence]) -> String {
    let exit_times: Vec<Duration> = fenced
        .iter()
        .filter_map(|f| match f {
            Fence::Exited(d) => Some(*d),
            _ => None,
        })
        .collect();
    let mut out = format!("{}/{} by itself", exit_times.len(), fenced.len());
    if let Some(max) = exit_times.iter().max() {
        out.push_str(&format!(" (max {:.1} ms after SIGCONT)", ms(*max)));
    }
    let count = |pred: fn(&Fence) -> bool| fenced.iter().filter(|f| pred(f)).count();
    let gone = count(|f| matches!(f, Fence::GoneBeforeResume));
    let running = count(|f| matches!(f, Fence::StillRunning));
    if gone > 0 {
        out.push_str(&format!(", {gone} gone before SIGCONT"));
    }
    if running > 0 {
        out.push_str(&format!(
            ", {running} still running after {} s",
            EXIT_DEADLINE.as_secs()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_summary_names_the_exceptions() {
        let fenced = [Fence::Exited(Duration::from_millis(5)), Fence::StillRunning];
        assert_eq!(
            fence_summary(&fenced),
            "1/2 by itself (max 5.0 ms after SIGCONT), 1 still running after 10 s"
        );
    }
}
