//! What the Lua scripts write, as `redis-cli` shows it: the key names, the hash fields and their
//! text, stamped on Redis's `TIME`. Only Redis has these; what the calls mean is checked on
//! every backend by the `embedded_*` tests.
//!
//! - `register` and `heartbeat`: the `process:<id>` hash, the placement and heartbeat zsets;
//! - `reserve`: the `agent:<id>` hash and the agent sets;
//! - `reap`: every key of the worker goes, its agents' hashes are rewritten or deleted;
//! - `set_agent_status`: the status fields of the agent hash.

mod common;

use agentpool_registry::{ControlPlane, ReapMode, Registry, Reservation, StatusWrite};
use agentpool_types::{AgentState, Placement};
use chrono::Datelike;
use common::{Env, agent, assert_near, parse_time, set, worker_process};
use std::collections::BTreeSet;

/// Redis-only: the `process:<id>` fields as `redis-cli` shows them, the zsets and the `pools`
/// set, stamped on Redis's `TIME`.
#[tokio::test]
async fn register_writes_the_process_hash_placement_and_heartbeat() {
    let env = Env::start().await;
    let p = worker_process("dev", 10);
    let before = env.redis_ms().await;
    env.cp.register(&p).await.unwrap();
    let after = env.redis_ms().await;
    let id = p.process_id.as_str();

    assert_eq!(env.zscore("pool:dev:processes", id).await, Some(10.0));
    let hb = env
        .zscore("processes:heartbeats", id)
        .await
        .expect("heartbeat member") as i64;
    assert!(
        (before..=after).contains(&hb),
        "{hb} not in {before}..={after}"
    );
    assert!(env.members("pools").await.contains("dev"));

    let h = env.hash(&format!("process:{id}")).await;
    let fields: BTreeSet<&str> = h.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "process_id",
        "pool_name",
        "pid",
        "host",
        "max_agents",
        "agent_count",
        "status",
        "started_at",
        "last_heartbeat",
        "rss_bytes",
        "cpu_percent",
    ]
    .into();
    assert!(expected.is_subset(&fields), "missing fields in {h:?}");
    assert_eq!(h["process_id"], id);
    assert_eq!(h["pool_name"], "dev");
    assert_eq!(h["pid"], "4242");
    assert_eq!(h["host"], "test-host");
    assert_eq!(h["max_agents"], "10");
    assert_eq!(h["agent_count"], "0");
    assert_eq!(h["status"], "running", "register marks the worker running");
    assert_eq!(h["started_at"], p.started_at);
    assert_eq!(h["rss_bytes"], "0");
    assert_eq!(h["cpu_percent"], "0.0");
    let stamp = parse_time(&h["last_heartbeat"]);
    assert_eq!(stamp.year(), chrono::Utc::now().year());
    assert_near(&h["last_heartbeat"], after);
}

/// Redis-only: a heartbeat's score and stamp fall on Redis's `TIME`, its figures are stored as
/// text.
#[tokio::test]
async fn heartbeat_stamps_redis_time() {
    let env = Env::start().await;
    let p = env.worker("dev", 10).await;
    let before = env.redis_ms().await;
    env.cp.heartbeat(&p, 123_456, 12.5).await.unwrap();
    let after = env.redis_ms().await;

    let score = env
        .zscore("processes:heartbeats", p.as_str())
        .await
        .unwrap() as i64;
    assert!(
        (before..=after).contains(&score),
        "{score} not in {before}..={after}"
    );
    let h = env.hash(&format!("process:{p}")).await;
    assert_eq!(h["rss_bytes"], "123456");
    assert_eq!(h["cpu_percent"], "12.5");
    assert_near(&h["last_heartbeat"], after);
    let stamped = parse_time(&h["last_heartbeat"]).timestamp_millis();
    assert!((before..=after).contains(&stamped), "{stamped}");
}

