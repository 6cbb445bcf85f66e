//! [`EmbeddedServer`]: the master's end of the socket. One task per worker connection answers
//! its calls from the [`EmbeddedRegistry`] and pushes the commands it subscribed to. A
//! connection that ends without the server shutting down is reported on the `closed` channel
//! with the worker it registered: in embedded mode a dropped connection means a dead worker.

use super::registry::EmbeddedRegistry;
use super::wire::{self, Beat, Call, Reply, Request};
use crate::{ControlPlane, RegistryError, Result, StatusWrite};
use agentpool_types::{Command, ProcessId};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// The listening socket. Dropping it stops accepting, closes every connection and removes the
/// socket file.
pub struct EmbeddedServer {
    path: PathBuf,
    closed: Option<UnboundedReceiver<ProcessId>>,
    cancel: CancellationToken,
}

impl EmbeddedServer {
    /// Listens on `path`. A socket file left by a master that died is removed first; one that
    /// still answers belongs to a live master and is an error.
    pub async fn bind(path: impl AsRef<Path>, registry: EmbeddedRegistry) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if UnixStream::connect(&path).await.is_ok() {
            return Err(RegistryError::Config(format!(
                "socket {} is in use by another process",
                path.display()
            )));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(config(&path, e)),
        }
        let listener = UnixListener::bind(&path).map_err(|e| config(&path, e))?;
        let (closed_tx, closed_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        tokio::spawn(accept(listener, registry, closed_tx, cancel.clone()));
        Ok(Self {
            path,
            closed: Some(closed_rx),
            cancel,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL workers are given: `unix:///abs/path.sock`.
    pub fn url(&self) -> String {
        super::socket_url(&self.path)
    }

    /// The workers whose connection closed; taken once, by whoever reaps them.
    pub fn take_closed(&mut self) -> Option<UnboundedReceiver<ProcessId>> {
        self.closed.take()
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the peer runs as this process's user. The socket file is private already; this
/// also holds when its directory's rights were loosened by hand.
fn same_user(stream: &UnixStream) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/self").map(|m| m.uid());
    match (stream.peer_cred(), own) {
        (Ok(peer), Ok(own)) => peer.uid() == own,
        _ => false,
    }
}

fn config(path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Config(format!("socket {}: {e}", path.display()))
}

async fn accept(
    listener: UnixListener,
    registry: EmbeddedRegistry,
    closed: UnboundedSender<ProcessId>,
    cancel: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if same_user(&stream) => stream,
                Ok(_) => {
                    tracing::warn!("embedded registry: refused a connection from another user");
                    continue;
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "embedded registry: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = Conn {
            registry: registry.clone(),
            registered: None,
            subscribed: HashSet::new(),
            push: mpsc::unbounded_channel(),
        };
        tokio::spawn(conn.serve(stream, closed.clone(), cancel.clone()));
    }
}

/// One worker's connection.
struct Conn {
    registry: EmbeddedRegistry,
    /// The worker this connection registered, reported when the connection ends.
    registered: Option<ProcessId>,
    /// Subscriptions already forwarded, so subscribing twice does not deliver twice.
    subscribed: HashSet<(String, ProcessId)>,
    /// Frames pushed by the command forwarders, written by the connection task.
    push: (UnboundedSender<Bytes>, UnboundedReceiver<Bytes>),
}

fn encode(v: &impl Serialize) -> Bytes {
    // These types always serialize; an empty frame would only fail the peer's parse.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

impl Conn {
    async fn serve(
        mut self,
        stream: UnixStream,
        closed: UnboundedSender<ProcessId>,
        cancel: CancellationToken,
    ) {
        let (rd, wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, wire::codec());
        let mut writer = FramedWrite::new(wr, wire::codec());
        loop {
            let out = tokio::select! {
                _ = cancel.cancelled() => return,
                Some(frame) = self.push.1.recv() => frame,
                frame = reader.next() => match frame {
                    Some(Ok(frame)) => self.answer(&frame).await,
                    _ => break,
                },
            };
            if writer.send(out).await.is_err() {
                break;
            }
        }
        if let Some(pid) = self.registered.take() {
            let _ = closed.send(pid);
        }
    }

    /// Answers one request frame, with the request's id even when its call is malformed.
    async fn answer(&mut self, frame: &[u8]) -> Bytes {
        let reply = match serde_json::from_slice::<Request>(frame) {
            Ok(req) => match self.call(req.call).await {
                Ok(ok) => Reply::Ok { id: req.id, ok },
                Err(e) => Reply::Err {
                    id: req.id,
                    err: e.to_string(),
                },
            },
            Err(e) => {
                let id = serde_json::from_slice::<serde_json::Value>(frame)
                    .ok()
                    .and_then(|v| v.get("id")?.as_u64())
                    .unwrap_or(0);
                Reply::Err {
                    id,
                    err: format!("malformed request: {e}"),
                }
            }
        };
        encode(&reply)
    }

    async fn call(&mut self, call: Call) -> Result<serde_json::Value> {
        let reg = &self.registry;
        let value = match call {
            Call::RegisterWith { process, agents } => {
                reg.register_with(&process, &agents).await?;
                self.registered = Some(process.process_id);
                serde_json::Value::Null
            }
            Call::Heartbeat {
                process_id,
                rss_bytes,
                cpu_percent,
            } => json(Beat::from(
                reg.heartbeat(&process_id, rss_bytes, cpu_percent).await?,
            ))?,
            Call::Agent { agent_id } => json(ControlPlane::agent(reg, &agent_id).await?)?,
            Call::SetAgentStatus {
                process_id,
                agent_id,
                status,
                error,
                epoch,
                restarted,
            } => {
                let w = StatusWrite {
                    agent: &agent_id,
                    status,
                    error: error.as_deref(),
                    epoch,
                    restarted,
                };
                json(reg.set_agent_status(&process_id, w).await?)?
            }
            Call::SetProcessStatus { process_id, status } => {
                json(reg.set_process_status(&process_id, status).await?)?
            }
            Call::Publish { pool, event } => json(reg.publish(&pool, &event).await?)?,
            Call::AgentReady {
                process_id,
                agent_id,
                epoch,
            } => json(reg.agent_ready(&process_id, &agent_id, epoch).await?)?,
            Call::FinishTask { report } => json(reg.finish_task(&report).await?)?,
            Call::Task { task_id } => json(ControlPlane::task(reg, &task_id).await?)?,
            Call::Commands { pool, process_id } => {
                if !self
                    .subscribed
                    .contains(&(pool.clone(), process_id.clone()))
                {
                    let rx = reg.commands(&pool, &process_id).await?;
                    tokio::spawn(forward(rx, self.push.0.clone()));
                    self.subscribed.insert((pool, process_id));
                }
                serde_json::Value::Null
            }
        };
        Ok(value)
    }
}

fn json(v: impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| RegistryError::Malformed(e.to_string()))
}

/// Pushes one subscription's commands to the connection until either side goes away.
async fn forward(mut rx: UnboundedReceiver<Command>, push: UnboundedSender<Bytes>) {
    loop {
        let command = tokio::select! {
            _ = push.closed() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        if push.send(encode(&Reply::Push { command })).is_err() {
            return;
        }
    }
}
