//! Fixtures of the Redis-only registry tests: a private real Redis with both sides of the
//! registry connected to it, fake workers, reservations, and raw views of the keys so the tests
//! check what the Lua scripts actually wrote. The every-backend tests use `embedded_common`.

#![allow(dead_code)]

use agentpool_registry::redis::{RedisControlPlane, RedisRegistry};
use agentpool_registry::{ControlPlane, Registry, Reservation};
use agentpool_testkit::TestRedis;

mod fixtures;
use agentpool_types::{AgentId, Placement, ProcessId};
use chrono::{DateTime, Utc};
#[allow(unused_imports)]
pub use fixtures::{agent, worker_process};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// How long any condition a test waits for may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A private Redis, the master's and a worker's view of it, and a raw connection.
pub struct Env {
    pub redis: TestRedis,
    pub reg: RedisRegistry,
    pub cp: RedisControlPlane,
    pub conn: MultiplexedConnection,
}

impl Env {
    pub async fn start() -> Env {
        let redis = TestRedis::start().await;
        let url = redis.url();
        let reg = RedisRegistry::connect(&url, "").await.expect("registry");
        let cp = RedisControlPlane::connect(&url, "")
            .await
            .expect("control plane");
        let conn = redis.conn().await;
        Env {
            redis,
            reg,
            cp,
            conn,
        }
    }

    /// Registers a fake worker of `pool` with room for `max_agents`.
    pub async fn worker(&self, pool: &str, max_agents: u32) -> ProcessId {
        let p = worker_process(pool, max_agents);
        self.cp.register(&p).await.expect("register");
        p.process_id
    }

    /// Reserves a slot for a fresh agent.
    pub async fn reserve(&self, pool: &str, placement: Placement) -> (AgentId, Option<ProcessId>) {
        let a = agent(pool);
        let picked = self.reg.reserve(Reservation::new(&a, placement)).await;
        (a.agent_id, picked.expect("reserve"))
    }

    /// Reserves a slot for a fresh agent and insists that one was found.
    pub async fn place(&self, pool: &str) -> (AgentId, ProcessId) {
        let (a, p) = self.reserve(pool, Placement::Pack).await;
        (a, p.expect("a free slot"))
    }

    pub async fn hash(&self, key: &str) -> HashMap<String, String> {
        self.conn.clone().hgetall(key).await.expect("HGETALL")
    }

    pub async fn field(&self, key: &str, field: &str) -> Option<String> {
        self.conn.clone().hget(key, field).await.expect("HGET")
    }

    pub async fn members(&self, key: &str) -> BTreeSet<String> {
        self.conn.clone().smembers(key).await.expect("SMEMBERS")
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.conn.clone().exists(key).await.expect("EXISTS")
    }

    pub async fn zscore(&self, key: &str, member: &str) -> Option<f64> {
        self.conn.clone().zscore(key, member).await.expect("ZSCORE")
    }

    /// A worker's free-slot score in its pool's placement zset; `None` when out of placement.
    pub async fn score(&self, pool: &str, p: &ProcessId) -> Option<i64> {
        let key = format!("pool:{pool}:processes");
        self.zscore(&key, p.as_str()).await.map(|s| s as i64)
    }

    /// Redis's clock in milliseconds, the clock the scripts stamp with.
    pub async fn redis_ms(&self) -> i64 {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .expect("TIME");
        secs * 1000 + micros / 1000
    }

    /// The invariant of a worker's slots: `agent_count` equals the size of its agent set, and
    /// while in placement its score is `max_agents - SCARD`.
    pub async fn assert_slots(&self, pool: &str, p: &ProcessId, in_placement: bool) {
        let h = self.hash(&format!("process:{p}")).await;
        let max: i64 = h["max_agents"].parse().expect("max_agents");
        let card = self.members(&format!("process:{p}:agents")).await.len() as i64;
        assert_eq!(h["agent_count"], card.to_string(), "agent_count of {p}");
        let expected = in_placement.then_some(max - card);
        assert_eq!(self.score(pool, p).await, expected, "score of {p}");
    }
}

/// Parses a registry timestamp, which must be RFC 3339.
pub fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Asserts a registry timestamp is within a few seconds of Redis's clock (`ms`).
pub fn assert_near(stamp: &str, ms: i64) {
    let t = parse_time(stamp).timestamp_millis();
    assert!(
        (t - ms).abs() < 5_000,
        "{stamp} is far from Redis time {ms} ms"
    );
}

pub fn set(ids: &[&AgentId]) -> BTreeSet<String> {
    ids.iter().map(|a| a.to_string()).collect()
}
