//! Shared setup of the integration tests: a private redis-server, the real master binary, and
//! readers of the registry as `redis-cli` would show it.

#![allow(dead_code)]

use agentpool_testkit::{MasterOptions, TestMaster, TestRedis, wait_until};
use redis::AsyncCommands;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Generous: a debug build on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub redis: TestRedis,
    pub master: TestMaster,
}

/// A config with one pool `p` of `capacity` agents per worker and `max_processes` workers.
pub fn config(capacity: u32, max_processes: u32, extra: &str) -> String {
    pool_config(capacity, max_processes, extra, "")
}

/// Like [`config`], with `pool_extra` lines in the pool's table. Keys in `extra` replace the
/// test defaults.
pub fn pool_config(capacity: u32, max_processes: u32, extra: &str, pool_extra: &str) -> String {
    let defaults = [
        ("heartbeat_interval_ms", "250"),
        ("heartbeat_timeout_ms", "5000"),
        ("shutdown_grace_ms", "5000"),
    ];
    let mut top: Vec<String> = defaults
        .iter()
        .filter(|(k, _)| !extra.contains(k))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    top.push(extra.to_owned());
    format!(
        r#"{}

[[pools]]
name = "p"
role = "tester"
max_agents_per_process = {capacity}
max_processes = {max_processes}
{pool_extra}
"#,
        top.join("\n")
    )
}

impl Cluster {
    pub async fn start(config_toml: String) -> Cluster {
        Self::start_with(config_toml, &[]).await
    }

    /// Starts with extra `serve` arguments.
    pub async fn start_with(config_toml: String, args: &[&str]) -> Cluster {
        let redis = TestRedis::start().await;
        let master = TestMaster::start(MasterOptions {
            bin: env!("CARGO_BIN_EXE_agentpool").into(),
            redis_url: redis.url(),
            config_toml,
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        })
        .await;
        Cluster { redis, master }
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.redis.conn().await
    }

    /// `ZRANGE pool:<pool>:processes 0 -1 WITHSCORES` as (process id, free slots).
    pub async fn scores(&self, pool: &str) -> Vec<(String, i64)> {
        let mut c = self.conn().await;
        c.zrange_withscores(format!("pool:{pool}:processes"), 0, -1)
            .await
            .expect("zrange")
    }

    /// `SMEMBERS process:<id>:agents`.
    pub async fn assigned(&self, process: &str) -> Vec<String> {
        let mut c = self.conn().await;
        c.smembers(format!("process:{process}:agents"))
            .await
            .expect("smembers")
    }

    /// Every key with its type and content: equal snapshots mean an unchanged registry.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        let mut c = self.conn().await;
        let keys: Vec<String> = c.keys("*").await.expect("keys");
        let mut out = BTreeMap::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("type");
            let content = match kind.as_str() {
                "hash" => {
                    let mut h: BTreeMap<String, String> = c.hgetall(&k).await.expect("hgetall");
                    // Heartbeats rewrite these every beat; they are not state a request changes.
                    for volatile in ["last_heartbeat", "rss_bytes", "cpu_percent"] {
                        h.remove(volatile);
                    }
                    format!("{h:?}")
                }
                "set" => {
                    let mut s: Vec<String> = c.smembers(&k).await.expect("smembers");
                    s.sort();
                    format!("{s:?}")
                }
                "zset" if k == "processes:heartbeats" => {
                    let m: Vec<String> = c.zrange(&k, 0, -1).await.expect("zrange");
                    format!("{m:?}")
                }
                "zset" => {
                    let m: Vec<(String, i64)> =
                        c.zrange_withscores(&k, 0, -1).await.expect("zrange");
                    format!("{m:?}")
                }
                other => other.to_owned(),
            };
            out.insert(k, format!("{kind}:{content}"));
        }
        out
    }

    /// `/pools` row of one pool.
    pub async fn pool_row(&self, pool: &str) -> Value {
        let (status, rows) = self.master.get("/api/v1/pools").await;
        assert_eq!(status, 200, "{rows}");
        rows.as_array()
            .expect("array")
            .iter()
            .find(|r| r["pool_name"] == pool)
            .cloned()
            .expect("pool row")
    }

    /// Checks `/pools` against the registry itself, key by key.
    pub async fn assert_pools_match_registry(&self, pool: &str, capacity: i64) {
        let row = self.pool_row(pool).await;
        let scores = self.scores(pool).await;
        let mut c = self.conn().await;
        let agents: i64 = c.scard(format!("pool:{pool}:agents")).await.expect("scard");
        let free: i64 = scores.iter().map(|(_, s)| s).sum();
        let total = capacity * scores.len() as i64;
        assert_eq!(row["process_count"], scores.len() as i64, "{row}");
        assert_eq!(row["total_capacity"], total, "{row}");
        assert_eq!(row["available_capacity"], free, "{row}");
        assert_eq!(row["used_capacity"], total - free, "{row}");
        assert_eq!(row["agent_count"], agents, "{row}");
        for (process, score) in scores {
            let assigned = self.assigned(&process).await.len() as i64;
            assert_eq!(
                score,
                capacity - assigned,
                "score of {process} is not its free slots"
            );
        }
    }

    /// Waits until every agent of the pool is `idle` (running).
    pub async fn wait_all_running(&self, pool: &str, count: usize) {
        wait_until(
            &format!("{count} agents of {pool} running"),
            WAIT,
            || async {
                let (_, agents) = self
                    .master
                    .get(&format!("/api/v1/agents?pool={pool}"))
                    .await;
                let list = agents.as_array().cloned().unwrap_or_default();
                list.len() == count && list.iter().all(|a| a["status"] == "idle")
            },
        )
        .await;
    }
}

/// POSTs a spawn of one agent into `pool`.
pub async fn spawn(master: &TestMaster, pool: &str) -> (u16, Value) {
    master
        .post("/api/v1/agents", serde_json::json!({ "pool": pool }))
        .await
}

/// Fails if any agent is assigned to two workers; returns agent -> worker.
pub async fn assignment(c: &Cluster, pool: &str) -> std::collections::HashMap<String, String> {
    let mut owner = std::collections::HashMap::new();
    let mut r = c.conn().await;
    let procs: Vec<String> = r
        .zrange("processes:heartbeats", 0, -1)
        .await
        .expect("zrange");
    for p in procs {
        for a in c.assigned(&p).await {
            if let Some(other) = owner.insert(a.clone(), p.clone()) {
                panic!("agent {a} is assigned to both {other} and {p} (pool {pool})");
            }
        }
    }
    owner
}

/// The worker logs, concatenated.
pub fn worker_logs(c: &Cluster) -> String {
    std::fs::read_dir(c.master.data_dir().join("logs"))
        .map(|d| {
            d.flatten()
                .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}
