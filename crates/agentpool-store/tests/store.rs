//! Every test body runs twice: on PostgreSQL through a real PgBouncer, and on SQLite.
//! The outage tests are PostgreSQL-only: an embedded SQLite file has no "server down" state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentpool_store::{
    AgentEventKind, BatchWriter, DesiredState, Store, StoreError, Update, WriterConfig,
};
use agentpool_types::{AgentId, AgentSpec, AgentState, PoolSpec, ProcessId, RestartPolicy};
use chrono::Utc;
use serde_json::json;

mod common;
use common::pg_setup;

both!(
    desired_states_of_the_given_agents,
    pools_and_agents_round_trip,
    desired_state_of_unknown_agent_is_false,
    apply_is_all_or_nothing,
    events_come_back_in_order,
    cleanup_counts_what_it_removes,
    writer_flushes_and_close_drains,
    writer_skips_an_update_the_database_rejects,
);

fn new_agent(pool: &str, name: &str) -> AgentSpec {
    AgentSpec {
        agent_id: AgentId::new(),
        pool_name: pool.into(),
        role_type: "developer".into(),
        name: name.into(),
        metadata: json!({"model": "small", "n": 3}),
        restart: None,
        autoscaled: false,
        secret_config: None,
    }
}

async fn inserted(store: &Arc<dyn Store>, name: &str) -> AgentId {
    let agent = new_agent("dev", name);
    store.insert_agent(&agent).await.unwrap();
    agent.agent_id
}

async fn pools_and_agents_round_trip(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    let mut dev = PoolSpec::new("dev", "developer");
    store
        .upsert_pools(&[dev.clone(), PoolSpec::new("qa", "tester")])
        .await
        .unwrap();
    dev.max_processes = 7;
    store.upsert_pools(&[dev.clone()]).await.unwrap();
    let pools = store.pools().await.unwrap();
    assert_eq!(pools, vec![dev, PoolSpec::new("qa", "tester")]);

    let mut agent = new_agent("dev", "dev-1");
    agent.restart = Some(RestartPolicy::Temporary);
    store.insert_agent(&agent).await.unwrap();
    let row = store
        .agent(&agent.agent_id)
        .await
        .unwrap()
        .expect("agent row");
    // The whole spec comes back, the agent's own restart policy included.
    assert_eq!(row.spec, agent);
    assert_eq!(row.desired_state, DesiredState::Running);
    assert_eq!(row.status, AgentState::Pending);
    assert_eq!(
        (row.process_id, row.restarts, row.last_error),
        (None, 0, None)
    );
    assert_eq!(row.created_at, row.updated_at);

    let dup = store.insert_agent(&agent).await.unwrap_err();
    assert!(matches!(dup, StoreError::Database(_)), "{dup:?}");
    assert_eq!(store.agent(&AgentId::new()).await.unwrap(), None);
}

async fn desired_state_of_unknown_agent_is_false(store: Arc<dyn Store>) {
    assert!(
        !store
            .set_desired_state(&AgentId::new(), DesiredState::Stopped)
            .await
            .unwrap()
    );
    let a = inserted(&store, "a").await;
    let b = inserted(&store, "b").await;
    let c = inserted(&store, "c").await;
    assert!(
        store
            .set_desired_state(&b, DesiredState::Stopped)
            .await
            .unwrap()
    );
    let ids = |rows: Vec<agentpool_store::AgentRow>| -> Vec<AgentId> {
        rows.into_iter().map(|r| r.spec.agent_id).collect()
    };
    let running = store
        .agents_with_desired(DesiredState::Running)
        .await
        .unwrap();
    assert_eq!(ids(running), vec![a, c.clone()]);
    let stopped = store
        .agents_with_desired(DesiredState::Stopped)
        .await
        .unwrap();
    assert_eq!(ids(stopped), vec![b.clone()]);
    assert_eq!(
        store.agent(&b).await.unwrap().unwrap().desired_state,
        DesiredState::Stopped
    );
}

