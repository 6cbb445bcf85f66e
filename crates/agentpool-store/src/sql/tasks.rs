//! [`crate::TaskStore`] for both backends: batches of tasks in one transaction, idempotency
//! keys per pool, changes that only move forward, trimming and stats.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use agentpool_types::{Task, TaskChange, TaskId, TaskState};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::records::{TaskRecord, convert, invalid, opt_stamp, stamp};
use super::{PgStore, SqliteStore, bounded};
use crate::error::{Result, StoreError};
use crate::task_store::{
    Inserted, MAX_TASK_BATCH, MAX_TASK_LIMIT, Percentiles, STATS_SAMPLE, StateCounts, TaskFilter,
    TaskStats,
};

/// Tasks per multi-row INSERT (16 values each): far below either database's parameter limit.
const INSERT_CHUNK: usize = 500;
/// Keys per `IN (...)` list when looking up the tasks that hold them.
const KEY_CHUNK: usize = 500;
/// Tasks one trim transaction deletes: a few milliseconds of SQLite's only connection, so
/// the request path's statements queue behind it only briefly.
const TRIM_BATCH: i64 = 2_000;

mod q {
    pub const INSERT: &str = "INSERT INTO tasks (task_id, pool_name, target_agent_id, priority, \
         input, max_attempts, timeout_secs, idempotency_key, status, attempts, agent_id, output, \
         error, created_at, started_at, finished_at) ";
    /// A clash on the task id is an error; a clash on the key skips the task. RETURNING lists
    /// the tasks written (PostgreSQL, and SQLite since 3.35).
    pub const ON_KEY: &str =
        " ON CONFLICT (pool_name, idempotency_key) DO NOTHING RETURNING task_id";
    pub const BY_KEYS: &str = "SELECT * FROM tasks WHERE pool_name = ";
    pub const TASK: &str = "SELECT * FROM tasks WHERE task_id = $1";
    pub const LIST: &str = "SELECT * FROM tasks";
    /// The ordering rule of [`crate::task_store`] in one guarded statement: an unfinished
    /// row moves when the change's `(attempts, phase)` is greater (the stored phase ranked as
    /// `phase` ranks the change's, $9); a finished one only for a retry out of the dead set
    /// ($10).
    pub const APPLY: &str = "UPDATE tasks SET status = $2, attempts = $3, agent_id = $4, \
         output = $5, error = $6, started_at = $7, finished_at = $8 \
         WHERE task_id = $1 AND ( \
         (status IN ('queued', 'running') AND (attempts < $3 OR (attempts = $3 \
             AND (CASE status WHEN 'running' THEN 0 ELSE 1 END) < $9))) \
         OR (status = 'failed' AND $10))";
    pub const UNFINISHED: &str = "SELECT * FROM tasks WHERE status IN ('queued', 'running') \
         ORDER BY created_at, task_id";
    /// Every pool with tasks, one index probe per pool (a loose index scan) instead of a scan
    /// of every task.
    pub const POOLS: &str = "WITH RECURSIVE p(name) AS ( \
         SELECT MIN(pool_name) FROM tasks \
         UNION ALL \
         SELECT (SELECT MIN(pool_name) FROM tasks WHERE pool_name > p.name) \
         FROM p WHERE p.name IS NOT NULL) \
         SELECT name FROM p WHERE name IS NOT NULL";
    /// The pool's most recent finished task beyond the ones it keeps.
    pub const FIRST_BEYOND: &str = "SELECT finished_at, task_id FROM tasks \
         WHERE pool_name = $1 AND finished_at IS NOT NULL \
         AND status NOT IN ('queued', 'running') \
         ORDER BY finished_at DESC, task_id DESC LIMIT 1 OFFSET $2";
    /// Finished tasks of the pool at or before the boundary ($2, $3), a batch at a time.
    pub const TRIM: &str = "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks \
         WHERE pool_name = $1 AND status NOT IN ('queued', 'running') \
         AND (finished_at < $2 OR (finished_at = $2 AND task_id <= $3)) LIMIT $4)";
    pub const COUNTS: &str = "SELECT status, COUNT(*) FROM tasks \
         WHERE pool_name = $1 AND created_at >= $2 GROUP BY status";
    pub const FINISHED: &str =
        "SELECT COUNT(*) FROM tasks WHERE pool_name = $1 AND finished_at >= $2";
    pub const SAMPLE: &str = "SELECT created_at, started_at, finished_at FROM tasks \
         WHERE pool_name = $1 AND finished_at >= $2 ORDER BY finished_at DESC LIMIT $3";
}

