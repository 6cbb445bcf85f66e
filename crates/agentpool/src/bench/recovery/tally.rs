//! How the runs ended, summed up for the report.

use super::fleet::RECOVERY_DEADLINE;
use crate::bench::stats::ms;
use agentpool_types::{AgentId, AgentState};
use std::time::Duration;

/// How one run ended.
pub enum Outcome {
    /// All agents ran in another worker after this long.
    Moved(Duration),
    TimedOut,
    /// An agent reached a state it does not leave by itself.
    Lost(AgentId, AgentState),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Moved(d) => write!(f, "agents running elsewhere after {:.1} ms", ms(*d)),
            Outcome::TimedOut => f.write_str(&not_recovered()),
            Outcome::Lost(id, state) => write!(f, "agent {id} ended {state}"),
        }
    }
}

fn not_recovered() -> String {
    format!("not recovered within {} s", RECOVERY_DEADLINE.as_secs())
}

#[derive(Default)]
pub struct Tally {
    pub times: Vec<Duration>,
    timed_out: u32,
    lost: u32,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Moved(d) => self.times.push(d),
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Lost(..) => self.lost += 1,
        }
    }

    /// `4/5`, with why the others did not recover.
    pub fn runs(&self, runs: u32) -> String {
        let mut out = format!("{}/{runs}", self.times.len());
        let mut why = Vec::new();
        if self.timed_out > 0 {
            why.push(format!("{} {}", self.timed_out, not_recovered()));
        }
        if self.lost > 0 {
            why.push(format!("{} lost an agent", self.lost));
        }
        if !why.is_empty() {
            out.push_str(&format!(" ({})", why.join(", ")));
        }
        out
    }

    pub fn none_recovered(&self) -> String {
        if self.lost == 0 {
            not_recovered()
        } else {
            "no run recovered".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_counts_say_why() {
        let mut t = Tally::default();
        t.add(Outcome::Moved(Duration::from_millis(3)));
        t.add(Outcome::TimedOut);
        assert_eq!(t.runs(2), "1/2 (1 not recovered within 30 s)");
    }
}
