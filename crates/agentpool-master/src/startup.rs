//! Reaching the registry and the store at startup, retrying with backoff while either is down
//! (a configured Redis is never swapped for the embedded registry: a split registry is worse
//! than waiting).

use crate::config::{Backend, MasterConfig, SECRET_KEY_FILE, StoreConfig};
use crate::error::MasterError;
use agentpool_registry::embedded::{EmbeddedRegistry, EmbeddedServer};
use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{Registry, RegistryError};
use agentpool_store::{Store, StoreError, connect_postgres, connect_sqlite};
use agentpool_types::SecretKey;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest pause between attempts to reach Redis or the database at startup.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// First pause between attempts.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Creates the data directory readable by its owner only: it holds the store, worker logs
/// (agents' output) and the embedded registry's socket. One that exists with wider rights is
/// left as the operator made it, with a warning.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            let mode = m.permissions().mode() & 0o777;
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the data directory is open to other users; 700 keeps the store, logs and socket private");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
    }
}

/// The key agents' secrets are sealed under: read from `<dir>/secret.key`, or made of 32
/// random bytes and written there, owner-only, on the first start. Creation fails rather than
/// overwrite a key another master wrote meanwhile: secrets sealed under it would never open.
pub fn secret_key(dir: &std::path::Path) -> std::io::Result<SecretKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SECRET_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => return SecretKey::from_bytes(&bytes).map_err(|e| bad_key(&path, e)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let key = SecretKey::generate().map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created the key that seals agents' secret_config");
    Ok(key)
}

fn bad_key(path: &std::path::Path, e: agentpool_types::SecretError) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

/// Makes a file the master created readable and writable by its owner only.
pub fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The registry, and in embedded mode the socket server its workers connect to. `None` if
/// shutdown came first.
pub async fn registry(
    config: &MasterConfig,
    shutdown: &CancellationToken,
) -> Result<Option<(Arc<dyn Registry>, Option<EmbeddedServer>)>, MasterError> {
    match config.backend {
        Backend::Redis => {
            let target = config.redis_target()?;
            let url = target.masked_url().to_owned();
            let connected = retry(shutdown, "redis", || async {
                match RedisRegistry::connect_to(&target, &config.key_prefix).await {
                    Ok(r) => Ok(Ok(r)),
                    // The error names the (masked) URL already.
                    Err(RegistryError::Unavailable(e)) => Err(e),
                    Err(e) => Ok(Err(e)),
                }
            })
            .await;
            let Some(registry) = connected else {
                return Ok(None);
            };
            tracing::info!(redis = %url, "connected to redis");
            Ok(Some((Arc::new(registry?), None)))
        }
        Backend::Embedded => {
            let registry = EmbeddedRegistry::new();
            let path = config.socket_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let server = EmbeddedServer::bind(&path, registry.clone()).await?;
            owner_only(&path)?;
            tracing::info!(socket = %path.display(), "embedded registry: workers connect over a Unix socket");
            Ok(Some((Arc::new(registry), Some(server))))
        }
    }
}

/// The store, migrations applied. `None` if shutdown came first.
pub async fn store(
    config: &MasterConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<dyn Store>>, MasterError> {
    let opened = retry(shutdown, "database", || async {
        match open_store(&config.store).await {
            Ok(s) => Ok(Ok(s)),
            Err(e) if e.is_unavailable() => Err(e.to_string()),
            Err(e) => Ok(Err(e)),
        }
    })
    .await;
    let Some(store) = opened else {
        return Ok(None);
    };
    let store = store?;
    tracing::info!(backend = store.backend(), "store ready");
    Ok(Some(store))
}

/// Opens the configured store once (migrations included).
pub async fn open_store(store: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match store {
        StoreConfig::Sqlite(path) => connect_sqlite(path).await.map(|s| Arc::new(s) as _),
        StoreConfig::Postgres { direct, runtime } => connect_postgres(direct, runtime.as_deref())
            .await
            .map(|s| Arc::new(s) as _),
    }
}

/// Calls `attempt` until it returns `Ok` (an answer, good or bad) rather than `Err` (the
/// service is down: logged, retried with doubling pauses). `None` if shutdown came first.
async fn retry<T, F, Fut>(shutdown: &CancellationToken, what: &str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut delay = CONNECT_BACKOFF_MIN;
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?delay, "{what} unreachable; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return None,
        }
        delay = (delay * 2).min(CONNECT_BACKOFF_MAX);
    }
}
