//! The master's settings, as plain data. The binary reads the file and the environment and
//! fills this in; nothing in this crate reads the environment.

use agentpool_registry::redis::RedisTarget;
use agentpool_types::{PoolSpec, SecretKey, TaskRules};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_WORKER_START_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_AGENT_START_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONCURRENT_STARTS: usize = 4;
/// A client must send a request's headers within this, also on an idle keep-alive connection
/// waiting for its next request: idle and slow-header connections are closed.
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this.
pub const DEFAULT_HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A read (GET) must be answered within this. Writes are bounded by their own timeouts
/// (agent start, placement, `?wait=` up to 300 s) and are never cut off halfway, which could
/// leave half-written state; event streams are open-ended.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog until one closes.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 1024;
/// Longest query string, in bytes; a longer one gets a 414.
pub const DEFAULT_HTTP_MAX_QUERY_BYTES: usize = 4096;
/// Deepest nesting of arrays and objects in a JSON body; deeper gets a 400.
pub const DEFAULT_HTTP_MAX_JSON_DEPTH: usize = 32;
/// Finished tasks are kept this long in the store (and `agentpool cleanup` trims older ones).
pub const DEFAULT_TASK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many finished tasks are kept per pool.
pub const DEFAULT_TASK_RETENTION_COUNT: u64 = 10_000;
/// A finished task stays in the registry this long for fast reads; the store keeps it.
pub const DEFAULT_FINISHED_TASK_TTL: Duration = Duration::from_secs(600);
/// How often the store's desired state is reconciled against the registry.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// The SQLite file used when no database URL is configured, inside the data directory.
pub const SQLITE_FILE: &str = "agentpool.sqlite";

/// The file name of the embedded registry's socket, inside the data directory.
pub const SOCKET_FILE: &str = "agentpool.sock";
/// The key agents' `secret_config` is sealed under, in the data directory (mode 600).
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Where the live registry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Redis at `redis_url`; workers outlive the master.
    Redis,
    /// In the master's memory; workers reach it over a Unix socket and stop with the master.
    Embedded,
}

agentpool_types::text_enum!(Backend {
    Redis => "redis",
    Embedded => "embedded",
});

impl std::fmt::Display for StoreConfig {
    /// Where the store is, with passwords masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use agentpool_types::mask_url;
        match self {
            StoreConfig::Sqlite(path) => write!(f, "sqlite {}", path.display()),
            StoreConfig::Postgres {
                direct,
                runtime: None,
            } => write!(f, "postgres {}", mask_url(direct)),
            StoreConfig::Postgres {
                direct,
                runtime: Some(r),
            } => write!(
                f,
                "postgres {} (migrations), via pgbouncer {}",
                mask_url(direct),
                mask_url(r)
            ),
        }
    }
}

/// Where desired state and history are kept.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A SQLite file (the default: `<data_dir>/agentpool.sqlite`).
    Sqlite(PathBuf),
    /// Postgres: migrations on `direct`, runtime traffic on `runtime` (PgBouncer) when set.
    Postgres {
        direct: String,
        runtime: Option<String>,
    },
}

/// Everything the master needs to run.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    pub backend: Backend,
    pub redis_url: String,
    /// CA certificate (PEM) that a `rediss://` Redis is verified with, by the master and its
    /// workers; the system's roots when unset.
    pub redis_ca_file: Option<PathBuf>,
    /// The Redis URL workers use (their own ACL user, say); `redis_url` when unset.
    pub worker_redis_url: Option<String>,
    /// Put in front of every Redis key, so several clusters can share one Redis.
    pub key_prefix: String,
    /// Worker logs go to `<data_dir>/logs`.
    pub data_dir: PathBuf,
    /// The binary to start workers from, resolved once at startup: `current_exe` stops
    /// resolving when the binary is replaced on disk.
    pub worker_exe: PathBuf,
    /// Workers log JSON lines (`--log-format json`), like the master.
    pub worker_log_json: bool,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// A worker that has not registered by then is killed and the spawn fails with a 503.
    pub worker_start_timeout: Duration,
    /// A spawn waits this long for its agent to run before answering 503.
    pub agent_start_timeout: Duration,
    /// Worker and agent stop budget, after which the process group is SIGKILLed.
    pub shutdown_grace: Duration,
    /// Worker processes being started at once, across pools.
    pub max_concurrent_starts: usize,
    pub pools: Vec<PoolSpec>,
    pub store: StoreConfig,
    pub reconcile_interval: Duration,
    /// Stop the workers when the master stops. Off by default in Redis mode: workers outlive
    /// the master and the next master adopts them.
    pub stop_workers_on_exit: bool,
    pub http_header_timeout: Duration,
    pub http_body_timeout: Duration,
    pub http_limits: HttpLimits,
    pub task_retention: Duration,
    pub task_retention_count: u64,
    pub finished_task_ttl: Duration,
    /// The API tokens; none means an open API (the binary allows that on loopback only,
    /// unless told `--insecure`).
    pub tokens: crate::auth::Tokens,
    /// The key agents' `secret_config` is sealed under; when `None`, [`crate::run`] reads it
    /// from `<data_dir>/secret.key`, creating it on the first start.
    pub secret_key: Option<SecretKey>,
}

