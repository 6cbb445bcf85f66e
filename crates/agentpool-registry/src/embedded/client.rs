//! [`SocketControlPlane`]: the worker's end of the socket, a `ControlPlane`.
//!
//! Calls are matched to replies by id, so several may be in flight at once. There is no
//! reconnect: in embedded mode the registry dies with the master, and so should its workers.
//! Once the socket breaks, every pending and later call fails with `Unavailable` and the
//! command subscriptions end, which is how the worker learns the master is gone.

use super::wire::{self, Beat, Call, Reply, Request};
use crate::{
    BoxFuture, ControlPlane, Finished, Heartbeat, Hosted, Ready, RegistryError, Result, StatusWrite,
};
use agentpool_types::{
    Agent, AgentId, Command, Event, ProcessId, ProcessState, Task, TaskId, TaskReport,
    WorkerProcess,
};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite};

/// A call unanswered for this long counts as an outage, like a Redis response timeout. The
/// master answers from memory, so only a wedged master gets near it.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

type Answer = std::result::Result<serde_json::Value, String>;

/// What the reader task shares with the callers.
#[derive(Default)]
struct Shared {
    closed: bool,
    calls: HashMap<u64, oneshot::Sender<Answer>>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
}

/// The embedded registry as a worker reaches it, over the master's Unix socket.
pub struct SocketControlPlane {
    out: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Mutex<Shared>>,
    next_id: AtomicU64,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn gone() -> RegistryError {
    RegistryError::Unavailable("embedded registry socket closed".into())
}

/// Fails every pending call and ends every subscription; later calls fail at once.
fn close(shared: &Mutex<Shared>) {
    let mut s = lock(shared);
    s.closed = true;
    s.calls.clear();
    s.commands.clear();
}

impl SocketControlPlane {
    /// Connects to `unix:///abs/path.sock`.
    pub async fn connect(url: &str) -> Result<Self> {
        let path = super::socket_path(url)?;
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|e| RegistryError::Unavailable(format!("{}: {e}", path.display())))?;
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (out, mut out_rx) = mpsc::unbounded_channel::<Bytes>();

        let writer_shared = shared.clone();
        tokio::spawn(async move {
            let mut writer = FramedWrite::new(wr, wire::codec());
            while let Some(frame) = out_rx.recv().await {
                if writer.send(frame).await.is_err() {
                    close(&writer_shared);
                    return;
                }
            }
            // Every handle is gone: dropping the writer shuts the socket's write side, which
            // the master sees as this worker's end.
        });

        let reader_shared = shared.clone();
        tokio::spawn(async move {
            let mut reader = FramedRead::new(rd, wire::codec());
            while let Some(Ok(frame)) = reader.next().await {
                match serde_json::from_slice::<Reply>(&frame) {
                    Ok(reply) => dispatch(&reader_shared, reply),
                    Err(e) => tracing::warn!(error = %e, "ignoring malformed registry frame"),
                }
            }
            close(&reader_shared);
        });

        Ok(Self {
            out,
            shared,
            next_id: AtomicU64::new(1),
        })
    }

    /// Sends one call and waits for its answer.
    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = serde_json::to_vec(&Request { id, call })
            .map_err(|e| RegistryError::Malformed(e.to_string()))?;
        // Sent, it would break the connection and with it the worker: fail this call alone.
        if frame.len() > wire::MAX_FRAME {
            return Err(RegistryError::Malformed(format!(
                "call of {} bytes, more than the socket's {} byte frames",
                frame.len(),
                wire::MAX_FRAME
            )));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.shared);
            if s.closed {
                return Err(gone());
            }
            s.calls.insert(id, tx);
        }
        if self.out.send(Bytes::from(frame)).is_err() {
            lock(&self.shared).calls.remove(&id);
            return Err(gone());
        }
        let answer = match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(gone()),
            Err(_) => {
                lock(&self.shared).calls.remove(&id);
                return Err(RegistryError::Unavailable(format!(
                    "embedded registry did not answer within {CALL_TIMEOUT:?}"
                )));
            }
        };
        let value = answer.map_err(RegistryError::Malformed)?;
        serde_json::from_value(value).map_err(|e| RegistryError::Malformed(e.to_string()))
    }
}

