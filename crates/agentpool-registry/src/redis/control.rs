//! The worker's side of the Redis registry.

use super::{Keys, RedisTarget, connect, hash, invoke, scripts, subscribe_json};
use crate::{
    BoxFuture, ControlPlane, Finished, Heartbeat, Holding, Hosted, Ready, RegistryError, Result,
    StatusWrite,
};
use agentpool_types::{
    Agent, AgentId, Command, Event, ProcessId, ProcessState, Task, TaskId, TaskOutcome, TaskReport,
    TaskRun, WorkerProcess,
};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Value};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The registry in Redis, as a worker uses it.
pub struct RedisControlPlane {
    target: RedisTarget,
    keys: Keys,
    conn: ConnectionManager,
}

impl RedisControlPlane {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Self::connect_to(&RedisTarget::new(url, None)?, prefix).await
    }

    /// Connects to `target` (a `rediss://` URL with its CA, for one).
    pub async fn connect_to(target: &RedisTarget, prefix: &str) -> Result<Self> {
        Ok(Self {
            target: target.clone(),
            keys: Keys::new(prefix),
            conn: connect(target, None).await?,
        })
    }
}

/// Reads the heartbeat script's reply: `{'reaped'}` or `{'alive', {ids}}`.
fn parse_heartbeat(v: Value) -> Result<Heartbeat> {
    let bad = || RegistryError::Malformed("unexpected heartbeat reply".into());
    let Value::Array(parts) = v else {
        return Err(bad());
    };
    let mut parts = parts.into_iter();
    let tag: String = redis::from_redis_value(parts.next().ok_or_else(bad)?)?;
    match tag.as_str() {
        "reaped" => Ok(Heartbeat::Reaped),
        "unregistered" => Ok(Heartbeat::Unregistered),
        "alive" => {
            let raw: Vec<String> = redis::from_redis_value(parts.next().ok_or_else(bad)?)?;
            let assigned = raw.iter().filter_map(|s| AgentId::parse(s)).collect();
            let flat: Vec<String> = redis::from_redis_value(parts.next().ok_or_else(bad)?)?;
            let holding = flat
                .chunks_exact(3)
                .filter_map(|c| {
                    Some(Holding {
                        agent_id: AgentId::parse(&c[0])?,
                        task_id: TaskId::parse(&c[1])?,
                        attempt: c[2].parse().ok()?,
                    })
                })
                .collect();
            Ok(Heartbeat::Alive { assigned, holding })
        }
        _ => Err(bad()),
    }
}

/// A run as the scripts write it: JSON text.
fn parse_run(text: &str) -> Result<TaskRun> {
    serde_json::from_str(text).map_err(|e| RegistryError::Malformed(format!("task run: {e}")))
}

