//! Test harness for agentpool: real processes, real sockets, no mocks.
//!
//! - [`wait`]: `wait_for` / `wait_until`, the only way tests wait (polling with back-off, never a fixed sleep).
//! - [`net`]: `free_port`, an OS-assigned free TCP port on 127.0.0.1.
//! - [`tempdir`]: `TempDir`, a unique scratch directory removed on drop.
//! - [`procs`]: `/proc` scanning for stray worker processes (`worker_pids`) and killing them.
//! - `server`: `Server`, the one owner of a server child (`redis-server`, `pgbouncer`): start with a readiness wait, kill, restart on the same port.
//! - [`redis_server`]: `TestRedis`, a private `redis-server` per test that can be stopped and restarted, optionally TLS-only or with ACL users (`RedisOptions`).
//! - [`tls`]: `TestCerts`, a fresh CA and a server certificate it signs, as PEM files.
//! - [`snapshot`]: `redis_snapshot`, every key of a Redis with its type and content, heartbeats optionally left out.
//! - [`postgres`]: `TestPostgres`, a fresh database per test on the local PostgreSQL, dropped on drop.
//! - [`postgres_tls`]: `TestPostgresTls`, a private PostgreSQL cluster with `ssl = on` and a test CA.
//! - [`pgbouncer`]: `TestPgBouncer`, a real pgbouncer (session mode) in front of one, stoppable and restartable.
//! - [`browser`]: `Browser`, a headless Chromium driven over the DevTools protocol, and its `Page`s.
//! - [`master`]: `TestMaster`, the real `agentpool serve` binary as a child process, with JSON HTTP helpers.

pub mod browser;
pub mod master;
pub mod net;
pub mod pgbouncer;
pub mod postgres;
pub mod postgres_tls;
pub mod procs;
pub mod redis_server;
mod server;
pub mod snapshot;
pub mod tempdir;
pub mod tls;
pub mod wait;

pub use browser::{Browser, Page};
pub use master::{MasterOptions, TestMaster};
pub use net::free_port;
pub use pgbouncer::TestPgBouncer;
pub use postgres::TestPostgres;
pub use postgres_tls::TestPostgresTls;
pub use procs::worker_pids;
pub use redis_server::{RedisOptions, TestRedis};
pub use snapshot::{Heartbeats, redis_snapshot};
pub use tempdir::TempDir;
pub use tls::TestCerts;
pub use wait::{wait_for, wait_until};
