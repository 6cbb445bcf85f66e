//! The worker's side of the Redis registry.

use super::{connect, scripts, subscribe_json};
use crate::{
    BoxFuture, ControlPlane, Heartbeat, HostedAgent, Keys, RegistryError, Result, StatusWrite,
};
use agentpool_types::{Agent, AgentId, Command, Event, ProcessId, ProcessState, WorkerProcess};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Value};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The registry in Redis, as a worker uses it.
pub struct RedisControlPlane {
    url: String,
    keys: Keys,
    conn: ConnectionManager,
}

impl RedisControlPlane {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Ok(Self {
            url: url.to_owned(),
            keys: Keys::new(prefix),
            conn: connect(url, None).await?,
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
            Ok(Heartbeat::Alive { assigned })
        }
        _ => Err(bad()),
    }
}

impl ControlPlane for RedisControlPlane {
    fn register_with<'a>(
        &'a self,
        p: &'a WorkerProcess,
        agents: &'a [HostedAgent],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let fields = p.to_fields();
            let mut inv = scripts::REGISTER.prepare_invoke();
            inv.key(self.keys.process(&p.process_id))
                .key(self.keys.process_agents(&p.process_id))
                .key(self.keys.pool_processes(&p.pool_name))
                .key(self.keys.heartbeats())
                .key(self.keys.pools())
                .arg(p.process_id.as_str())
                .arg(p.max_agents)
                .arg(&p.pool_name)
                .arg(self.keys.prefix())
                .arg(fields.len());
            for (field, value) in fields {
                inv.arg(field).arg(value);
            }
            for a in agents {
                inv.arg(a.agent_id.as_str())
                    .arg(&a.role)
                    .arg(&a.name)
                    .arg(&a.metadata)
                    .arg(a.status.as_str());
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
            let reply: Value = scripts::HEARTBEAT
                .key(self.keys.process(id))
                .key(self.keys.heartbeats())
                .key(self.keys.process_agents(id))
                .arg(id.as_str())
                .arg(rss_bytes)
                .arg(format!("{cpu_percent:.1}"))
                .arg(self.keys.prefix())
                .invoke_async(&mut self.conn.clone())
                .await?;
            parse_heartbeat(reply)
        })
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let h: HashMap<String, String> = self.conn.clone().hgetall(self.keys.agent(id)).await?;
            Ok(Agent::from_hash(&h))
        })
    }

    fn set_agent_status<'a>(
        &'a self,
        process: &'a ProcessId,
        w: StatusWrite<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let epoch: u64 = scripts::AGENT_STATUS
                .key(self.keys.agent(w.agent))
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

    fn set_process_status<'a>(
        &'a self,
        id: &'a ProcessId,
        status: ProcessState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: i64 = scripts::PROCESS_STATUS
                .key(self.keys.process(id))
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
        Box::pin(subscribe_json(&self.url, channels, false))
    }
}