/// A task with its timestamps read, ready to bind.
struct Row<'a> {
    task: &'a Task,
    created: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
}

impl<'a> Row<'a> {
    fn new(task: &'a Task) -> Result<Self> {
        Ok(Self {
            task,
            created: stamp(&task.created_at)?,
            started: opt_stamp(task.started_at.as_deref())?,
            finished: opt_stamp(task.finished_at.as_deref())?,
        })
    }

    fn key(&self) -> (&str, Option<&str>) {
        let spec = &self.task.spec;
        (&spec.pool_name, spec.idempotency_key.as_deref())
    }
}

/// The change's phase, ranked as [`q::APPLY`] ranks the stored row's.
fn phase(state: TaskState) -> i64 {
    match state {
        TaskState::Running => 0,
        TaskState::Queued => 1,
        TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled => 2,
    }
}

/// `now - d`, or the earliest time for a `d` beyond the calendar.
fn ago(d: Duration) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    Utc::now()
        .checked_sub_signed(d)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// The answer for each task in input order: new if its id was written, else the task that
/// holds its key.
fn answers(
    tasks: &[Task],
    written: &HashSet<String>,
    holders: &HashMap<(String, String), Task>,
) -> Result<Vec<Inserted>> {
    tasks
        .iter()
        .map(|t| {
            if written.contains(t.id().as_str()) {
                return Ok(Inserted::New);
            }
            let key = (t.spec.pool_name.clone(), t.spec.idempotency_key.clone());
            match key {
                (pool, Some(key)) => match holders.get(&(pool, key)) {
                    Some(holder) => Ok(Inserted::Existing(Box::new(holder.clone()))),
                    // Held at the INSERT, gone by the SELECT: trimmed in between.
                    None => Err(StoreError::Database(format!(
                        "the task holding the key of task {} vanished; submit again",
                        t.id()
                    ))),
                },
                (_, None) => Err(invalid("unwritten task without a key", t.id().as_str())),
            }
        })
        .collect()
}

