//! Progress of long client commands on stderr: an indicatif bar or spinner on a terminal, and
//! plain lines when stderr is a pipe or a file, so logs of scripted runs stay readable.

use super::write_stderr;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a spinner redraws while nothing else happens.
const TICK: Duration = Duration::from_millis(100);

pub struct Progress {
    /// `None` when stderr is not a terminal: then only the start and end lines are printed.
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar of `len` steps, titled `what`.
    pub fn bar(len: u64, what: &str) -> Self {
        Self::start(what, || {
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::new(len).with_style(style)
        })
    }

    /// A spinner with the time spent, for a wait of unknown length.
    pub fn spinner(what: &str) -> Self {
        Self::start(what, || {
            let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            ProgressBar::new_spinner().with_style(style)
        })
    }

    fn start(what: &str, make: impl FnOnce() -> ProgressBar) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = make().with_message(what.to_owned());
            bar.enable_steady_tick(TICK);
            Some(bar)
        } else {
            write_stderr(&format!("{what}\n"));
            None
        };
        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// Whether a bar is drawn (stderr is a terminal), so worth feeding.
    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        }
    }

    /// Clears the bar and prints `done` with the time it took, on a terminal or not.
    pub fn finish(self, done: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        write_stderr(&format!("{done} in {secs:.2} s\n"));
    }

    /// Clears the bar without a last line (the error that follows says what happened).
    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
