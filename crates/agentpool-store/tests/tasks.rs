//! Tasks on both stores: batches in one transaction, idempotency keys per pool (also racing),
//! changes that only move forward, listings, the restore's read, trimming and stats.

mod common;

use std::slice::from_ref;
use std::sync::Arc;
use std::time::Duration;

use agentpool_store::{
    BatchWriter, Inserted, Percentiles, StateCounts, Store, StoreError, TaskFilter, Update,
};
use agentpool_types::{AgentId, Task, TaskChange, TaskId, TaskSpec, TaskState};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

both!(
    a_task_round_trips_with_every_field,
    a_batch_of_a_thousand_is_one_transaction,
    idempotency_keys_hold_per_pool,
    submits_racing_for_one_key_record_one,
    changes_never_move_a_task_backwards,
    filters_and_limits,
    unfinished_are_queued_and_running_oldest_first,
    trim_by_age,
    trim_by_count,
    stats_on_known_data,
    the_batch_writer_carries_task_changes,
);

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, to the millisecond: what a timestamp keeps through its text form.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn mins(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn queued(pool: &str, key: Option<&str>, created: DateTime<Utc>) -> Task {
    let spec = TaskSpec {
        task_id: TaskId::new(),
        pool_name: pool.into(),
        target_agent_id: None,
        priority: 5,
        input: json!({"q": "hello"}),
        max_attempts: 3,
        timeout_secs: None,
        idempotency_key: key.map(str::to_owned),
    };
    Task::queued(spec, text(created))
}

/// A task that ran once, started and finished at the given times (`None`: never started).
fn finished(
    pool: &str,
    state: TaskState,
    created: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
    done: DateTime<Utc>,
) -> Task {
    let mut t = queued(pool, None, created);
    t.status = state;
    t.attempts = u32::from(started.is_some());
    t.started_at = started.map(text);
    t.finished_at = Some(text(done));
    t
}

/// The change that brings `task` to `status` after `attempts` attempts.
fn moved(task: &Task, status: TaskState, attempts: u32) -> TaskChange {
    let mut t = task.clone();
    t.status = status;
    t.attempts = attempts;
    t.agent_id = (status != TaskState::Queued).then(AgentId::new);
    t.started_at = (attempts > 0).then(|| text(now()));
    t.finished_at = status.is_final().then(|| text(now()));
    t.output = (status == TaskState::Succeeded).then(|| json!({"attempt": attempts}));
    t.error = (status == TaskState::Failed).then(|| format!("attempt {attempts} failed"));
    TaskChange::of(&t)
}

async fn insert(store: &Arc<dyn Store>, tasks: &[Task]) {
    for chunk in tasks.chunks(1000) {
        let answers = store.insert_tasks(chunk).await.unwrap();
        assert!(answers.iter().all(|a| *a == Inserted::New));
    }
}

async fn get(store: &Arc<dyn Store>, id: &TaskId) -> Task {
    store.task(id).await.unwrap().expect("stored task")
}

async fn a_task_round_trips_with_every_field(store: Arc<dyn Store>) {
    let mut full = finished(
        "dev",
        TaskState::Succeeded,
        now() - mins(3),
        Some(now() - mins(2)),
        now(),
    );
    full.spec.target_agent_id = Some(AgentId::new());
    full.spec.priority = 9;
    full.spec.timeout_secs = Some(30);
    full.spec.idempotency_key = Some("k".into());
    full.spec.input = json!([1, "two", {"three": null}]);
    full.agent_id = full.spec.target_agent_id.clone();
    full.output = Some(json!({"answer": 42}));
    full.error = Some("an earlier attempt failed".into());
    let plain = queued("dev", None, now());
    insert(&store, &[full.clone(), plain.clone()]).await;
    assert_eq!(get(&store, full.id()).await, full);
    assert_eq!(get(&store, plain.id()).await, plain);
    assert_eq!(store.task(&TaskId::new()).await.unwrap(), None);

    let dup = store.insert_tasks(from_ref(&plain)).await.unwrap_err();
    assert!(matches!(dup, StoreError::Database(_)), "{dup:?}");
    let mut bad = queued("dev", None, now());
    bad.created_at = "yesterday".into();
    let err = store.insert_tasks(&[bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

async fn a_batch_of_a_thousand_is_one_transaction(store: Arc<dyn Store>) {
    let base = now() - mins(60);
    let batch: Vec<Task> = (0..1000)
        .map(|i| {
            queued(
                "bulk",
                Some(&format!("k{i}")),
                base + chrono::Duration::milliseconds(i),
            )
        })
        .collect();
    let answers = store.insert_tasks(&batch).await.unwrap();
    assert_eq!(answers, vec![Inserted::New; 1000]);
    let all = TaskFilter {
        pool: Some("bulk".into()),
        limit: 1000,
        ..TaskFilter::default()
    };
    assert_eq!(store.tasks(all.clone()).await.unwrap().len(), 1000);

    // 999 new tasks and, last, one with a stored id (and no key, so nothing excuses it): the
    // whole batch fails, nothing of it stays.
    let mut doomed: Vec<Task> = (0..1000).map(|_| queued("other", None, now())).collect();
    doomed[999].spec.task_id = batch[0].id().clone();
    assert!(store.insert_tasks(&doomed).await.is_err());
    assert!(store.task(doomed[0].id()).await.unwrap().is_none());
    let other = TaskFilter {
        pool: Some("other".into()),
        ..all
    };
    assert!(store.tasks(other).await.unwrap().is_empty());

    let too_many: Vec<Task> = (0..1001).map(|_| queued("other", None, now())).collect();
    let err = store.insert_tasks(&too_many).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(store.insert_tasks(&[]).await.unwrap().is_empty());
}

async fn idempotency_keys_hold_per_pool(store: Arc<dyn Store>) {
    let first = queued("a", Some("key"), now());
    insert(&store, from_ref(&first)).await;
    let again = queued("a", Some("key"), now());
    let elsewhere = queued("b", Some("key"), now());
    let keyless = [queued("a", None, now()), queued("a", None, now())];
    let answers = store
        .insert_tasks(&[
            again.clone(),
            elsewhere.clone(),
            keyless[0].clone(),
            keyless[1].clone(),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        vec![
            Inserted::Existing(Box::new(first.clone())),
            Inserted::New,
            Inserted::New,
            Inserted::New
        ]
    );
    assert!(store.task(again.id()).await.unwrap().is_none());
    // The same task submitted again (a client's retry) is answered with itself.
    let answers = store.insert_tasks(from_ref(&first)).await.unwrap();
    assert_eq!(answers, vec![Inserted::Existing(Box::new(first.clone()))]);

    // Twice in one batch: the first is recorded, the second answered with it.
    let (x, y) = (
        queued("a", Some("twin"), now()),
        queued("a", Some("twin"), now()),
    );
    let answers = store.insert_tasks(&[x.clone(), y.clone()]).await.unwrap();
    assert_eq!(
        answers,
        vec![Inserted::New, Inserted::Existing(Box::new(x))]
    );

    // The holder is answered as it stands now, not as it was submitted.
    store
        .apply_task_changes(&[moved(&first, TaskState::Running, 1)])
        .await
        .unwrap();
    let answers = store.insert_tasks(&[again]).await.unwrap();
    let [Inserted::Existing(holder)] = &answers[..] else {
        panic!("{answers:?}");
    };
    assert_eq!(
        (holder.id(), holder.status),
        (first.id(), TaskState::Running)
    );
}

async fn submits_racing_for_one_key_record_one(store: Arc<dyn Store>) {
    for round in 0..10 {
        let key = format!("race-{round}");
        let a = [queued("p", Some(&key), now()), queued("p", None, now())];
        let b = [queued("p", None, now()), queued("p", Some(&key), now())];
        let (ra, rb) = tokio::join!(store.insert_tasks(&a), store.insert_tasks(&b));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winner = match (&ra[0], &rb[1]) {
            (Inserted::New, Inserted::Existing(w)) => {
                assert_eq!(w.id(), a[0].id());
                &a[0]
            }
            (Inserted::Existing(w), Inserted::New) => {
                assert_eq!(w.id(), b[1].id());
                &b[1]
            }
            other => panic!("exactly one task holds the key: {other:?}"),
        };
        assert_eq!((&ra[1], &rb[0]), (&Inserted::New, &Inserted::New));
        let loser = if winner == &a[0] { &b[1] } else { &a[0] };
        assert!(store.task(loser.id()).await.unwrap().is_none());
    }
    // Two batches taking the same two keys in opposite orders both finish (no deadlock).
    let one = [
        queued("p", Some("k1"), now()),
        queued("p", Some("k2"), now()),
    ];
    let other = [
        queued("p", Some("k2"), now()),
        queued("p", Some("k1"), now()),
    ];
    let (ra, rb) = tokio::join!(store.insert_tasks(&one), store.insert_tasks(&other));
    let new = [ra.unwrap(), rb.unwrap()]
        .concat()
        .iter()
        .filter(|a| **a == Inserted::New)
        .count();
    assert_eq!(new, 2, "each key recorded once");
}

async fn changes_never_move_a_task_backwards(store: Arc<dyn Store>) {
    let t = queued("dev", None, now());
    insert(&store, from_ref(&t)).await;
    let state = |t: Task| (t.status, t.attempts);
    use TaskState::*;

    let run1 = moved(&t, Running, 1);
    let retry1 = moved(&t, Queued, 1);
    let run2 = moved(&t, Running, 2);
    let failed2 = moved(&t, Failed, 2);
    store.apply_task_changes(from_ref(&run1)).await.unwrap();
    assert_eq!(state(get(&store, t.id()).await), (Running, 1));
    // A retry waits at the attempts of the attempt that failed; it follows that attempt.
    store.apply_task_changes(from_ref(&retry1)).await.unwrap();
    assert_eq!(state(get(&store, t.id()).await), (Queued, 1));
    // Late and repeated changes in the same batch as the news: only the news count.
    store
        .apply_task_changes(&[
            run1.clone(),
            run2.clone(),
            retry1.clone(),
            failed2.clone(),
            run2,
        ])
        .await
        .unwrap();
    let stored = get(&store, t.id()).await;
    assert_eq!(state(stored.clone()), (Failed, 2));
    assert_eq!(stored.error.as_deref(), Some("attempt 2 failed"));
    assert_eq!(stored.finished_at, failed2.finished_at);

    // A retry out of the dead set starts the task over, attempts reset.
    store
        .apply_task_changes(&[moved(&t, Queued, 0)])
        .await
        .unwrap();
    let over = get(&store, t.id()).await;
    assert_eq!(state(over.clone()), (Queued, 0));
    assert_eq!((over.started_at, over.finished_at), (None, None));
    let done = moved(&t, Succeeded, 1);
    store
        .apply_task_changes(&[moved(&t, Running, 1), done.clone(), run1, retry1])
        .await
        .unwrap();
    let stored = get(&store, t.id()).await;
    assert_eq!(state(stored.clone()), (Succeeded, 1));
    assert_eq!(stored.output, done.output);
    // Nothing reopens a task that succeeded or was cancelled, not even `queued(0)`.
    store
        .apply_task_changes(&[moved(&t, Queued, 0), moved(&t, Cancelled, 1)])
        .await
        .unwrap();
    assert_eq!(state(get(&store, t.id()).await), (Succeeded, 1));

    let c = queued("dev", None, now());
    insert(&store, from_ref(&c)).await;
    store
        .apply_task_changes(&[
            moved(&c, Cancelled, 0),
            moved(&c, Queued, 0),
            moved(&c, Running, 1),
        ])
        .await
        .unwrap();
    assert_eq!(state(get(&store, c.id()).await), (Cancelled, 0));
    // A change for a task the store does not hold is skipped.
    let unknown = queued("dev", None, now());
    store
        .apply_task_changes(&[moved(&unknown, Running, 1)])
        .await
        .unwrap();
    assert!(store.task(unknown.id()).await.unwrap().is_none());
}

async fn filters_and_limits(store: Arc<dyn Store>) {
    let base = now() - mins(100);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let pool = if i % 3 == 0 { "b" } else { "a" };
        let mut t = queued(pool, None, base + mins(i));
        if i % 2 == 0 {
            t = finished(
                pool,
                TaskState::Succeeded,
                base + mins(i),
                None,
                base + mins(i),
            );
        }
        tasks.push(t);
    }
    insert(&store, &tasks).await;
    let ids = |filter: TaskFilter| {
        let store = store.clone();
        async move {
            let got = store.tasks(filter).await.unwrap();
            got.iter().map(|t| t.id().clone()).collect::<Vec<_>>()
        }
    };
    let want = |keep: &dyn Fn(&Task) -> bool| -> Vec<TaskId> {
        tasks
            .iter()
            .rev()
            .filter(|t| keep(t))
            .map(|t| t.id().clone())
            .collect()
    };
    let filter = |pool: Option<&str>, status: Option<TaskState>, limit| TaskFilter {
        pool: pool.map(str::to_owned),
        status,
        limit,
    };
    assert_eq!(ids(filter(None, None, 1000)).await, want(&|_| true));
    assert_eq!(
        ids(filter(Some("a"), None, 1000)).await,
        want(&|t| t.spec.pool_name == "a")
    );
    let queued_a = |t: &Task| t.spec.pool_name == "a" && t.status == TaskState::Queued;
    assert_eq!(
        ids(filter(Some("a"), Some(TaskState::Queued), 1000)).await,
        want(&queued_a)
    );
    assert_eq!(
        ids(filter(None, Some(TaskState::Succeeded), 3)).await,
        want(&|t| t.status == TaskState::Succeeded)[..3]
    );
    assert_eq!(ids(filter(None, None, 0)).await, want(&|_| true)[..1]);
    assert_eq!(ids(filter(None, None, 5000)).await.len(), 12);
    assert!(
        ids(filter(Some("none"), None, 10)).await.is_empty(),
        "an unknown pool has no tasks"
    );
}

async fn unfinished_are_queued_and_running_oldest_first(store: Arc<dyn Store>) {
    let base = now() - mins(30);
    let a = queued("a", None, base + mins(3));
    let b = queued("b", None, base + mins(1));
    let c = queued("a", None, base + mins(2));
    let done = finished("a", TaskState::Failed, base, Some(base), base + mins(1));
    insert(&store, &[a.clone(), b.clone(), c.clone(), done]).await;
    store
        .apply_task_changes(&[moved(&c, TaskState::Running, 1)])
        .await
        .unwrap();
    let got = store.unfinished_tasks().await.unwrap();
    let ids: Vec<&TaskId> = got.iter().map(|t| t.id()).collect();
    assert_eq!(ids, vec![b.id(), c.id(), a.id()]);
    assert_eq!((got[1].status, got[1].attempts), (TaskState::Running, 1));
}

async fn trim_by_age(store: Arc<dyn Store>) {
    let day = chrono::Duration::days(1);
    let old = now() - day * 10;
    let gone = [
        finished("a", TaskState::Succeeded, old, Some(old), old + mins(1)),
        finished("b", TaskState::Cancelled, old, None, old),
    ];
    // Created long ago but finished within the retention; never finished at all.
    let recent = finished("a", TaskState::Failed, old, Some(old), now() - day);
    let waiting = queued("a", None, old);
    insert(&store, &gone).await;
    insert(&store, &[recent.clone(), waiting.clone()]).await;

    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(store.trim_tasks(week, 10_000).await.unwrap(), 2);
    for t in &gone {
        assert!(store.task(t.id()).await.unwrap().is_none());
    }
    assert_eq!(get(&store, recent.id()).await, recent);
    assert_eq!(get(&store, waiting.id()).await, waiting);
    assert_eq!(store.trim_tasks(week, 10_000).await.unwrap(), 0);
}

async fn trim_by_count(store: Arc<dyn Store>) {
    // More than one trim batch (2,000) in pool `a`.
    let base = now() - mins(600);
    let at = |i: i64| base + chrono::Duration::milliseconds(i * 10);
    let a: Vec<Task> = (0..2_500)
        .map(|i| finished("a", TaskState::Succeeded, at(i), Some(at(i)), at(i)))
        .collect();
    let b: Vec<Task> = (0..50)
        .map(|i| finished("b", TaskState::Failed, at(i), Some(at(i)), at(i)))
        .collect();
    let waiting: Vec<Task> = (0..3).map(|i| queued("a", None, at(i))).collect();
    insert(&store, &a).await;
    insert(&store, &b).await;
    insert(&store, &waiting).await;

    let year = Duration::from_secs(365 * 24 * 3600);
    assert_eq!(store.trim_tasks(year, 100).await.unwrap(), 2_400);
    let left = |pool: &str| TaskFilter {
        pool: Some(pool.into()),
        limit: 1000,
        ..TaskFilter::default()
    };
    let kept: Vec<Task> = store.tasks(left("a")).await.unwrap();
    assert_eq!(kept.len(), 103, "the newest 100 finished, and the 3 queued");
    assert!(store.task(a[2_399].id()).await.unwrap().is_none());
    assert!(store.task(a[2_400].id()).await.unwrap().is_some());
    assert_eq!(store.tasks(left("b")).await.unwrap().len(), 50);
    assert_eq!(store.trim_tasks(year, 100).await.unwrap(), 0);
    assert_eq!(store.trim_tasks(year, 0).await.unwrap(), 150);
    assert_eq!(store.unfinished_tasks().await.unwrap().len(), 3);
}

async fn stats_on_known_data(store: Arc<dyn Store>) {
    let now = now();
    let mut tasks = Vec::new();
    // 20 tasks finished in the window: waits 1..20 s, run times 0.1..2 s.
    for i in 1..=20i64 {
        let created = now - mins(90) + mins(i);
        let started = created + chrono::Duration::seconds(i);
        let done = started + chrono::Duration::milliseconds(100 * i);
        let state = match i {
            1..=15 => TaskState::Succeeded,
            16..=18 => TaskState::Failed,
            _ => TaskState::Cancelled,
        };
        tasks.push(finished("s", state, created, Some(started), done));
    }
    // Created before the window, cancelled in it before it started: finished, no times.
    tasks.push(finished(
        "s",
        TaskState::Cancelled,
        now - mins(180),
        None,
        now - mins(5),
    ));
    // Entirely before the window; and another pool.
    let old = now - mins(300);
    tasks.push(finished(
        "s",
        TaskState::Failed,
        old,
        Some(old),
        old + mins(1),
    ));
    tasks.push(finished(
        "t",
        TaskState::Succeeded,
        now - mins(10),
        Some(now),
        now,
    ));
    let waiting: Vec<Task> = (0..3).map(|i| queued("s", None, now - mins(i))).collect();
    insert(&store, &tasks).await;
    insert(&store, &waiting).await;
    store
        .apply_task_changes(&[moved(&waiting[0], TaskState::Running, 1)])
        .await
        .unwrap();

    let stats = store
        .task_stats("s", Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    assert_eq!(stats.window_secs, 7200);
    let counts = StateCounts {
        queued: 2,
        running: 1,
        succeeded: 15,
        failed: 3,
        cancelled: 2,
    };
    assert_eq!(stats.counts, counts);
    let p = |p50, p95, p99| Percentiles {
        p50: Some(p50),
        p95: Some(p95),
        p99: Some(p99),
    };
    assert_eq!(stats.queue_wait_ms, p(10_000, 19_000, 20_000));
    assert_eq!(stats.run_time_ms, p(1_000, 1_900, 2_000));
    assert!(
        (stats.tasks_per_minute - 21.0 / 120.0).abs() < 1e-9,
        "{stats:?}"
    );

    let none = store
        .task_stats("idle", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (none.counts, none.run_time_ms, none.tasks_per_minute),
        (StateCounts::default(), Percentiles::default(), 0.0)
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["queue_wait_ms"]["p95"], 19_000);
    assert_eq!(json["counts"]["succeeded"], 15);
}

async fn the_batch_writer_carries_task_changes(store: Arc<dyn Store>) {
    let tasks: Vec<Task> = (0..40).map(|_| queued("w", None, now())).collect();
    insert(&store, &tasks).await;
    let writer = BatchWriter::spawn(store.clone());
    // 121 updates: several batches on SQLite (32 each), one on PostgreSQL.
    for t in &tasks {
        writer.send(Update::Task(moved(t, TaskState::Running, 1)));
        writer.send(Update::Task(moved(t, TaskState::Succeeded, 1)));
        // A report that arrives after the result.
        writer.send(Update::Task(moved(t, TaskState::Running, 1)));
    }
    writer.send(Update::Task(moved(
        &queued("w", None, now()),
        TaskState::Running,
        1,
    )));
    writer.flush().await;
    assert_eq!((writer.written(), writer.dropped()), (121, 0));
    for t in &tasks {
        let stored = get(&store, t.id()).await;
        assert_eq!((stored.status, stored.attempts), (TaskState::Succeeded, 1));
        assert_eq!(stored.output, Some(json!({"attempt": 1})));
    }
    // A change that cannot be written (a malformed time) is dropped alone.
    let (a, b) = (queued("w", None, now()), queued("w", None, now()));
    insert(&store, &[a.clone(), b.clone()]).await;
    let mut bad = moved(&a, TaskState::Running, 1);
    bad.started_at = Some("soon".into());
    writer.send(Update::Task(bad));
    writer.send(Update::Task(moved(&b, TaskState::Running, 1)));
    writer.close().await;
    assert_eq!(get(&store, a.id()).await.status, TaskState::Queued);
    assert_eq!(get(&store, b.id()).await.status, TaskState::Running);
}
