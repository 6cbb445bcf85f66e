//! [`TaskStore`]: the record of truth for tasks. Redis carries the live ones (and a finished
//! one for a while); the store keeps every task from its submission until it is trimmed, and
//! gives the unfinished ones back when Redis lost its data.
//!
//! # Changes never move a task backwards
//!
//! The registry announces each step of a task as a [`TaskChange`]; they reach the store through
//! the [`crate::BatchWriter`], possibly late, twice, or from more than one master. A task's
//! life is `queued(0)`, then per attempt `running(n)` followed by `queued(n)` (a retry waits)
//! or a final state (`succeeded`, `failed`, `cancelled`) at `n`; a waiting task can also be
//! cancelled at its `n`. So:
//!
//! - A final task stays final. The one change taken over it is a retry out of the pool's dead
//!   set: the registry resets the attempts, so `queued` with attempts 0 over a stored `failed`
//!   starts the task over. (No other step announces `queued(0)`; only a copy of that retry
//!   delayed past the retried task's next failure, which needs two writers, could reopen it.)
//! - Over an unfinished task a change is applied only when it is further along, by the key
//!   `(attempts, phase)` with `running` < `queued` < final: the queued state that follows an
//!   attempt carries that attempt's number, so it sorts after the attempt's `running`.
//!
//! Anything else (a late `running` after `succeeded`, a repeat, an older attempt's news) is
//! ignored, and a change for a task the store does not hold is skipped.

use std::time::Duration;

use agentpool_types::{Task, TaskChange, TaskId, TaskState};
use serde::Serialize;

use crate::{BoxFuture, Result};

/// Most tasks one [`TaskStore::insert_tasks`] takes.
pub const MAX_TASK_BATCH: usize = 1000;
/// Most tasks one [`TaskStore::tasks`] answers.
pub const MAX_TASK_LIMIT: u32 = 1000;
/// Finished tasks [`TaskStore::task_stats`] reads for its percentiles: the newest of the
/// window, so a busy window costs one bounded read however many tasks it saw.
pub const STATS_SAMPLE: u32 = 10_000;

/// What [`TaskStore::insert_tasks`] did with one task.
#[derive(Clone, Debug, PartialEq)]
pub enum Inserted {
    /// Recorded.
    New,
    /// Its idempotency key is held already in its pool (by an earlier submit, or by an
    /// earlier task of the same batch): nothing was written, this is the task holding it.
    Existing(Box<Task>),
}

/// Which tasks [`TaskStore::tasks`] lists, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskFilter {
    pub pool: Option<String>,
    pub status: Option<TaskState>,
    /// 1 to [`MAX_TASK_LIMIT`]; a value outside is brought within.
    pub limit: u32,
}

impl Default for TaskFilter {
    fn default() -> Self {
        Self {
            pool: None,
            status: None,
            limit: 100,
        }
    }
}

/// A pool's tasks over a window, as `GET .../tasks/stats` answers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskStats {
    pub window_secs: u64,
    /// Tasks created in the window, by where they stand now.
    pub counts: StateCounts,
    /// `started_at - created_at` of tasks finished in the window (the last attempt's start,
    /// so a retried task's wait includes its earlier attempts).
    pub queue_wait_ms: Percentiles,
    /// `finished_at - started_at` of tasks finished in the window.
    pub run_time_ms: Percentiles,
    /// Tasks finished in the window (all of them, not the sample), per minute.
    pub tasks_per_minute: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl StateCounts {
    pub fn add(&mut self, state: TaskState, n: u64) {
        let slot = match state {
            TaskState::Queued => &mut self.queued,
            TaskState::Running => &mut self.running,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }
}

/// Nearest-rank percentiles: each is one of the measured values (`null` when there are none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

impl Percentiles {
    /// The percentiles of `values` (sorted here). Nearest rank: the `p`th percentile of `n`
    /// values is the `ceil(p * n / 100)`th smallest, so it is exact for small sets too.
    pub fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        let n = values.len();
        let at = |p: usize| (n > 0).then(|| values[(p * n).div_ceil(100).max(1) - 1]);
        Self {
            p50: at(50),
            p95: at(95),
            p99: at(99),
        }
    }
}

pub trait TaskStore: Send + Sync + 'static {
    /// Records 1 to [`MAX_TASK_BATCH`] tasks as given, in ONE transaction. A task whose
    /// idempotency key its pool holds already is not written; the answer, one per task in
    /// order, says which task holds the key. Submits racing for one key record one task. A
    /// task id already stored fails the whole batch ([`crate::StoreError::Database`]); more
    /// than [`MAX_TASK_BATCH`] tasks is [`crate::StoreError::Invalid`].
    fn insert_tasks<'a>(&'a self, tasks: &'a [Task]) -> BoxFuture<'a, Result<Vec<Inserted>>>;

    fn task<'a>(&'a self, task_id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>>;

    /// Tasks matching the filter, newest (by `created_at`) first.
    fn tasks(&self, filter: TaskFilter) -> BoxFuture<'_, Result<Vec<Task>>>;

    /// Applies the changes in order, in ONE transaction, each only if it moves its task
    /// forward (see the module's rule). [`crate::Update::Task`] takes the same path.
    fn apply_task_changes<'a>(&'a self, changes: &'a [TaskChange]) -> BoxFuture<'a, Result<()>>;

    /// Queued and running tasks, oldest first: what Redis must hold again after losing it.
    fn unfinished_tasks(&self) -> BoxFuture<'_, Result<Vec<Task>>>;

    /// Deletes finished tasks that finished more than `older_than` ago, and in each pool those
    /// beyond its `keep_per_pool` most recently finished. Returns how many went. It deletes in
    /// batches, each a short transaction within the call bound, so a large backlog neither
    /// times out nor holds SQLite's one connection; the call as a whole may take longer.
    fn trim_tasks(&self, older_than: Duration, keep_per_pool: u64) -> BoxFuture<'_, Result<u64>>;

    /// The pool's numbers over the last `window`. Percentiles are computed here from the
    /// newest [`STATS_SAMPLE`] tasks finished in the window: SQLite has no percentile function,
    /// and a duration in SQL is spelled differently in each database, while one bounded read
    /// is the same statement on both and exact for any window with fewer finished tasks.
    fn task_stats<'a>(
        &'a self,
        pool: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<TaskStats>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
        let one = Percentiles::of(vec![7]);
        assert_eq!((one.p50, one.p95, one.p99), (Some(7), Some(7), Some(7)));
        // 1..=20 shuffled: p50 is the 10th, p95 the 19th, p99 the 20th.
        let v: Vec<u64> = (1..=20).map(|i| (i * 7) % 20 + 1).collect();
        let p = Percentiles::of(v);
        assert_eq!((p.p50, p.p95, p.p99), (Some(10), Some(19), Some(20)));
        let p = Percentiles::of((1..=1000).collect());
        assert_eq!((p.p50, p.p95, p.p99), (Some(500), Some(950), Some(990)));
    }

    #[test]
    fn stats_read_as_the_rest_answer_does() {
        let v = serde_json::to_value(TaskStats::default()).unwrap();
        for field in [
            "window_secs",
            "counts",
            "queue_wait_ms",
            "run_time_ms",
            "tasks_per_minute",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["counts"]["cancelled"], 0);
        assert!(v["run_time_ms"]["p99"].is_null());
    }
}