impl ControlPlane for RedisControlPlane {
    fn register_with<'a>(
        &'a self,
        p: &'a WorkerProcess,
        agents: &'a [Hosted],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let fields = hash::process_fields(p);
            let mut inv = invoke(&scripts::REGISTER, &self.keys);
            inv.arg(p.process_id.as_str())
                .arg(p.max_agents)
                .arg(&p.pool_name)
                .arg(fields.len());
            for (field, value) in fields {
                inv.arg(field).arg(value);
            }
            for Hosted { agent: a, status } in agents {
                inv.arg(a.agent_id.as_str())
                    .arg(&a.role_type)
                    .arg(&a.name)
                    .arg(a.metadata.to_string())
                    .arg(a.restart.map_or("", |r| r.as_str()))
                    .arg(if a.autoscaled { "1" } else { "" })
                    .arg(status.as_str())
                    .arg(a.secret_config.as_ref().map_or("", |s| s.as_str()));
            }
            let _: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
            Ok(())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        id: &'a ProcessId,
        rss_bytes: u64,
        cpu_percent: f32,
    ) -> BoxFuture<'a, Result<Heartbeat>> {
        Box::pin(async move {
            let reply: Value = invoke(&scripts::HEARTBEAT, &self.keys)
                .arg(id.as_str())
                .arg(rss_bytes)
                .arg(format!("{cpu_percent:.1}"))
                .invoke_async(&mut self.conn.clone())
                .await?;
            parse_heartbeat(reply)
        })
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let h: HashMap<String, String> = self.conn.clone().hgetall(self.keys.agent(id)).await?;
            Ok(hash::agent(&h))
        })
    }

    fn set_agent_status<'a>(
        &'a self,
        process: &'a ProcessId,
        w: StatusWrite<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let epoch: u64 = invoke(&scripts::AGENT_STATUS, &self.keys)
                .arg(w.agent.as_str())
                .arg(process.as_str())
                .arg(w.status.as_str())
                .arg(w.error.unwrap_or(""))
                .arg(w.epoch.map(|e| e.to_string()).unwrap_or_default())
                .arg(if w.restarted { "1" } else { "0" })
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok((epoch > 0).then_some(epoch))
        })
    }

    fn agent_ready<'a>(
        &'a self,
        process: &'a ProcessId,
        agent: &'a AgentId,
        epoch: Option<u64>,
    ) -> BoxFuture<'a, Result<Ready>> {
        Box::pin(async move {
            let (epoch, run): (u64, Option<String>) = invoke(&scripts::AGENT_READY, &self.keys)
                .arg(agent.as_str())
                .arg(process.as_str())
                .arg(epoch.map(|e| e.to_string()).unwrap_or_default())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(match (epoch, run) {
                (0, _) => Ready::Fenced,
                (epoch, None) => Ready::Idle { epoch },
                (epoch, Some(run)) => Ready::Run {
                    epoch,
                    run: parse_run(&run)?,
                },
            })
        })
    }

    fn finish_task<'a>(&'a self, report: &'a TaskReport) -> BoxFuture<'a, Result<Finished>> {
        Box::pin(async move {
            let (outcome, value) = match &report.outcome {
                TaskOutcome::Succeeded(output) => ("succeeded", output.to_string()),
                TaskOutcome::Failed(e) => ("failed", e.clone()),
                TaskOutcome::Cancelled => ("cancelled", String::new()),
                TaskOutcome::AgentFailed(e) => ("agent_failed", e.clone()),
            };
            let (taken, next): (u64, Option<String>) = invoke(&scripts::TASK_FINISH, &self.keys)
                .arg(report.task_id.as_str())
                .arg(report.agent_id.as_str())
                .arg(report.process_id.as_str())
                .arg(report.attempt)
                .arg(outcome)
                .arg(value)
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(Finished {
                accepted: taken == 1,
                next: next.map(|r| parse_run(&r)).transpose()?,
            })
        })
    }

    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(async move {
            let h: HashMap<String, String> = self.conn.clone().hgetall(self.keys.task(id)).await?;
            Ok(hash::task(&h))
        })
    }

    fn set_process_status<'a>(
        &'a self,
        id: &'a ProcessId,
        status: ProcessState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: i64 = invoke(&scripts::PROCESS_STATUS, &self.keys)
                .arg(id.as_str())
                .arg(status.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }

    fn publish<'a>(&'a self, pool: &'a str, event: &'a Event) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let json = serde_json::to_string(event)
                .map_err(|e| RegistryError::Malformed(e.to_string()))?;
            let _: i64 = self
                .conn
                .clone()
                .publish(self.keys.pool_events(pool), json)
                .await?;
            Ok(())
        })
    }

    fn commands<'a>(
        &'a self,
        pool: &'a str,
        id: &'a ProcessId,
    ) -> BoxFuture<'a, Result<mpsc::UnboundedReceiver<Command>>> {
        let channels = vec![
            self.keys.process_commands(id),
            self.keys.pool_commands(pool),
        ];
        Box::pin(subscribe_json(&self.target, channels, false))
    }
}
