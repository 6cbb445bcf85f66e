//! Shared setup of the integration tests: the real master binary on either backend (a private
//! redis-server, or the embedded registry), and readers of the registry: as `redis-cli` would
//! show it in Redis mode, through the API in embedded mode.

#![allow(dead_code)]

pub mod tasks;

use agentpool_testkit::snapshot::HEARTBEAT_FIELDS;
use agentpool_testkit::{
    Heartbeats, MasterOptions, TempDir, TestMaster, TestRedis, redis_snapshot, wait_until,
};
use redis::AsyncCommands;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Generous: a debug build on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// Which registry a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Embedded,
}

/// One test body, two setups: `both_backends!(body: redis_test, embedded_test)`.
#[macro_export]
macro_rules! both_backends {
    ($body:ident: $redis:ident, $embedded:ident) => {
        #[tokio::test]
        async fn $redis() {
            $body(common::Backend::Redis).await
        }
        #[tokio::test]
        async fn $embedded() {
            $body(common::Backend::Embedded).await
        }
    };
}

pub struct Cluster {
    pub backend: Backend,
    redis: Option<TestRedis>,
    pub master: TestMaster,
    data: TempDir,
    /// How the master was started, to start another on the same registry and store.
    options: MasterOptions,
    /// Masters replaced by `restart_master`, kept so their drop (which kills every worker of
    /// the registry) waits for the end of the test.
    pub retired: Vec<TestMaster>,
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
        Self::start_on(Backend::Redis, config_toml, &[]).await
    }

    /// Starts with extra `serve` arguments.
    pub async fn start_with(config_toml: String, args: &[&str]) -> Cluster {
        Self::start_on(Backend::Redis, config_toml, args).await
    }

    pub async fn start_on(backend: Backend, config_toml: String, args: &[&str]) -> Cluster {
        Self::start_full(backend, config_toml, args, &[]).await
    }

    /// Starts with extra environment for the master.
    pub async fn start_on_env(
        backend: Backend,
        config_toml: String,
        extra_env: &[(&str, &str)],
    ) -> Cluster {
        Self::start_full(backend, config_toml, &[], extra_env).await
    }

    async fn start_full(
        backend: Backend,
        config_toml: String,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Cluster {
        let data = TempDir::new("agentpool-cluster");
        let mut env = vec![(
            "AGENTPOOL_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        )];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let (redis, url) = match backend {
            Backend::Redis => {
                let r = TestRedis::start().await;
                let url = r.url();
                (Some(r), url)
            }
            Backend::Embedded => {
                env.push(("REDIS_URL".into(), String::new()));
                (
                    None,
                    format!("unix://{}", data.path().join("agentpool.sock").display()),
                )
            }
        };
        let options = MasterOptions {
            bin: env!("CARGO_BIN_EXE_agentpool").into(),
            // Also what workers are found by: their registry URL.
            redis_url: url,
            config_toml,
            env,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let master = TestMaster::start(options.clone()).await;
        Cluster {
            backend,
            redis,
            master,
            data,
            options,
            retired: Vec::new(),
        }
    }

    /// SIGKILLs the master and starts a new one on the same registry and store; the old one
    /// goes to `retired`, where its log can still be read.
    pub async fn restart_master(&mut self) {
        self.master.kill();
        let next = TestMaster::start(self.options.clone()).await;
        let old = std::mem::replace(&mut self.master, next);
        self.retired.push(old);
    }

    /// The config the master runs with.
    pub fn config_toml(&self) -> &str {
        &self.options.config_toml
    }

    /// The SQLite store's file (the default store of these tests).
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.data.path().join("agentpool.sqlite")
    }

    /// The master's data directory: worker logs, the SQLite store, the embedded socket.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.data.path().to_path_buf()
    }

    /// The private Redis (Redis mode only).
    pub fn redis(&self) -> &TestRedis {
        self.redis.as_ref().expect("a Redis-mode test")
    }

    pub fn redis_mut(&mut self) -> &mut TestRedis {
        self.redis.as_mut().expect("a Redis-mode test")
    }

    /// What workers are told to connect to; the testkit finds them by it.
    pub fn control_url(&self) -> String {
        self.master.redis_url().to_owned()
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.redis().conn().await
    }

    /// Workers in placement as (process id, free slots), from the API in embedded mode.
    async fn api_scores(&self, pool: &str) -> Vec<(String, i64)> {
        let (_, p) = self.master.get(&format!("/api/v1/pools/{pool}")).await;
        let mut out: Vec<(String, i64)> = p["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["status"] == "running")
            .map(|w| {
                let free =
                    w["max_agents"].as_i64().unwrap_or(0) - w["agent_count"].as_i64().unwrap_or(0);
                (w["process_id"].as_str().unwrap_or("").to_owned(), free)
            })
            .collect();
        out.sort_by_key(|(id, free)| (*free, id.clone()));
        out
    }

    /// `ZRANGE pool:<pool>:processes 0 -1 WITHSCORES` as (process id, free slots).
    pub async fn scores(&self, pool: &str) -> Vec<(String, i64)> {
        if self.backend == Backend::Embedded {
            return self.api_scores(pool).await;
        }
        let mut c = self.conn().await;
        c.zrange_withscores(format!("pool:{pool}:processes"), 0, -1)
            .await
            .expect("zrange")
    }

    /// `SMEMBERS process:<id>:agents`.
    pub async fn assigned(&self, process: &str) -> Vec<String> {
        if self.backend == Backend::Embedded {
            let (_, list) = self.master.get("/api/v1/agents").await;
            return list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["process_id"] == process)
                .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
                .collect();
        }
        let mut c = self.conn().await;
        c.smembers(format!("process:{process}:agents"))
            .await
            .expect("smembers")
    }

    /// Every key with its type and content, heartbeats left out: equal snapshots mean an
    /// unchanged registry.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        if self.backend == Backend::Embedded {
            return self.api_snapshot().await;
        }
        redis_snapshot(&self.conn().await, Heartbeats::Ignore).await
    }

    /// The registry as the API shows it: every agent and worker, minus heartbeat fields.
    async fn api_snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let (_, agents) = self.master.get("/api/v1/agents").await;
        for a in agents.as_array().into_iter().flatten() {
            out.insert(format!("agent:{}", a["agent_id"]), a.to_string());
        }
        let (_, procs) = self.master.get("/api/v1/processes").await;
        for mut w in procs.as_array().cloned().unwrap_or_default() {
            if let Some(o) = w.as_object_mut() {
                for volatile in HEARTBEAT_FIELDS {
                    o.remove(volatile);
                }
            }
            out.insert(format!("process:{}", w["process_id"]), w.to_string());
        }
        out
    }

    /// Every registered worker's id.
    pub async fn registered(&self) -> Vec<String> {
        match self.backend {
            Backend::Redis => {
                let mut r = self.conn().await;
                r.zrange("processes:heartbeats", 0, -1)
                    .await
                    .expect("zrange")
            }
            Backend::Embedded => {
                let (_, list) = self.master.get("/api/v1/processes").await;
                list.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["process_id"].as_str().unwrap_or("").to_owned())
                    .collect()
            }
        }
    }

    /// Whether a worker is still in the registry (`process:<id>` in Redis mode).
    pub async fn is_registered(&self, process: &str) -> bool {
        match self.backend {
            Backend::Redis => {
                let mut r = self.conn().await;
                r.exists(format!("process:{process}"))
                    .await
                    .expect("exists")
            }
            Backend::Embedded => self.registered().await.iter().any(|p| p == process),
        }
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
        let agents: i64 = match self.backend {
            Backend::Redis => {
                let mut c = self.conn().await;
                c.scard(format!("pool:{pool}:agents")).await.expect("scard")
            }
            Backend::Embedded => {
                let (_, list) = self
                    .master
                    .get(&format!("/api/v1/agents?pool={pool}"))
                    .await;
                list.as_array().map_or(0, |l| l.len() as i64)
            }
        };
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
    for p in c.registered().await {
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
    std::fs::read_dir(c.data.path().join("logs"))
        .map(|d| {
            d.flatten()
                .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}
