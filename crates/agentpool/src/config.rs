//! The one place that reads configuration: the TOML file, then the environment over it.

use agentpool_master::MasterConfig;
use agentpool_master::auth::{self, Scope, TokenEntry, Tokens, TokensFile};
use agentpool_master::config::{Backend, SQLITE_FILE, StoreConfig};
use agentpool_types::PoolSpec;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/agentpool.toml";
/// Used when there is no file at `DEFAULT_CONFIG_PATH`, so `serve` works from any directory.
const BUILTIN_CONFIG: &str = include_str!("../../../config/agentpool.toml");
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_DATA_DIR: &str = "data";

pub const ENV_LISTEN: &str = "AGENTPOOL_LISTEN";
pub const ENV_REDIS_URL: &str = "REDIS_URL";
pub const ENV_DATA_DIR: &str = "AGENTPOOL_DATA_DIR";
/// Direct Postgres URL: migrations, and runtime traffic when no PgBouncer is given.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// PgBouncer URL for runtime traffic.
pub const ENV_PGBOUNCER_URL: &str = "PGBOUNCER_URL";
/// One admin token for the API, given in the environment instead of a tokens file.
pub const ENV_API_TOKEN: &str = "AGENTPOOL_API_TOKEN";
/// `human` (the default) or `json`, for master and workers.
pub const ENV_LOG_FORMAT: &str = "AGENTPOOL_LOG_FORMAT";

/// The log format: the flag, else `AGENTPOOL_LOG_FORMAT`, else human-readable text.
pub fn log_format(
    flag: Option<crate::telemetry::LogFormat>,
) -> Result<crate::telemetry::LogFormat> {
    if let Some(f) = flag {
        return Ok(f);
    }
    match std::env::var(ENV_LOG_FORMAT).ok().filter(|v| !v.is_empty()) {
        None => Ok(crate::telemetry::LogFormat::default()),
        Some(text) => crate::telemetry::LogFormat::parse(&text)
            .with_context(|| format!("{ENV_LOG_FORMAT}={text:?}: expected human or json")),
    }
}

/// CA certificate (PEM) for a `rediss://` Redis; overrides `[redis] ca_file`.
pub const ENV_REDIS_CA_FILE: &str = "AGENTPOOL_REDIS_CA_FILE";
/// The Redis URL workers get (their own ACL user); overrides `[redis] worker_url`.
pub const ENV_WORKER_REDIS_URL: &str = "AGENTPOOL_WORKER_REDIS_URL";
/// The tokens file used when `auth.tokens_file` is not set, inside the data directory.
pub const DEFAULT_TOKENS_FILE: &str = "tokens.toml";

/// The config file. Every key is optional; the defaults are the named constants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    redis_url: Option<String>,
    key_prefix: Option<String>,
    data_dir: Option<PathBuf>,
    heartbeat_interval_ms: Option<u64>,
    heartbeat_timeout_ms: Option<u64>,
    worker_start_timeout_ms: Option<u64>,
    agent_start_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    max_concurrent_starts: Option<usize>,
    reconcile_interval_ms: Option<u64>,
    http_header_timeout_ms: Option<u64>,
    http_body_timeout_ms: Option<u64>,
    http_request_timeout_ms: Option<u64>,
    http_max_connections: Option<usize>,
    http_max_query_bytes: Option<usize>,
    http_max_json_depth: Option<usize>,
    task_retention_days: Option<u64>,
    task_retention_count: Option<u64>,
    finished_task_ttl_secs: Option<u64>,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    redis: RedisConfig,
    #[serde(default)]
    pools: Vec<PoolSpec>,
}

/// `[auth]`: where the API tokens are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    /// Hashes of the API tokens [default: `<data_dir>/tokens.toml`, used if it exists].
    tokens_file: Option<PathBuf>,
}

/// `[redis]`: how to trust Redis, and the workers' own connection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisConfig {
    /// CA certificate (PEM) a `rediss://` Redis is verified with [default: the system roots].
    ca_file: Option<PathBuf>,
    /// The URL workers connect with, e.g. as a less privileged ACL user [default: `redis_url`].
    worker_url: Option<String>,
}

/// What `serve` runs with.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub master: MasterConfig,
    /// Why this backend: for the startup log and `agentpool info`.
    pub backend_reason: String,
    /// Where the config came from.
    pub origin: String,
    /// Where `agentpool token` keeps the API tokens' hashes.
    pub tokens_file: PathBuf,
}

/// `--backend`: where the live registry is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// Redis when a Redis URL is configured (REDIS_URL or `redis_url`), embedded otherwise.
    #[default]
    Auto,
    Redis,
    Embedded,
}