impl MasterConfig {
    /// A pool's rules for its tasks: its handler's attempt limit, retries, circuit breaker. A
    /// lease runs out a heartbeat timeout after its attempt's own limit: by then a live worker
    /// has reported, and a dead one been reaped.
    pub fn task_rules(&self, pool: &PoolSpec) -> TaskRules {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        TaskRules {
            default_timeout_ms: ms(pool.handler.timeout()),
            lease_grace_ms: ms(self.heartbeat_timeout),
            retry_backoff_ms: ms(agentpool_types::task::RETRY_BACKOFF),
            retry_backoff_max_ms: ms(agentpool_types::task::RETRY_BACKOFF_MAX),
            circuit_failures: pool.circuit.failures,
            circuit_cooldown_ms: pool.circuit.cooldown_secs.saturating_mul(1000),
            final_ttl_ms: ms(self.finished_task_ttl),
        }
    }

    /// The embedded registry's socket: absolute, since workers may run from anywhere.
    pub fn socket_path(&self) -> PathBuf {
        let dir = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        dir.join(SOCKET_FILE)
    }

    /// The master's Redis: its URL and CA file.
    pub fn redis_target(&self) -> Result<RedisTarget, agentpool_registry::RegistryError> {
        RedisTarget::new(&self.redis_url, self.redis_ca_file.as_deref())
    }

    /// What workers are told to connect to.
    pub fn control_url(&self) -> String {
        match self.backend {
            Backend::Redis => self
                .worker_redis_url
                .clone()
                .unwrap_or_else(|| self.redis_url.clone()),
            Backend::Embedded => agentpool_registry::embedded::socket_url(&self.socket_path()),
        }
    }

    /// A config with defaults for everything but where Redis is and which pools exist.
    pub fn new(redis_url: &str, worker_exe: PathBuf, pools: Vec<PoolSpec>) -> Self {
        Self {
            backend: Backend::Redis,
            redis_url: redis_url.to_owned(),
            redis_ca_file: None,
            worker_redis_url: None,
            key_prefix: String::new(),
            data_dir: PathBuf::from("data"),
            worker_exe,
            worker_log_json: false,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            worker_start_timeout: DEFAULT_WORKER_START_TIMEOUT,
            agent_start_timeout: DEFAULT_AGENT_START_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_concurrent_starts: DEFAULT_MAX_CONCURRENT_STARTS,
            pools,
            store: StoreConfig::Sqlite(PathBuf::from("data").join(SQLITE_FILE)),
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            stop_workers_on_exit: false,
            http_header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            http_body_timeout: DEFAULT_HTTP_BODY_TIMEOUT,
            http_limits: HttpLimits::default(),
            task_retention: DEFAULT_TASK_RETENTION,
            task_retention_count: DEFAULT_TASK_RETENTION_COUNT,
            finished_task_ttl: DEFAULT_FINISHED_TASK_TTL,
            tokens: crate::auth::Tokens::default(),
            secret_key: None,
        }
    }
}

/// What one client may ask of the HTTP server: against slow, flooding or hostile clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_query_bytes: usize,
    pub max_json_depth: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_HTTP_REQUEST_TIMEOUT,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            max_query_bytes: DEFAULT_HTTP_MAX_QUERY_BYTES,
            max_json_depth: DEFAULT_HTTP_MAX_JSON_DEPTH,
        }
    }
}
