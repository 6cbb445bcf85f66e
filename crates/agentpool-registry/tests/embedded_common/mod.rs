//! One test body, several setups: the fixtures of the `embedded_*` tests. Each body sees the
//! registry only through the two traits (plus a worker's free slots, the one number the traits
//! do not show), so the same body runs against
//!
//! - `redis`: a private real Redis, with both Redis sides connected to it;
//! - `embedded`: the embedded registry, the worker side called in process;
//! - `socket`: the embedded registry, the worker side over a real Unix socket.
//!
//! [`both!`] turns one body into one test per setup.

#![allow(dead_code)]

use agentpool_registry::embedded::{EmbeddedRegistry, EmbeddedServer, SocketControlPlane};
use agentpool_registry::redis::{RedisControlPlane, RedisRegistry};
use agentpool_registry::{ControlPlane, Heartbeat, Registry, Reservation, StatusWrite};
use agentpool_testkit::{Heartbeats, TempDir, TestRedis, redis_snapshot};

#[path = "../common/fixtures.rs"]
mod fixtures;
use agentpool_types::{AgentId, AgentSpec, AgentState, Placement, ProcessId};
#[allow(unused_imports)]
pub use fixtures::{agent, agent_with_id, worker_process};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long any condition a test waits for may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Where the registry lives, and what a test needs to look past the traits.
pub enum Backend {
    Redis(TestRedis, MultiplexedConnection),
    Embedded(EmbeddedRegistry),
    Socket(EmbeddedRegistry, EmbeddedServer, TempDir),
}

/// The master's and a worker's view of one registry.
pub struct Env {
    pub reg: Arc<dyn Registry>,
    pub cp: Arc<dyn ControlPlane>,
    pub backend: Backend,
}

impl Env {
    pub async fn redis() -> Env {
        let redis = TestRedis::start().await;
        let url = redis.url();
        let reg = RedisRegistry::connect(&url, "").await.expect("registry");
        let cp = RedisControlPlane::connect(&url, "").await.expect("cp");
        let conn = redis.conn().await;
        Env {
            reg: Arc::new(reg),
            cp: Arc::new(cp),
            backend: Backend::Redis(redis, conn),
        }
    }

    pub async fn embedded() -> Env {
        let reg = EmbeddedRegistry::new();
        Env {
            reg: Arc::new(reg.clone()),
            cp: Arc::new(reg.clone()),
            backend: Backend::Embedded(reg),
        }
    }

    pub async fn socket() -> Env {
        let reg = EmbeddedRegistry::new();
        let dir = TempDir::new("embedded");
        let server = EmbeddedServer::bind(dir.path().join("registry.sock"), reg.clone())
            .await
            .expect("bind");
        let cp = SocketControlPlane::connect(&server.url())
            .await
            .expect("connect");
        Env {
            reg: Arc::new(reg.clone()),
            cp: Arc::new(cp),
            backend: Backend::Socket(reg, server, dir),
        }
    }