/// Implements [`crate::TaskStore`] for a struct with a `pool` field of the given database.
macro_rules! task_store {
    ($store:ty, $db:ty) => {
        impl $crate::TaskStore for $store {
            fn insert_tasks<'a>(
                &'a self,
                tasks: &'a [Task],
            ) -> $crate::BoxFuture<'a, Result<Vec<Inserted>>> {
                Box::pin(bounded(async move {
                    if tasks.len() > MAX_TASK_BATCH {
                        return Err(StoreError::Invalid(format!(
                            "{} tasks in one insert; at most {MAX_TASK_BATCH}",
                            tasks.len()
                        )));
                    }
                    let mut rows = tasks.iter().map(Row::new).collect::<Result<Vec<_>>>()?;
                    // Batches racing for the same keys then wait on each other in one order,
                    // never in a cycle (PostgreSQL would end one of them as a deadlock).
                    rows.sort_by(|a, b| a.key().cmp(&b.key()));
                    let mut tx = self.pool.begin().await?;
                    let mut written = HashSet::with_capacity(tasks.len());
                    for chunk in rows.chunks(INSERT_CHUNK) {
                        let mut insert = sqlx::QueryBuilder::<$db>::new(q::INSERT);
                        insert.push_values(chunk, |mut b, r| {
                            let (t, s) = (r.task, &r.task.spec);
                            b.push_bind(s.task_id.as_str())
                                .push_bind(&s.pool_name)
                                .push_bind(s.target_agent_id.as_ref().map(|a| a.as_str()))
                                .push_bind(i64::from(s.priority))
                                .push_bind(Json(&s.input))
                                .push_bind(i64::from(s.max_attempts))
                                .push_bind(
                                    s.timeout_secs.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                                )
                                .push_bind(s.idempotency_key.as_deref())
                                .push_bind(t.status.as_str())
                                .push_bind(i64::from(t.attempts))
                                .push_bind(t.agent_id.as_ref().map(|a| a.as_str()))
                                .push_bind(t.output.as_ref().map(Json))
                                .push_bind(t.error.as_deref())
                                .push_bind(r.created)
                                .push_bind(r.started)
                                .push_bind(r.finished);
                        });
                        insert.push(q::ON_KEY);
                        let ids: Vec<String> =
                            insert.build_query_scalar().fetch_all(&mut *tx).await?;
                        written.extend(ids);
                    }
                    // The tasks holding the keys of those not written, in this transaction:
                    // it sees a racing batch's tasks once that committed (its INSERT waited).
                    let mut missing: HashMap<&str, Vec<&str>> = HashMap::new();
                    for r in rows
                        .iter()
                        .filter(|r| !written.contains(r.task.id().as_str()))
                    {
                        if let (pool, Some(key)) = r.key() {
                            missing.entry(pool).or_default().push(key);
                        }
                    }
                    let mut holders = HashMap::new();
                    for (pool, keys) in missing {
                        for chunk in keys.chunks(KEY_CHUNK) {
                            let mut select = sqlx::QueryBuilder::<$db>::new(q::BY_KEYS);
                            select.push_bind(pool).push(" AND idempotency_key IN (");
                            let mut list = select.separated(", ");
                            for key in chunk {
                                list.push_bind(*key);
                            }
                            select.push(")");
                            let found: Vec<TaskRecord> =
                                select.build_query_as().fetch_all(&mut *tx).await?;
                            for task in convert::<_, Task>(found)? {
                                let key = task.spec.idempotency_key.clone().unwrap_or_default();
                                holders.insert((task.spec.pool_name.clone(), key), task);
                            }
                        }
                    }
                    tx.commit().await?;
                    answers(tasks, &written, &holders)
                }))
            }

            fn task<'a>(
                &'a self,
                task_id: &'a TaskId,
            ) -> $crate::BoxFuture<'a, Result<Option<Task>>> {
                Box::pin(bounded(async move {
                    let row: Option<TaskRecord> = sqlx::query_as(q::TASK)
                        .bind(task_id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(Task::try_from).transpose()
                }))
            }

            fn tasks(&self, filter: TaskFilter) -> $crate::BoxFuture<'_, Result<Vec<Task>>> {
                Box::pin(bounded(async move {
                    let mut list = sqlx::QueryBuilder::<$db>::new(q::LIST);
                    let mut word = " WHERE ";
                    if let Some(pool) = &filter.pool {
                        list.push(word).push("pool_name = ").push_bind(pool);
                        word = " AND ";
                    }
                    if let Some(status) = filter.status {
                        list.push(word).push("status = ").push_bind(status.as_str());
                    }
                    list.push(" ORDER BY created_at DESC, task_id DESC LIMIT ")
                        .push_bind(i64::from(filter.limit.clamp(1, MAX_TASK_LIMIT)));
                    let rows: Vec<TaskRecord> = list.build_query_as().fetch_all(&self.pool).await?;
                    convert(rows)
                }))
            }

            fn apply_task_changes<'a>(
                &'a self,
                changes: &'a [TaskChange],
            ) -> $crate::BoxFuture<'a, Result<()>> {
                Box::pin(bounded(async move {
                    if changes.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.pool.begin().await?;
                    for change in changes {
                        Self::write_task_change(&mut *tx, change).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }))
            }

            fn unfinished_tasks(&self) -> $crate::BoxFuture<'_, Result<Vec<Task>>> {
                Box::pin(bounded(async move {
                    let rows: Vec<TaskRecord> =
                        sqlx::query_as(q::UNFINISHED).fetch_all(&self.pool).await?;
                    convert(rows)
                }))
            }

            fn trim_tasks(
                &self,
                older_than: Duration,
                keep_per_pool: u64,
            ) -> $crate::BoxFuture<'_, Result<u64>> {
                Box::pin(async move {
                    let cutoff = ago(older_than);
                    let keep = i64::try_from(keep_per_pool).unwrap_or(i64::MAX);
                    let pools: Vec<(String,)> = bounded(async {
                        Ok(sqlx::query_as(q::POOLS).fetch_all(&self.pool).await?)
                    })
                    .await?;
                    let mut gone = 0;
                    for (pool,) in pools {
                        let beyond: Option<(DateTime<Utc>, String)> = bounded(async {
                            Ok(sqlx::query_as(q::FIRST_BEYOND)
                                .bind(&pool)
                                .bind(keep)
                                .fetch_optional(&self.pool)
                                .await?)
                        })
                        .await?;
                        // Everything up to the later of the two boundaries goes: `(cutoff, "")`
                        // takes exactly the tasks finished before the cutoff.
                        let (at, id) = beyond
                            .filter(|(at, _)| *at >= cutoff)
                            .unwrap_or((cutoff, String::new()));
                        loop {
                            let done = bounded(async {
                                Ok(sqlx::query(q::TRIM)
                                    .bind(&pool)
                                    .bind(at)
                                    .bind(&id)
                                    .bind(TRIM_BATCH)
                                    .execute(&self.pool)
                                    .await?)
                            })
                            .await?;
                            gone += done.rows_affected();
                            if done.rows_affected() < TRIM_BATCH as u64 {
                                break;
                            }
                        }
                    }
                    Ok(gone)
                })
            }

            fn task_stats<'a>(
                &'a self,
                pool: &'a str,
                window: Duration,
            ) -> $crate::BoxFuture<'a, Result<TaskStats>> {
                Box::pin(bounded(async move {
                    let since = ago(window);
                    let counted: Vec<(String, i64)> = sqlx::query_as(q::COUNTS)
                        .bind(pool)
                        .bind(since)
                        .fetch_all(&self.pool)
                        .await?;
                    let mut counts = StateCounts::default();
                    for (status, n) in counted {
                        let state = status
                            .parse()
                            .map_err(|_| invalid("task status", &status))?;
                        counts.add(state, u64::try_from(n).unwrap_or(0));
                    }
                    let (finished,): (i64,) = sqlx::query_as(q::FINISHED)
                        .bind(pool)
                        .bind(since)
                        .fetch_one(&self.pool)
                        .await?;
                    type Times = (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
                    let sample: Vec<Times> = sqlx::query_as(q::SAMPLE)
                        .bind(pool)
                        .bind(since)
                        .bind(i64::from(STATS_SAMPLE))
                        .fetch_all(&self.pool)
                        .await?;
                    // A task cancelled before it started has no wait and no run time.
                    let started = || sample.iter().filter_map(|(c, s, f)| Some((*c, (*s)?, *f)));
                    let waits = started().map(|(c, s, _)| millis(c, s)).collect();
                    let runs = started()
                        .filter_map(|(_, s, f)| Some(millis(s, f?)))
                        .collect();
                    let minutes = window.as_secs_f64() / 60.0;
                    Ok(TaskStats {
                        window_secs: window.as_secs(),
                        counts,
                        queue_wait_ms: Percentiles::of(waits),
                        run_time_ms: Percentiles::of(runs),
                        tasks_per_minute: if minutes > 0.0 {
                            finished as f64 / minutes
                        } else {
                            0.0
                        },
                    })
                }))
            }
        }

        impl $store {
            /// Applies one change if it moves its task forward; shared by
            /// [`crate::TaskStore::apply_task_changes`] and [`crate::AgentStore::apply`].
            pub(super) async fn write_task_change(
                conn: &mut <$db as sqlx::Database>::Connection,
                c: &TaskChange,
            ) -> Result<()> {
                sqlx::query(q::APPLY)
                    .bind(c.task_id.as_str())
                    .bind(c.status.as_str())
                    .bind(i64::from(c.attempts))
                    .bind(c.agent_id.as_ref().map(|a| a.as_str()))
                    .bind(c.output.as_ref().map(Json))
                    .bind(c.error.as_deref())
                    .bind(opt_stamp(c.started_at.as_deref())?)
                    .bind(opt_stamp(c.finished_at.as_deref())?)
                    .bind(phase(c.status))
                    .bind(c.status == TaskState::Queued && c.attempts == 0)
                    .execute(conn)
                    .await?;
                Ok(())
            }
        }
    };
}

task_store!(PgStore, sqlx::Postgres);
task_store!(SqliteStore, sqlx::Sqlite);
