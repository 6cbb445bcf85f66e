//! The master's side of the Redis registry.

use super::{connect, scripts, subscribe_json};
use crate::{
    BoxFuture, Keys, PoolCounts, ReapMode, Registry, RegistryError, Reservation, Result, Staleness,
    Target,
};
use agentpool_types::{Agent, AgentId, AgentState, Command, Event, ProcessId, WorkerProcess};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The registry in Redis, as the master uses it.
#[derive(Clone)]
pub struct RedisRegistry {
    url: String,
    keys: Keys,
    conn: ConnectionManager,
}

impl RedisRegistry {
    /// Connects; fails at once when Redis cannot be reached (callers decide on retries).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Ok(Self {
            url: url.to_owned(),
            keys: Keys::new(prefix),
            conn: connect(url, None).await?,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn hashes(&self, keys: &[String]) -> Result<Vec<HashMap<String, String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.hgetall(k);
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }
}

fn flat_to_map(flat: Vec<String>) -> HashMap<String, String> {
    let mut it = flat.into_iter();
    let mut map = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

fn ids<T>(raw: Vec<String>, parse: fn(&str) -> Option<T>) -> Result<Vec<T>> {
    raw.iter()
        .map(|s| parse(s).ok_or_else(|| RegistryError::Malformed(format!("bad id {s:?}"))))
        .collect()
}

impl Registry for RedisRegistry {
    fn init_pools<'a>(&'a self, pools: &'a [String]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            if pools.is_empty() {
                return Ok(0);
            }
            Ok(self.conn.clone().sadd(self.keys.pools(), pools).await?)
        })
    }

    fn reserve<'a>(&'a self, r: &'a Reservation) -> BoxFuture<'a, Result<Option<ProcessId>>> {
        Box::pin(async move {
            let picked: Option<String> = scripts::RESERVE
                .key(self.keys.pool_processes(&r.pool))
                .key(self.keys.pool_agents(&r.pool))
                .key(self.keys.agent(&r.agent_id))
                .arg(self.keys.prefix())
                .arg(r.placement.as_str())
                .arg(r.agent_id.as_str())
                .arg(&r.pool)
                .arg(&r.role)
                .arg(&r.name)
                .arg(&r.metadata)
                .arg(r.move_from.as_ref().map_or("", |p| p.as_str()))
                .arg(if r.must_exist { "1" } else { "0" })
                .arg(r.restart.map_or("", |p| p.as_str()))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(picked.and_then(|p| ProcessId::parse(&p)))
        })
    }

    fn release<'a>(&'a self, agent: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let hash: Option<Vec<String>> = scripts::RELEASE
                .key(self.keys.agent(agent))
                .arg(self.keys.prefix())
                .arg(agent.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(hash.and_then(|h| Agent::from_hash(&flat_to_map(h))))
        })
    }

    fn drain<'a>(
        &'a self,
        process: &'a ProcessId,
        only_if_empty: bool,
    ) -> BoxFuture<'a, Result<Option<Vec<AgentId>>>> {
        Box::pin(async move {
            let agents: Option<Vec<String>> = scripts::DRAIN
                .key(self.keys.process(process))
                .key(self.keys.process_agents(process))
                .arg(self.keys.prefix())
                .arg(process.as_str())
                .arg(if only_if_empty { "1" } else { "0" })
                .invoke_async(&mut self.conn.clone())
                .await?;
            agents.map(|a| ids(a, AgentId::parse)).transpose()
        })
    }

    fn reap<'a>(
        &'a self,
        process: &'a ProcessId,
        mode: ReapMode,
    ) -> BoxFuture<'a, Result<Vec<AgentId>>> {
        Box::pin(async move {
            let mode = match mode {
                ReapMode::Orphan => "orphan",
                ReapMode::Delete => "delete",
            };
            let agents: Vec<String> = scripts::REAP
                .key(self.keys.process(process))
                .key(self.keys.process_agents(process))
                .key(self.keys.heartbeats())
                .arg(self.keys.prefix())
                .arg(process.as_str())
                .arg(mode)
                .arg("")
                .invoke_async(&mut self.conn.clone())
                .await?;
            ids(agents, AgentId::parse)
        })
    }

    fn pool_counts<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<PoolCounts>>> {
        Box::pin(async move {
            let mut inv = scripts::POOL_COUNTS.prepare_invoke();
            inv.arg(self.keys.prefix());
            for (pool, capacity) in pools {
                inv.arg(pool).arg(capacity);
            }
            let rows: Vec<(String, u64, u64, u64, u64, u64)> =
                inv.invoke_async(&mut self.conn.clone()).await?;
            Ok(rows
                .into_iter()
                .map(
                    |(pool, process_count, total, free, agents, active)| PoolCounts {
                        pool,
                        process_count,
                        total_capacity: total,
                        available_capacity: free,
                        agent_count: agents,
                        active_worker_processes: active,
                    },
                )
                .collect())
        })
    }

    fn empty_workers<'a>(
        &'a self,
        pools: &'a [(String, u32)],
    ) -> BoxFuture<'a, Result<Vec<(String, ProcessId)>>> {
        Box::pin(async move {
            if pools.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for (pool, cap) in pools {
                pipe.zrangebyscore(self.keys.pool_processes(pool), cap, cap);
            }
            let found: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
            let mut out = Vec::new();
            for ((pool, _), ids_of_pool) in pools.iter().zip(found) {
                for id in ids(ids_of_pool, ProcessId::parse)? {
                    out.push((pool.clone(), id));
                }
            }
            Ok(out)
        })
    }

    fn agent<'a>(&'a self, id: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let h: HashMap<String, String> = self.conn.clone().hgetall(self.keys.agent(id)).await?;
            Ok(Agent::from_hash(&h))
        })
    }

    fn agents<'a>(&'a self, pools: &'a [String]) -> BoxFuture<'a, Result<Vec<Agent>>> {
        Box::pin(async move {
            if pools.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for p in pools {
                pipe.smembers(self.keys.pool_agents(p));
            }
            let sets: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
            let keys: Vec<String> = sets
                .iter()
                .flatten()
                .filter_map(|id| AgentId::parse(id))
                .map(|id| self.keys.agent(&id))
                .collect();
            let mut agents: Vec<Agent> = self
                .hashes(&keys)
                .await?
                .iter()
                .filter_map(Agent::from_hash)
                .collect();
            agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
            Ok(agents)
        })
    }

    fn process<'a>(&'a self, id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerProcess>>> {
        Box::pin(async move {
            let h: HashMap<String, String> =
                self.conn.clone().hgetall(self.keys.process(id)).await?;
            Ok(WorkerProcess::from_hash(&h))
        })
    }

    fn processes(&self) -> BoxFuture<'_, Result<Vec<WorkerProcess>>> {
        Box::pin(async move {
            let members: Vec<String> = self
                .conn
                .clone()
                .zrange(self.keys.heartbeats(), 0, -1)
                .await?;
            let keys: Vec<String> = ids(members, ProcessId::parse)?
                .iter()
                .map(|p| self.keys.process(p))
                .collect();
            let mut procs: Vec<WorkerProcess> = self
                .hashes(&keys)
                .await?
                .iter()
                .filter_map(WorkerProcess::from_hash)
                .collect();
            procs.sort_by(|a, b| a.process_id.cmp(&b.process_id));
            Ok(procs)
        })
    }

    fn send<'a>(&'a self, to: Target<'a>, cmd: &'a Command) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let channel = match to {
                Target::Process(p) => self.keys.process_commands(p),
                Target::Pool(p) => self.keys.pool_commands(p),
            };
            let json =
                serde_json::to_string(cmd).map_err(|e| RegistryError::Malformed(e.to_string()))?;
            let _: i64 = self.conn.clone().publish(channel, json).await?;
            Ok(())
        })
    }

    fn events(&self) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<Event>>> {
        Box::pin(subscribe_json(
            &self.url,
            vec![self.keys.all_pool_events()],
            true,
        ))
    }

    fn stale(&self, timeout: Duration) -> BoxFuture<'_, Result<Staleness>> {
        Box::pin(async move {
            let (total, stale): (u64, Vec<String>) = scripts::STALE
                .key(self.keys.heartbeats())
                .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(Staleness {
                total,
                stale: ids(stale, ProcessId::parse)?,
            })
        })
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let held: i64 = scripts::LOCK
                .key(self.keys.lock(name))
                .arg(holder)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(held == 1)
        })
    }

    fn mark_agent<'a>(
        &'a self,
        agent: &'a AgentId,
        status: AgentState,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let written: i64 = scripts::AGENT_MARK
                .key(self.keys.agent(agent))
                .arg(status.as_str())
                .arg(error.unwrap_or(""))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(written == 1)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(async move {
            let start = Instant::now();
            let _: String = redis::cmd("PING")
                .query_async(&mut self.conn.clone())
                .await?;
            Ok(start.elapsed())
        })
    }
}