/// Redis-only: the `agent:<id>` fields and the set keys users read in `redis-cli`.
#[tokio::test]
async fn reserve_writes_the_agent_hash() {
    let env = Env::start().await;
    let w = env.worker("dev", 10).await;
    let r = agent("dev");
    assert_eq!(
        env.reg
            .reserve(Reservation::new(&r, Placement::Pack))
            .await
            .unwrap(),
        Some(w.clone())
    );
    let now = env.redis_ms().await;

    let h = env.hash(&format!("agent:{}", r.agent_id)).await;
    assert_eq!(h["agent_id"], r.agent_id.as_str());
    assert_eq!(h["pool_name"], "dev");
    assert_eq!(h["role_type"], "echo");
    assert_eq!(h["name"], "tester");
    assert_eq!(h["process_id"], w.as_str());
    assert_eq!(h["status"], "pending");
    assert_eq!(h["restarts"], "0");
    assert_eq!(h["metadata"], r#"{"k":1}"#);
    assert_near(&h["registered_at"], now);
    assert_near(&h["updated_at"], now);

    assert_eq!(
        env.members(&format!("process:{w}:agents")).await,
        set(&[&r.agent_id])
    );
    assert_eq!(env.members("pool:dev:agents").await, set(&[&r.agent_id]));
    env.assert_slots("dev", &w, true).await;
}

/// Redis-only: the keys a reap leaves behind, including `process:<id>:agents`, which no call
/// reads once its worker is gone, and the orphans' fields as `redis-cli` shows them.
#[tokio::test]
async fn reap_orphan_removes_the_worker_and_orphans_its_agents() {
    let env = Env::start().await;
    let dead = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;
    let other = env.worker("other", 10).await;

    env.reg.reap(&dead, ReapMode::Orphan).await.unwrap();
    let now = env.redis_ms().await;
    assert!(!env.exists(&format!("process:{dead}")).await);
    assert!(!env.exists(&format!("process:{dead}:agents")).await);
    assert_eq!(
        env.zscore("processes:heartbeats", dead.as_str()).await,
        None
    );
    for id in [&a, &b] {
        let h = env.hash(&format!("agent:{id}")).await;
        assert_eq!(h["status"], "orphaned", "{id}");
        assert_eq!(h["process_id"], "", "{id}");
        assert_near(&h["updated_at"], now);
    }
    assert_eq!(env.members("pool:dev:agents").await, set(&[&a, &b]));
    assert!(
        env.zscore("processes:heartbeats", other.as_str())
            .await
            .is_some()
    );
}

/// Redis-only: an orderly stop deletes the worker's keys and its agents' hashes, and no other.
#[tokio::test]
async fn reap_delete_removes_the_agents_too() {
    let env = Env::start().await;
    let keep = env.worker("dev", 1).await;
    let (kept, _) = env.place("dev").await;
    let gone = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let (b, _) = env.place("dev").await;

    env.reg.reap(&gone, ReapMode::Delete).await.unwrap();
    for id in [&a, &b] {
        assert!(!env.exists(&format!("agent:{id}")).await, "{id}");
    }
    assert!(env.exists(&format!("agent:{kept}")).await);
    assert_eq!(env.members("pool:dev:agents").await, set(&[&kept]));
    assert!(!env.exists(&format!("process:{gone}")).await);
    assert!(!env.exists(&format!("process:{gone}:agents")).await);
    assert_eq!(
        env.zscore("processes:heartbeats", gone.as_str()).await,
        None
    );
    env.assert_slots("dev", &keep, true).await;
}

/// Redis-only: the status fields a worker's write leaves in `agent:<id>`, on Redis's clock.
#[tokio::test]
async fn set_agent_status_writes_the_status_fields() {
    let env = Env::start().await;
    let owner = env.worker("dev", 10).await;
    let (a, _) = env.place("dev").await;
    let akey = format!("agent:{a}");

    let idle = StatusWrite::new(&a, AgentState::Idle);
    assert!(
        env.cp
            .set_agent_status(&owner, idle)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(env.field(&akey, "status").await.unwrap(), "idle");
    assert_near(
        &env.field(&akey, "updated_at").await.unwrap(),
        env.redis_ms().await,
    );
    assert_eq!(env.field(&akey, "error").await, None);

    let failed = StatusWrite {
        error: Some("boom"),
        ..StatusWrite::new(&a, AgentState::Failed)
    };
    assert!(
        env.cp
            .set_agent_status(&owner, failed)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(env.field(&akey, "status").await.unwrap(), "failed");
    assert_eq!(env.field(&akey, "error").await.unwrap(), "boom");
}