/// The flags that shape the configuration.
#[derive(Debug, Default)]
pub struct Flags<'a> {
    pub config: Option<&'a Path>,
    pub listen: Option<&'a str>,
    pub stop_workers: bool,
    pub backend: BackendChoice,
}

/// Reads the config file (or the default one), then applies the environment and the flags.
pub fn load(flags: &Flags<'_>) -> Result<ServeConfig> {
    let (path, listen_flag, stop_workers) = (flags.config, flags.listen, flags.stop_workers);
    let (text, origin) = read_file(path)?;
    let file: FileConfig =
        toml::from_str(&text).with_context(|| format!("invalid config file {origin}"))?;
    let explicit_tokens = file.auth.tokens_file.is_some();
    let tokens_file = tokens_path(&file);
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());

    let listen_text = listen_flag
        .map(str::to_owned)
        .or_else(|| env(ENV_LISTEN))
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!(
            "listen address {listen_text:?} (--listen, {ENV_LISTEN} or `listen`) is not host:port"
        )
    })?;
    let configured_redis = env(ENV_REDIS_URL)
        .map(|u| (u, ENV_REDIS_URL.to_owned()))
        .or(file
            .redis_url
            .map(|u| (u, format!("`redis_url` in {origin}"))));
    let (backend, backend_reason) = match (flags.backend, &configured_redis) {
        (BackendChoice::Redis, _) => (Backend::Redis, "--backend redis".to_owned()),
        (BackendChoice::Embedded, _) => (Backend::Embedded, "--backend embedded".to_owned()),
        (BackendChoice::Auto, Some((_, from))) => (
            Backend::Redis,
            format!("auto: a Redis URL is configured ({from})"),
        ),
        (BackendChoice::Auto, None) => (
            Backend::Embedded,
            format!(
                "auto: no Redis URL configured ({ENV_REDIS_URL} unset, no `redis_url` in {origin})"
            ),
        ),
    };
    let redis_url = configured_redis
        .map(|(u, _)| u)
        .unwrap_or_else(|| DEFAULT_REDIS_URL.into());
    let exe =
        std::env::current_exe().context("cannot resolve this binary's path to start workers")?;

    if file.pools.is_empty() {
        bail!("config {origin} defines no [[pools]]");
    }
    for pool in &file.pools {
        pool.validate()
            .with_context(|| format!("config {origin}"))?;
    }
    let mut names: Vec<&str> = file.pools.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("config {origin}: pool {:?} is defined twice", w[0]);
    }

    let mut m = MasterConfig::new(&redis_url, exe, file.pools);
    m.backend = backend;
    m.key_prefix = file.key_prefix.unwrap_or_default();
    // Absolute, since workers may not share the master's working directory.
    m.redis_ca_file = env(ENV_REDIS_CA_FILE)
        .map(PathBuf::from)
        .or(file.redis.ca_file)
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    m.worker_redis_url = env(ENV_WORKER_REDIS_URL).or(file.redis.worker_url);
    m.data_dir = data_dir(file.data_dir.clone());
    let ms = Duration::from_millis;
    m.heartbeat_interval = file.heartbeat_interval_ms.map_or(m.heartbeat_interval, ms);
    m.heartbeat_timeout = file.heartbeat_timeout_ms.map_or(m.heartbeat_timeout, ms);
    m.worker_start_timeout = file
        .worker_start_timeout_ms
        .map_or(m.worker_start_timeout, ms);
    m.agent_start_timeout = file
        .agent_start_timeout_ms
        .map_or(m.agent_start_timeout, ms);
    m.shutdown_grace = file.shutdown_grace_ms.map_or(m.shutdown_grace, ms);
    m.max_concurrent_starts = file
        .max_concurrent_starts
        .unwrap_or(m.max_concurrent_starts);
    m.reconcile_interval = file.reconcile_interval_ms.map_or(m.reconcile_interval, ms);
    m.http_header_timeout = file
        .http_header_timeout_ms
        .map_or(m.http_header_timeout, ms);
    m.http_body_timeout = file.http_body_timeout_ms.map_or(m.http_body_timeout, ms);
    let limits = &mut m.http_limits;
    limits.request_timeout = file
        .http_request_timeout_ms
        .map_or(limits.request_timeout, ms);
    limits.max_connections = file.http_max_connections.unwrap_or(limits.max_connections);
    limits.max_query_bytes = file.http_max_query_bytes.unwrap_or(limits.max_query_bytes);
    limits.max_json_depth = file.http_max_json_depth.unwrap_or(limits.max_json_depth);
    let days = |d: u64| Duration::from_secs(d.saturating_mul(24 * 3600));
    m.task_retention = file.task_retention_days.map_or(m.task_retention, days);
    m.task_retention_count = file.task_retention_count.unwrap_or(m.task_retention_count);
    m.finished_task_ttl = file
        .finished_task_ttl_secs
        .map_or(m.finished_task_ttl, Duration::from_secs);
    m.stop_workers_on_exit = stop_workers;
    m.store = match (env(ENV_DATABASE_URL), env(ENV_PGBOUNCER_URL)) {
        (Some(direct), runtime) => StoreConfig::Postgres { direct, runtime },
        (None, Some(_)) => bail!(
            "{ENV_PGBOUNCER_URL} is set but {ENV_DATABASE_URL} is not: migrations need the direct Postgres URL"
        ),
        (None, None) => StoreConfig::Sqlite(m.data_dir.join(SQLITE_FILE)),
    };
    if m.heartbeat_interval.is_zero() || m.heartbeat_timeout <= m.heartbeat_interval {
        bail!(
            "config {origin}: heartbeat_interval_ms must be at least 1 and heartbeat_timeout_ms \
             larger than it (got {} and {})",
            m.heartbeat_interval.as_millis(),
            m.heartbeat_timeout.as_millis()
        );
    }
    m.tokens = load_tokens(&tokens_file, explicit_tokens, env(ENV_API_TOKEN))?;
    Ok(ServeConfig {
        listen,
        master: m,
        backend_reason,
        origin,
        tokens_file,
    })
}

