//! Both registry traits over Redis.
//!
//! - `keys`: [`Keys`], every Redis key name as Rust spells it (`lua/keys.lua` for Lua).
//! - `hash`: the codec between the `agent:<id>` / `process:<id>` hashes and the records.
//! - `registry`: [`RedisRegistry`], the master's side.
//! - `control`: [`RedisControlPlane`], the worker's side.
//! - `scripts`: the Lua scripts of `lua/`, loaded once.
//!
//! Connections are `ConnectionManager`s on RESP3 with a push sender: that is the configuration
//! under which redis-rs reconnects *and* resubscribes pub/sub channels by itself. Lost messages
//! are still lost, so both sides reconcile from the registry.

mod control;
pub mod hash;
pub mod keys;
mod registry;
mod scripts;

pub use control::RedisControlPlane;
pub use keys::Keys;
pub use registry::RedisRegistry;

use crate::{RegistryError, Result};
use agentpool_types::mask_url;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a connection attempt may take before it counts as an outage.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Replies slower than this count as an outage. Longer than redis-rs's 500 ms default because
/// `pool_counts` walks every worker of every pool.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a subscriber proves its connection, which is also how soon it resubscribes
/// after Redis comes back.
const SUBSCRIBER_PING: Duration = Duration::from_millis(500);
/// Ceiling of the reconnect backoff, so service resumes soon after Redis returns.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Where Redis is and how to trust it: the URL (`redis://` or `rediss://`, which may carry a
/// user and password) and, for `rediss://`, a CA certificate file (PEM) to verify the server
/// with instead of the system's roots.
#[derive(Clone)]
pub struct RedisTarget {
    client: redis::Client,
    /// The URL with its password masked, for messages.
    masked: String,
}

impl RedisTarget {
    /// Parses `url` and reads `ca_file`; fails on a bad URL or an unreadable CA file (neither
    /// gets better by retrying).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self> {
        let masked = mask_url(url);
        let info = url
            .into_connection_info()
            .map_err(|e| RegistryError::Config(format!("bad redis URL {masked}: {e}")))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = match ca_file {
            None => redis::Client::open(info)?,
            Some(path) if !url.starts_with("rediss://") => {
                return Err(RegistryError::Config(format!(
                    "a redis CA file ({}) is set but the redis URL {masked} is not rediss://",
                    path.display()
                )));
            }
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    RegistryError::Config(format!(
                        "cannot read the redis CA file {}: {e}",
                        path.display()
                    ))
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)?
            }
        };
        Ok(Self { client, masked })
    }

    /// The URL with its password masked.
    pub fn masked_url(&self) -> &str {
        &self.masked
    }
}

/// Opens a self-healing connection. With `push`, pub/sub messages arrive on that channel and
/// subscriptions are renewed after every reconnect.
async fn connect(
    target: &RedisTarget,
    push: Option<mpsc::UnboundedSender<PushInfo>>,
) -> Result<ConnectionManager> {
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(RECONNECT_MAX_DELAY);
    if let Some(push) = push {
        config = config.set_push_sender(push).set_automatic_resubscription();
    }
    ConnectionManager::new_with_config(target.client.clone(), config)
        .await
        .map_err(|e| RegistryError::Unavailable(format!("{e} ({})", target.masked)))
}

/// Starts a script call with the key prefix as `ARGV[1]`, as every script expects.
fn invoke(script: &'static redis::Script, keys: &Keys) -> redis::ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    inv.arg(keys.prefix());
    inv
}

/// Subscribes a fresh connection to `channels` (patterns when `pattern`) and forwards every
/// message that parses as `T`. The task owns the connection, which is what keeps resubscribing
/// after reconnects; it ends when the receiver is dropped.
async fn subscribe_json<T>(
    target: &RedisTarget,
    channels: Vec<String>,
    pattern: bool,
) -> Result<mpsc::UnboundedReceiver<T>>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let mut conn = connect(target, Some(push_tx)).await?;
    if pattern {
        conn.psubscribe(&channels).await?;
    } else {
        conn.subscribe(&channels).await?;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // redis-rs reconnects a dropped connection once, and again only when a command is
        // sent on it. A subscriber sends nothing, so it pings: after an outage of any length
        // the next ping reconnects and resubscribes.
        let mut keepalive = tokio::time::interval(SUBSCRIBER_PING);
        loop {
            let push = tokio::select! {
                push = push_rx.recv() => match push { Some(p) => p, None => return },
                _ = keepalive.tick() => {
                    let _: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
                    continue;
                }
            };
            let Some(payload) = message_payload(&push) else {
                continue;
            };
            match serde_json::from_slice::<T>(payload) {
                Ok(msg) => {
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring malformed pub/sub message"),
            }
        }
    });
    Ok(rx)
}

/// The payload of a pub/sub message push, if this push is one.
fn message_payload(push: &PushInfo) -> Option<&[u8]> {
    match push.kind {
        PushKind::Message | PushKind::PMessage => match push.data.last()? {
            Value::BulkString(bytes) => Some(bytes),
            _ => None,
        },
        _ => None,
    }
}