    /// A worker's free slots while in its pool's placement: the zset score in Redis.
    pub async fn score(&self, pool: &str, p: &ProcessId) -> Option<i64> {
        match &self.backend {
            Backend::Redis(_, conn) => {
                let key = format!("pool:{pool}:processes");
                let s: Option<f64> = conn.clone().zscore(key, p.as_str()).await.unwrap();
                s.map(|s| s as i64)
            }
            Backend::Embedded(reg) | Backend::Socket(reg, ..) => reg.state().free_slots(pool, p),
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

    /// Places a fresh agent the autoscaler started, and insists that a slot was found.
    pub async fn place_autoscaled(&self, pool: &str) -> (AgentId, ProcessId) {
        let a = AgentSpec {
            autoscaled: true,
            ..agent(pool)
        };
        let picked = self
            .reg
            .reserve(Reservation::new(&a, Placement::Pack))
            .await;
        (a.agent_id, picked.expect("reserve").expect("a free slot"))
    }

    /// Reserves a slot for a fresh agent and insists that one was found.
    pub async fn place(&self, pool: &str) -> (AgentId, ProcessId) {
        let (a, p) = self.reserve(pool, Placement::Pack).await;
        (a, p.expect("a free slot"))
    }

    /// A worker's status write for its agent, with no epoch: the agent's epoch when written,
    /// `None` when fenced.
    pub async fn status(&self, p: &ProcessId, a: &AgentId, s: AgentState) -> Option<u64> {
        self.cp
            .set_agent_status(p, StatusWrite::new(a, s))
            .await
            .unwrap()
    }

    /// The agents a worker is told to run, by its heartbeat: its agent set, less those on
    /// their way out. Stamps the heartbeat, as any heartbeat does.
    pub async fn assigned(&self, p: &ProcessId) -> BTreeSet<String> {
        match self.cp.heartbeat(p, 0, 0.0).await.unwrap() {
            Heartbeat::Alive { assigned, .. } => id_set(&assigned),
            other => panic!("{p} answered {other:?}"),
        }
    }

    /// How many workers the staleness check watches: those with a heartbeat on record.
    pub async fn watched(&self) -> u64 {
        self.reg
            .stale(Duration::from_secs(3600))
            .await
            .unwrap()
            .total
    }

    /// The ids of a pool's agents.
    pub async fn pool_agents(&self, pool: &str) -> BTreeSet<String> {
        let agents = self.reg.agents(&[pool.to_owned()]).await.unwrap();
        agents.iter().map(|a| a.id().to_string()).collect()
    }

    /// The slot invariant: while in placement, a worker's score is `max_agents - agent_count`;
    /// out of placement it has none. In Redis, where the scripts keep `agent_count` by hand, it
    /// must also be the size of the worker's agent set. Returns the worker's agent count.
    pub async fn assert_slots(&self, pool: &str, p: &ProcessId, in_placement: bool) -> u32 {
        let w = self.reg.process(p).await.unwrap().expect("registered");
        if let Backend::Redis(_, conn) = &self.backend {
            let key = format!("process:{p}:agents");
            let card: u32 = conn.clone().scard(key).await.unwrap();
            assert_eq!(w.agent_count, card, "agent_count of {p}");
        }
        let expected = in_placement.then(|| i64::from(w.max_agents) - i64::from(w.agent_count));
        assert_eq!(self.score(pool, p).await, expected, "score of {p}");
        w.agent_count
    }

    /// Everything a test can see of the registry, to prove a call changed nothing. Redis: every
    /// key, byte for byte, including any a call should not have written. Embedded: every worker
    /// record with its free slots, and every agent of `pools`.
    pub async fn snapshot(&self, pools: &[&str]) -> BTreeMap<String, String> {
        if let Backend::Redis(_, conn) = &self.backend {
            return redis_snapshot(conn, Heartbeats::Keep).await;
        }
        let mut out = BTreeMap::new();
        for w in self.reg.processes().await.unwrap() {
            let free = self.score(&w.pool_name, &w.process_id).await;
            out.insert(
                format!("process:{}", w.process_id),
                format!("{w:?} {free:?}"),
            );
        }
        let pools: Vec<String> = pools.iter().map(|p| (*p).to_owned()).collect();
        for a in self.reg.agents(&pools).await.unwrap() {
            out.insert(format!("agent:{}", a.id()), format!("{a:?}"));
        }
        out
    }
}

pub fn set(ids: &[&AgentId]) -> BTreeSet<String> {
    ids.iter().map(|a| a.to_string()).collect()
}

pub fn id_set(ids: &[AgentId]) -> BTreeSet<String> {
    ids.iter().map(|a| a.to_string()).collect()
}

/// One test per setup from one body: `both!(name, body)` where `body` is an
/// `async fn(Env)`. Tests that race (`flavor = "multi_thread"`) pass `multi` first.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:path) => {
        $crate::both!(@ $name, $body, tokio::test);
    };
    (multi $name:ident, $body:path) => {
        $crate::both!(@ $name, $body, tokio::test(flavor = "multi_thread", worker_threads = 4));
    };
    (@ $name:ident, $body:path, $($attr:tt)*) => {
        mod $name {
            use super::*;
            #[$($attr)*]
            async fn redis() {
                $body($crate::common::Env::redis().await).await;
            }
            #[$($attr)*]
            async fn embedded() {
                $body($crate::common::Env::embedded().await).await;
            }
            #[$($attr)*]
            async fn socket() {
                $body($crate::common::Env::socket().await).await;
            }
        }
    };
}