async fn apply_is_all_or_nothing(store: Arc<dyn Store>) {
    let a = inserted(&store, "a").await;
    let worker = ProcessId::new();
    let bad = vec![
        Update::worker_started(&worker, "dev", 4242),
        Update::status(&a, AgentState::Idle, Some(&worker)),
        Update::event(&a, AgentEventKind::Started, "on worker"),
        // No such agent: violates the events -> agents foreign key.
        Update::event(&AgentId::new(), AgentEventKind::Started, ""),
    ];
    let err = store.apply(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    let row = store.agent(&a).await.unwrap().unwrap();
    assert_eq!((row.status, row.process_id), (AgentState::Pending, None));
    assert_eq!(store.events(&a).await.unwrap().len(), 1, "only `spawned`");
    assert_eq!(store.worker(&worker).await.unwrap(), None);

    let good = &bad[..3];
    store.apply(good).await.unwrap();
    let row = store.agent(&a).await.unwrap().unwrap();
    assert_eq!(row.status, AgentState::Idle);
    assert_eq!(row.process_id.as_ref(), Some(&worker));
    assert!(row.updated_at > row.created_at);
    assert_eq!(store.events(&a).await.unwrap().len(), 2);
    let w = store.worker(&worker).await.unwrap().unwrap();
    assert_eq!(
        (w.pool_name.as_str(), w.pid, w.exited_at),
        ("dev", 4242, None)
    );
    assert_eq!(store.running_workers().await.unwrap(), vec![w]);

    // restarts / last_error are kept when not given, set when given.
    let failed = Update::Status {
        agent_id: a.clone(),
        status: AgentState::Failed,
        process_id: None,
        restarts: Some(3),
        last_error: Some("boom".into()),
        at: Utc::now(),
    };
    store
        .apply(&[
            failed,
            Update::status(&a, AgentState::Restarting, None),
            Update::worker_exited(&worker, "signal 9"),
            Update::status(&AgentId::new(), AgentState::Idle, None), // unknown: skipped
        ])
        .await
        .unwrap();
    let row = store.agent(&a).await.unwrap().unwrap();
    assert_eq!(row.status, AgentState::Restarting);
    assert_eq!((row.restarts, row.last_error.as_deref()), (3, Some("boom")));
    let w = store.worker(&worker).await.unwrap().unwrap();
    assert_eq!(w.exit_status.as_deref(), Some("signal 9"));
    assert!(w.exited_at.is_some());
    assert!(store.running_workers().await.unwrap().is_empty());
}

async fn events_come_back_in_order(store: Arc<dyn Store>) {
    let a = inserted(&store, "a").await;
    let b = inserted(&store, "b").await;
    store
        .apply(&[
            Update::event(&a, AgentEventKind::Orphaned, "worker died"),
            Update::event(&b, AgentEventKind::Started, ""),
        ])
        .await
        .unwrap();
    store
        .apply(&[
            Update::event(&a, AgentEventKind::Rescheduled, "to w2"),
            Update::event(&a, AgentEventKind::Terminated, "by request"),
        ])
        .await
        .unwrap();
    let events = store.events(&a).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    use AgentEventKind::*;
    assert_eq!(kinds, vec![Spawned, Orphaned, Rescheduled, Terminated]);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(events[0].detail, "pool dev");
    assert_eq!(events[2].detail, "to w2");
    assert!(events.iter().all(|e| e.agent_id == a));
    assert_eq!(store.events(&b).await.unwrap().len(), 2);
    assert!(store.events(&AgentId::new()).await.unwrap().is_empty());
}

async fn cleanup_counts_what_it_removes(store: Arc<dyn Store>) {
    let old = Utc::now() - chrono::Duration::hours(2);
    let keep = inserted(&store, "running").await;
    let gone = inserted(&store, "stopped-long-ago").await;
    let recent = inserted(&store, "stopped-recently").await;
    store
        .set_desired_state(&gone, DesiredState::Stopped)
        .await
        .unwrap();
    store
        .set_desired_state(&recent, DesiredState::Stopped)
        .await
        .unwrap();
    let old_event = |id: &AgentId| Update::Event {
        agent_id: id.clone(),
        kind: AgentEventKind::Failed,
        detail: String::new(),
        at: old,
    };
    let (w_old, w_new, w_live) = (ProcessId::new(), ProcessId::new(), ProcessId::new());
    store
        .apply(&[
            old_event(&keep),
            old_event(&keep),
            old_event(&recent),
            Update::Status {
                agent_id: gone.clone(),
                status: AgentState::Stopped,
                process_id: None,
                restarts: None,
                last_error: None,
                at: old,
            },
            Update::worker_started(&w_old, "dev", 1),
            Update::WorkerExited {
                process_id: w_old.clone(),
                exit_status: "exit 0".into(),
                at: old,
            },
            Update::worker_started(&w_new, "dev", 2),
            Update::worker_exited(&w_new, "exit 0"),
            Update::worker_started(&w_live, "dev", 3),
        ])
        .await
        .unwrap();

    let report = store.cleanup(Duration::from_secs(3600)).await.unwrap();
    assert_eq!((report.events, report.agents, report.workers), (3, 1, 1));
    assert_eq!(store.agent(&gone).await.unwrap(), None);
    assert!(store.events(&gone).await.unwrap().is_empty(), "cascaded");
    assert_eq!(
        store.events(&keep).await.unwrap().len(),
        1,
        "recent `spawned` stays"
    );
    assert!(store.agent(&recent).await.unwrap().is_some());
    assert_eq!(store.worker(&w_old).await.unwrap(), None);
    assert!(store.worker(&w_new).await.unwrap().is_some());
    assert_eq!(store.running_workers().await.unwrap().len(), 1);

    let again = store.cleanup(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(again, Default::default());
}

async fn writer_flushes_and_close_drains(store: Arc<dyn Store>) {
    let a = inserted(&store, "a").await;
    let writer = BatchWriter::spawn(store.clone());
    let clone = writer.clone();
    // More than one batch (500), sent from two handles.
    for i in 0..700 {
        let w = if i % 2 == 0 { &writer } else { &clone };
        w.send(Update::event(&a, AgentEventKind::Restarted, format!("{i}")));
    }
    writer.flush().await;
    let events = store.events(&a).await.unwrap();
    assert_eq!(events.len(), 701);
    let details: Vec<String> = events[1..].iter().map(|e| e.detail.clone()).collect();
    let expected: Vec<String> = (0..700).map(|i| i.to_string()).collect();
    assert_eq!(details, expected, "written in the order sent");
    assert_eq!(writer.written(), 700);

    for _ in 0..50 {
        clone.send(Update::event(&a, AgentEventKind::Started, ""));
    }
    clone.send(Update::status(&a, AgentState::Idle, None));
    writer.close().await;
    assert_eq!(store.events(&a).await.unwrap().len(), 751);
    assert_eq!(
        store.agent(&a).await.unwrap().unwrap().status,
        AgentState::Idle
    );
    assert_eq!((clone.written(), clone.dropped()), (751, 0));
    clone.send(Update::event(&a, AgentEventKind::Started, "after close"));
    clone.flush().await; // returns at once: the task is gone
    assert_eq!(store.events(&a).await.unwrap().len(), 751);
}

async fn writer_skips_an_update_the_database_rejects(store: Arc<dyn Store>) {
    let a = inserted(&store, "a").await;
    let writer = BatchWriter::spawn(store.clone());
    writer.send(Update::event(&a, AgentEventKind::Started, "1"));
    writer.send(Update::event(
        &AgentId::new(),
        AgentEventKind::Started,
        "poison",
    ));
    writer.send(Update::event(&a, AgentEventKind::Stopped, "2"));
    writer.flush().await;
    assert_eq!((writer.written(), writer.dropped()), (2, 1));
    let kinds: Vec<_> = store
        .events(&a)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    use AgentEventKind::*;
    assert_eq!(kinds, vec![Spawned, Started, Stopped]);
    writer.close().await;
}

/// Asserts `call` fails with `Unavailable` within 5 s.
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = agentpool_store::Result<T>>,
) {
    let start = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung with the database down"));
    let took = start.elapsed();
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{what}: {outcome:?}"
    );
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

#[tokio::test]
async fn postgres_outage_is_unavailable_and_recovers_without_rebuilding() {
    let mut pg = pg_setup().await;
    let store: Arc<dyn Store> = Arc::new(pg.store.clone());
    let a = inserted(&store, "a").await;

    pg.bouncer.stop();
    assert_unavailable("ping", store.ping()).await;
    assert_unavailable("agent", store.agent(&a)).await;
    assert_unavailable(
        "apply",
        store.apply(&[Update::event(&a, AgentEventKind::Stopped, "")]),
    )
    .await;
    assert_unavailable("insert_agent", store.insert_agent(&new_agent("dev", "b"))).await;

    pg.bouncer.start().await;
    store.ping().await.expect("ping after pgbouncer is back");
    assert!(store.agent(&a).await.unwrap().is_some());
    store
        .apply(&[Update::event(&a, AgentEventKind::Started, "")])
        .await
        .unwrap();
    assert_eq!(store.events(&a).await.unwrap().len(), 2);
}

#[tokio::test]
async fn writer_keeps_updates_through_an_outage_dropping_the_oldest_over_the_limit() {
    let mut pg = pg_setup().await;
    let store: Arc<dyn Store> = Arc::new(pg.store.clone());
    let a = inserted(&store, "a").await;
    let cfg = WriterConfig {
        max_pending: 5,
        max_backoff: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::with_config(store.clone(), cfg);

    pg.bouncer.stop();
    for i in 0..8 {
        writer.send(Update::event(&a, AgentEventKind::Restarted, format!("{i}")));
    }
    // The writer is failing now; the updates wait in memory.
    let flushed = tokio::time::timeout(Duration::from_millis(300), writer.flush()).await;
    assert!(
        flushed.is_err(),
        "flush cannot finish while the database is down"
    );

    pg.bouncer.start().await;
    tokio::time::timeout(Duration::from_secs(20), writer.close())
        .await
        .expect("close drains once the database is back");
    let details: Vec<String> = store.events(&a).await.unwrap()[1..]
        .iter()
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        details,
        ["3", "4", "5", "6", "7"],
        "the 3 oldest were dropped"
    );
}

/// A database that refuses connections (an operator took it away) is an outage too, not an
/// internal error, through PgBouncer as well as directly.
#[tokio::test]
async fn a_database_refusing_connections_is_unavailable() {
    let pg = pg_setup().await;
    let store: Arc<dyn Store> = Arc::new(pg.store.clone());
    let a = inserted(&store, "a").await;
    pg._pg.refuse_connections(true).await;
    assert_unavailable("ping", store.ping()).await;
    assert_unavailable("agent", store.agent(&a)).await;
    assert_unavailable("insert_agent", store.insert_agent(&new_agent("dev", "b"))).await;
    pg._pg.refuse_connections(false).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while store.ping().await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the store works again once the database takes connections");
    assert!(store.agent(&a).await.unwrap().is_some());
}

async fn desired_states_of_the_given_agents(store: Arc<dyn Store>) {
    let ids: Vec<AgentId> = futures_ids(&store, 3).await;
    store
        .set_desired_state(&ids[1], DesiredState::Stopped)
        .await
        .unwrap();
    let mut asked = ids.clone();
    asked.push(AgentId::new());
    let mut got = store.desired_states(&asked).await.unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let want = vec![
        (ids[0].clone(), DesiredState::Running),
        (ids[1].clone(), DesiredState::Stopped),
        (ids[2].clone(), DesiredState::Running),
    ];
    assert_eq!(got, want, "unknown ids are left out");
    assert!(store.desired_states(&[]).await.unwrap().is_empty());
}

async fn futures_ids(store: &Arc<dyn Store>, n: usize) -> Vec<AgentId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(inserted(store, &format!("d-{i}")).await);
    }
    ids.sort();
    ids
}