/// `AGENTPOOL_DATA_DIR`, else `data_dir` of the file, else the default.
fn data_dir(from_file: Option<PathBuf>) -> PathBuf {
    std::env::var(ENV_DATA_DIR)
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or(from_file)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into())
}

/// `auth.tokens_file`, else `tokens.toml` in the data directory.
fn tokens_path(file: &FileConfig) -> PathBuf {
    let default = || data_dir(file.data_dir.clone()).join(DEFAULT_TOKENS_FILE);
    file.auth.tokens_file.clone().unwrap_or_else(default)
}

/// Where the tokens file of the config at `path` (or the default config) is, whether it
/// exists yet or not: for `agentpool token`.
pub fn tokens_file(path: Option<&Path>) -> Result<PathBuf> {
    let (text, origin) = read_file(path)?;
    let file: FileConfig =
        toml::from_str(&text).with_context(|| format!("invalid config file {origin}"))?;
    Ok(tokens_path(&file))
}

/// The API tokens: the file's (which must exist when named in the config), and the one in
/// `AGENTPOOL_API_TOKEN` as `admin`.
fn load_tokens(path: &Path, explicit: bool, env_token: Option<String>) -> Result<Tokens> {
    let mut file = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<TokensFile>(&text)
            .with_context(|| format!("invalid tokens file {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => TokensFile::default(),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read tokens file {}", path.display()));
        }
    };
    if let Some(token) = env_token {
        file.tokens.push(TokenEntry {
            name: ENV_API_TOKEN.into(),
            scope: Scope::Admin,
            sha256: auth::hash(&token),
            created_at: None,
        });
    }
    Tokens::new(&file.tokens).with_context(|| format!("tokens file {}", path.display()))
}

fn read_file(path: Option<&Path>) -> Result<(String, String)> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            Ok((text, p.display().to_string()))
        }
        None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
            Ok(text) => Ok((text, DEFAULT_CONFIG_PATH.into())),
            Err(_) => Ok((BUILTIN_CONFIG.into(), "(built-in default)".into())),
        },
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_has_the_four_default_pools() {
        let file: FileConfig = toml::from_str(BUILTIN_CONFIG).unwrap();
        let names: Vec<_> = file.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["team_leader", "business_analyst", "developer", "tester"]
        );
    }

    #[test]
    fn the_tasks_example_config_is_valid() {
        let text = include_str!("../../../examples/tasks.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        let handlers: Vec<_> = file
            .pools
            .iter()
            .map(|p| {
                p.validate().unwrap();
                serde_json::to_value(&p.handler).unwrap()["type"].clone()
            })
            .collect();
        assert_eq!(handlers, ["echo", "exec", "exec", "http"]);
    }

    #[test]
    fn the_redis_table_names_the_ca_and_the_workers_url() {
        let text = "[redis]\nca_file = \"ca.pem\"\nworker_url = \"rediss://w:pw@h:6380\"";
        let file: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(file.redis.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            file.redis.worker_url.as_deref(),
            Some("rediss://w:pw@h:6380")
        );
        assert!(toml::from_str::<FileConfig>("[redis]\ncafile = \"x\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }
}
