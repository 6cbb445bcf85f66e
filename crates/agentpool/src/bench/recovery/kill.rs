//! The SIGKILL runs: the master sees its child exit and places the agents again.

use super::fleet::{AGENTS_PER_RUN, Bench};
use super::tally::Tally;
use crate::bench::progress;
use crate::bench::report::{Report, count};
use crate::bench::stats::{Summary, ms};
use anyhow::Result;
use nix::sys::signal::Signal;
use std::time::Instant;

/// Target for the agents of a SIGKILLed worker to run elsewhere.
const KILL_TARGET_MS: f64 = 250.0;

/// SIGKILLs a full worker per run and times until its agents run elsewhere.
pub async fn runs(bench: &mut Bench, runs: u32, report: &mut Report) -> Result<()> {
    progress!(
        "SIGKILL: {}, {} each",
        count(runs, "run"),
        count(AGENTS_PER_RUN, "agent")
    );
    let mut tally = Tally::default();
    for run in 1..=runs {
        let victim = bench.prepare().await?;
        let start = Instant::now();
        victim.signal(Signal::SIGKILL)?;
        let outcome = bench.wait_moved(&victim, start).await?;
        progress!("SIGKILL run {run}/{runs}: pid {}: {outcome}", victim.pid);
        tally.add(outcome);
        bench.retire(&victim).await?;
    }
    match Summary::of(tally.times.clone()) {
        Some(s) => {
            report.target("SIGKILL recovery p50", ms(s.p50), KILL_TARGET_MS, "ms");
            report.target("SIGKILL recovery max", ms(s.max), KILL_TARGET_MS, "ms");
        }
        None => report.info("SIGKILL recovery", tally.none_recovered()),
    }
    report.info("SIGKILL runs recovered", tally.runs(runs));
    Ok(())
}