fn dispatch(shared: &Mutex<Shared>, reply: Reply) {
    let mut s = lock(shared);
    let (id, answer) = match reply {
        Reply::Ok { id, ok } => (id, Ok(ok)),
        Reply::Err { id, err } => (id, Err(err)),
        Reply::Push { command } => {
            s.commands.retain(|tx| tx.send(command.clone()).is_ok());
            return;
        }
    };
    if let Some(tx) = s.calls.remove(&id) {
        let _ = tx.send(answer);
    }
}

impl ControlPlane for SocketControlPlane {
    fn agent_ready<'a>(
        &'a self,
        process: &'a ProcessId,
        agent: &'a AgentId,
        epoch: Option<u64>,
    ) -> BoxFuture<'a, Result<Ready>> {
        Box::pin(self.call(Call::AgentReady {
            process_id: process.clone(),
            agent_id: agent.clone(),
            epoch,
        }))
    }

    fn finish_task<'a>(&'a self, report: &'a TaskReport) -> BoxFuture<'a, Result<Finished>> {
        Box::pin(self.call(Call::FinishTask {
            report: report.clone(),
        }))
    }

    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(self.call(Call::Task {
            task_id: id.clone(),
        }))
    }

    fn register_with<'a>(
        &'a self,
        p: &'a WorkerProcess,
        agents: &'a [Hosted],
    ) -> BoxFuture<'a, Result<()>> {
        let call = Call::RegisterWith {
            process: p.clone(),
            agents: agents.to_vec(),
        };
        Box::pin(self.call(call))
    }

    fn heartbeat<'a>(
        &'a self,
        id: &'a ProcessId,
        rss_bytes: u64,
        cpu_percent: f32,
    ) -> BoxFuture<'a, Result<Heartbeat>> {
        let call = Call::Heartbeat {
            process_id: id.clone(),
            rss_bytes,
            // JSON has no NaN: it would arrive as null and fail the call.
            cpu_percent: if cpu_percent.is_finite() {
                cpu_percent
            } else {
                0.0
            },
        };
        Box::pin(async move { Ok(self.call::<Beat>(call).await?.into()) })
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(self.call(Call::Agent {
            agent_id: id.clone(),
        }))
    }

    fn set_agent_status<'a>(
        &'a self,
        process: &'a ProcessId,
        w: StatusWrite<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(self.call(Call::SetAgentStatus {
            process_id: process.clone(),
            agent_id: w.agent.clone(),
            status: w.status,
            error: w.error.map(str::to_owned),
            epoch: w.epoch,
            restarted: w.restarted,
        }))
    }

    fn set_process_status<'a>(
        &'a self,
        id: &'a ProcessId,
        status: ProcessState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.call(Call::SetProcessStatus {
            process_id: id.clone(),
            status,
        }))
    }

    fn publish<'a>(&'a self, pool: &'a str, event: &'a Event) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.call(Call::Publish {
            pool: pool.to_owned(),
            event: event.clone(),
        }))
    }

    /// Every command pushed on this connection reaches every receiver returned here; a worker
    /// subscribes once, for its own id and pool.
    fn commands<'a>(
        &'a self,
        pool: &'a str,
        id: &'a ProcessId,
    ) -> BoxFuture<'a, Result<mpsc::UnboundedReceiver<Command>>> {
        Box::pin(async move {
            // Listen before asking: the master may push a command right behind its answer.
            let (tx, rx) = mpsc::unbounded_channel();
            lock(&self.shared).commands.push(tx);
            let call = Call::Commands {
                pool: pool.to_owned(),
                process_id: id.clone(),
            };
            self.call::<()>(call).await?;
            Ok(rx)
        })
    }
}
