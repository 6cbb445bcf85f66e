//! [`Running`]: the attempt an agent has in hand, shared between the agent (which runs it) and
//! the worker's control side (which cancels it on command, and checks it on reconcile).
//! It also remembers recent attempts, so one delivered twice (by command and by a heartbeat's
//! reconcile) runs once.

use agentpool_types::{TaskId, TaskRun};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a delivered attempt is remembered.
const SEEN_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    current: Option<(TaskRun, CancellationToken)>,
    seen: HashMap<(TaskId, u32), Instant>,
}

#[derive(Clone, Default)]
pub struct Running {
    state: Arc<Mutex<State>>,
}

impl Running {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this attempt is new to the agent; remembers it.
    pub fn first_delivery(&self, run: &TaskRun) -> bool {
        let mut s = self.state();
        s.seen.retain(|_, at| at.elapsed() < SEEN_FOR);
        s.seen
            .insert((run.task_id.clone(), run.attempt), Instant::now())
            .is_none()
    }

    /// The agent starts `run`; the token cancels it.
    pub fn begin(&self, run: &TaskRun) -> CancellationToken {
        let cancel = CancellationToken::new();
        let mut s = self.state();
        s.seen
            .insert((run.task_id.clone(), run.attempt), Instant::now());
        s.current = Some((run.clone(), cancel.clone()));
        cancel
    }

    pub fn end(&self, run: &TaskRun) {
        let mut s = self.state();
        if s.current
            .as_ref()
            .is_some_and(|(r, _)| r.task_id == run.task_id)
        {
            s.current = None;
        }
    }

    /// The attempt in hand.
    pub fn current(&self) -> Option<TaskRun> {
        self.state().current.as_ref().map(|(r, _)| r.clone())
    }

    /// Cancels the attempt in hand if it is of `task`; true when it was.
    pub fn cancel(&self, task: &TaskId) -> bool {
        let s = self.state();
        match &s.current {
            Some((run, token)) if &run.task_id == task => {
                token.cancel();
                true
            }
            _ => false,
        }
    }
}
