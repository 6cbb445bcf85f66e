//! Both registry traits with no Redis: the registry lives in the master's memory and workers
//! reach it over a Unix socket.
//!
//! - `state`, `slots`: [`EmbeddedState`], the data behind one mutex; each step is one critical
//!   section, the atomicity the Lua scripts give in Redis, with the same semantics.
//! - `tasks`, `task_steps`: the task queue, `lua/tasks.lua` and the task scripts over the same
//!   data; `circuit`: its breaker; `zset`: the sorted sets its order depends on.
//! - `hub`: in-process pub/sub for commands and events.
//! - `registry`: [`EmbeddedRegistry`], `Registry` and `ControlPlane` over the state.
//! - `wire`: the socket protocol, length-delimited JSON frames.
//! - `socket`: [`EmbeddedServer`], the master's end: one task per worker connection.
//! - `client`: [`SocketControlPlane`], the worker's end, a `ControlPlane`.
//!
//! Workers name the socket as `unix:///abs/path.sock` where they would name a Redis URL.

mod circuit;
mod client;
mod hub;
mod registry;
mod slots;
mod socket;
mod state;
mod task_steps;
mod tasks;
mod wire;
mod zset;

pub use client::SocketControlPlane;
pub use registry::EmbeddedRegistry;
pub use socket::EmbeddedServer;
pub use state::EmbeddedState;

use crate::{RegistryError, Result};
use std::path::PathBuf;

/// The URL scheme of the embedded registry's socket.
pub const SCHEME: &str = "unix://";

/// Whether a control URL names the embedded registry's socket rather than Redis.
pub fn is_embedded_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// The socket path of `unix:///abs/path.sock`; relative paths are refused because a worker
/// may run in another directory than the master.
pub fn socket_path(url: &str) -> Result<PathBuf> {
    let path = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| RegistryError::Config(format!("not a unix:// URL: {url}")))?;
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(RegistryError::Config(format!(
            "socket path must be absolute: {url}"
        )));
    }
    Ok(path)
}

/// The URL a worker is given for a socket path.
pub fn socket_url(path: &std::path::Path) -> String {
    format!("{SCHEME}{}", path.display())
}
