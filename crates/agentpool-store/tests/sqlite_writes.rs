//! How the SQLite store writes: request-path writes and history batches share one connection
//! without failing each other, and the WAL is checkpointed by the store's own task, never by
//! a commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentpool_store::connect::SQLITE_WAL_AUTOCHECKPOINT;
use agentpool_store::{
    AgentEventKind, AgentStore, BatchWriter, DesiredState, SqliteStore, Store, Update,
    WriterConfig, connect_sqlite,
};
use agentpool_testkit::{TempDir, wait_until};
use agentpool_types::{AgentId, AgentSpec};
use serde_json::json;

/// Generous for a debug build on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(20);

fn new_agent(name: String) -> AgentSpec {
    AgentSpec {
        agent_id: AgentId::new(),
        pool_name: "dev".into(),
        role_type: "developer".into(),
        name,
        metadata: json!({"model": "small"}),
        restart: None,
        autoscaled: false,
        secret_config: None,
    }
}

async fn open(dir: &TempDir) -> (SqliteStore, PathBuf) {
    let path = dir.path().join("agentpool.sqlite");
    let store = connect_sqlite(&path).await.expect("open sqlite");
    (store, path)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// What the master does per spawn and terminate: desired state written by the caller, while
/// the history writer commits batches of events as fast as it can.
#[tokio::test]
async fn desired_state_writes_never_fail_while_the_history_writer_writes() {
    let dir = TempDir::new("sqlite-writes");
    let (store, _) = open(&dir).await;
    let store: Arc<dyn Store> = Arc::new(store);
    let first = new_agent("first".into());
    store.insert_agent(&first).await.unwrap();
    let cfg = WriterConfig {
        interval: Duration::from_millis(1),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::with_config(store.clone(), cfg);
    let history = {
        let writer = writer.clone();
        let id = first.agent_id.clone();
        tokio::spawn(async move {
            for i in 0..4_000 {
                writer.send(Update::event(
                    &id,
                    AgentEventKind::Restarted,
                    format!("{i}"),
                ));
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let callers = (0..8).map(|task| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let agent = new_agent(format!("a-{task}-{i}"));
                store.insert_agent(&agent).await?;
                store
                    .set_desired_state(&agent.agent_id, DesiredState::Stopped)
                    .await?;
            }
            Ok::<_, agentpool_store::StoreError>(())
        })
    });
    for outcome in join_all(callers).await {
        outcome.expect("a desired-state write failed next to the history writer");
    }
    history.await.unwrap();
    writer.flush().await;

    assert_eq!(writer.dropped(), 0, "history updates were dropped");
    assert_eq!(writer.written(), 4_000);
    let events = store.events(&first.agent_id).await.unwrap();
    assert_eq!(events.len(), 4_001, "spawned plus every restart");
    let stopped = store
        .agents_with_desired(DesiredState::Stopped)
        .await
        .unwrap();
    assert_eq!(stopped.len(), 8 * 40);
}

async fn join_all<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.expect("task panicked"));
    }
    out
}

async fn pragma(store: &SqliteStore, name: &str) -> u64 {
    let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"));
    u64::try_from(value).unwrap()
}

#[tokio::test]
async fn the_store_task_checkpoints_the_wal_before_any_commit_does() {
    let dir = TempDir::new("sqlite-checkpoint");
    let (store, path) = open(&dir).await;
    let page = pragma(&store, "page_size").await;
    assert_eq!(
        pragma(&store, "wal_autocheckpoint").await,
        u64::from(SQLITE_WAL_AUTOCHECKPOINT)
    );

    for i in 0..200 {
        store
            .insert_agent(&new_agent(format!("a-{i}")))
            .await
            .unwrap();
    }
    let wal = file_len(&wal_path(&path));
    assert!(
        wal < u64::from(SQLITE_WAL_AUTOCHECKPOINT) * page,
        "{wal} bytes of WAL: the commits may have checkpointed themselves"
    );
    // The database as the store sees it, WAL included; checkpointed, the file holds all of it.
    let full = pragma(&store, "page_count").await * page;
    wait_until("the WAL checkpointed into the database file", WAIT, || {
        let len = file_len(&path);
        async move { len >= full }
    })
    .await;
}

/// Under writes without a pause the task's checkpoints never find the WAL unread, and SQLite
/// would append to it forever; the commits' own checkpoint past the limit starts it over.
#[tokio::test]
async fn the_wal_stays_bounded_under_writes_without_a_pause() {
    let dir = TempDir::new("sqlite-wal-bound");
    let (store, path) = open(&dir).await;
    let page = pragma(&store, "page_size").await;
    let limit = u64::from(SQLITE_WAL_AUTOCHECKPOINT) * page;
    let store: Arc<dyn Store> = Arc::new(store);
    let agent = new_agent("a".into());
    store.insert_agent(&agent).await.unwrap();
    let cfg = WriterConfig {
        interval: Duration::from_millis(1),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::with_config(store.clone(), cfg);

    // Each event fills most of a page of its own: three limits' worth of pages in all.
    let detail = "x".repeat(usize::try_from(page).unwrap() * 3 / 4);
    let events = 3 * SQLITE_WAL_AUTOCHECKPOINT;
    let mut largest = 0;
    for i in 0..events {
        writer.send(Update::event(
            &agent.agent_id,
            AgentEventKind::Restarted,
            detail.clone(),
        ));
        if i % 500 == 0 {
            writer.flush().await;
            largest = largest.max(file_len(&wal_path(&path)));
        }
    }
    writer.flush().await;
    largest = largest.max(file_len(&wal_path(&path)));
    assert_eq!(writer.written(), u64::from(events));
    assert!(
        largest < 2 * limit,
        "the WAL grew to {largest} bytes, past twice the {limit} bytes it checkpoints at"
    );
}

fn wal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

#[tokio::test]
async fn dropping_the_store_closes_the_checkpoint_connection_too() {
    let dir = TempDir::new("sqlite-close");
    let (store, path) = open(&dir).await;
    store.insert_agent(&new_agent("a".into())).await.unwrap();
    let db = path.canonicalize().expect("the database file");
    assert!(
        open_files(&db) >= 2,
        "the store and its checkpointer have the file open"
    );

    drop(store);
    // Counted in this process's open files rather than read from SQLite's WAL removal, which
    // two connections closing at the same moment can both skip.
    wait_until("the store's connections to close", WAIT, || {
        let open = open_files(&db);
        async move { open == 0 }
    })
    .await;
}

/// How many descriptors of this process point at `file`.
fn open_files(file: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target == file)
                .count()
        })
        .unwrap_or(0)
}
