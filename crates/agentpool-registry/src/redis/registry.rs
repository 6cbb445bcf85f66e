//! The master's side of the Redis registry.

use super::{Keys, RedisTarget, connect, hash, invoke, scripts, subscribe_json};
use crate::{
    BoxFuture, ReapMode, Registry, RegistryError, Reservation, Result, Retirement, Staleness,
    Target, Tended,
};
use agentpool_types::{
    Agent, AgentId, AgentState, CircuitState, Command, Event, PoolCounts, ProcessId, Task,
    TaskCounts, TaskId, TaskRules, TaskState, WorkerProcess,
};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The registry in Redis, as the master uses it.
#[derive(Clone)]
pub struct RedisRegistry {
    target: RedisTarget,
    keys: Keys,
    conn: ConnectionManager,
}

impl RedisRegistry {
    /// Connects; fails at once when Redis cannot be reached (callers decide on retries).
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

fn ids<T>(raw: Vec<String>, parse: fn(&str) -> Option<T>) -> Result<Vec<T>> {
    raw.iter()
        .map(|s| parse(s).ok_or_else(|| RegistryError::Malformed(format!("bad id {s:?}"))))
        .collect()
}

impl Registry for RedisRegistry {
    fn init_pools<'a>(&'a self, pools: &'a [(String, TaskRules)]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            if pools.is_empty() {
                return Ok(0);
            }
            // A worker registering again after a wipe puts its pool back in the set before
            // this runs, but only the master writes the rules: a pool counts as missing when
            // it was not in the set or its rules hash gained fields (HSET, not HMSET, answers
            // how many it added).
            let mut pipe = redis::pipe();
            for (name, rules) in pools {
                pipe.sadd(self.keys.pools(), name);
                pipe.cmd("HSET")
                    .arg(self.keys.pool_rules(name))
                    .arg(&hash::rules_fields(rules)[..]);
            }
            let answers: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
            let missing = answers.chunks(2).filter(|a| a.iter().any(|&n| n > 0));
            Ok(missing.count() as u64)
        })
    }

    fn reserve<'a>(&'a self, r: Reservation<'a>) -> BoxFuture<'a, Result<Option<ProcessId>>> {
        Box::pin(async move {
            let a = r.agent;
            let picked: Option<String> = invoke(&scripts::RESERVE, &self.keys)
                .arg(r.placement.as_str())
                .arg(a.agent_id.as_str())
                .arg(&a.pool_name)
                .arg(&a.role_type)
                .arg(&a.name)
                .arg(a.metadata.to_string())
                .arg(a.restart.map_or("", |p| p.as_str()))
                .arg(r.move_from.map_or("", |p| p.as_str()))
                .arg(if r.must_exist { "1" } else { "0" })
                .arg(if a.autoscaled { "1" } else { "" })
                .arg(a.secret_config.as_ref().map_or("", |s| s.as_str()))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(picked.and_then(|p| ProcessId::parse(&p)))
        })
    }

    fn release<'a>(&'a self, agent: &'a AgentId) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let flat: Option<Vec<String>> = invoke(&scripts::RELEASE, &self.keys)
                .arg(agent.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(flat.and_then(|h| hash::agent(&hash::from_flat(h))))
        })
    }

    fn drain<'a>(
        &'a self,
        process: &'a ProcessId,
        only_if_empty: bool,
    ) -> BoxFuture<'a, Result<Option<Vec<AgentId>>>> {
        Box::pin(async move {
            let agents: Option<Vec<String>> = invoke(&scripts::DRAIN, &self.keys)
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
            let agents: Vec<String> = invoke(&scripts::REAP, &self.keys)
                .arg(process.as_str())
                .arg(mode)
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
            let mut inv = invoke(&scripts::POOL_COUNTS, &self.keys);
            for (pool, capacity) in pools {
                inv.arg(pool).arg(capacity);
            }
            type Row = (String, u64, u64, u64, u64, u64, u64, u64, String);
            let rows: Vec<Row> = inv.invoke_async(&mut self.conn.clone()).await?;
            Ok(rows
                .into_iter()
                .map(
                    |(
                        pool,
                        process_count,
                        total,
                        free,
                        agents,
                        active,
                        queued,
                        running,
                        circuit,
                    )| {
                        PoolCounts {
                            pool,
                            process_count,
                            total_capacity: total,
                            available_capacity: free,
                            agent_count: agents,
                            active_worker_processes: active,
                            tasks: TaskCounts {
                                queued_tasks: queued,
                                running_tasks: running,
                                busy_agents: running,
                                circuit: circuit.parse().unwrap_or(CircuitState::Closed),
                            },
                        }
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
            Ok(hash::agent(&h))
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
                .filter_map(hash::agent)
                .collect();
            agents.sort_by(|a, b| a.id().cmp(b.id()));
            Ok(agents)
        })
    }

    fn process<'a>(&'a self, id: &'a ProcessId) -> BoxFuture<'a, Result<Option<WorkerProcess>>> {
        Box::pin(async move {
            let h: HashMap<String, String> =
                self.conn.clone().hgetall(self.keys.process(id)).await?;
            Ok(hash::process(&h))
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
                .filter_map(hash::process)
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
            &self.target,
            vec![self.keys.all_pool_events()],
            true,
        ))
    }

    fn stale(&self, timeout: Duration) -> BoxFuture<'_, Result<Staleness>> {
        Box::pin(async move {
            let (total, stale): (u64, Vec<String>) = invoke(&scripts::STALE, &self.keys)
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
            let held: i64 = invoke(&scripts::LOCK, &self.keys)
                .arg(name)
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
    ) -> BoxFuture<'a, Result<Option<Agent>>> {
        Box::pin(async move {
            let flat: Option<Vec<String>> = invoke(&scripts::AGENT_MARK, &self.keys)
                .arg(agent.as_str())
                .arg(status.as_str())
                .arg(error.unwrap_or(""))
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(flat.and_then(|h| hash::agent(&hash::from_flat(h))))
        })
    }

    fn undrain<'a>(&'a self, process: &'a ProcessId) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done: i64 = invoke(&scripts::UNDRAIN, &self.keys)
                .arg(process.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(done == 1)
        })
    }

    fn retire_idle<'a>(&'a self, r: Retirement<'a>) -> BoxFuture<'a, Result<Vec<AgentId>>> {
        Box::pin(async move {
            let ids: Vec<String> = invoke(&scripts::AGENT_RETIRE, &self.keys)
                .arg(r.pool)
                .arg(r.keep)
                .arg(u64::try_from(r.idle_for.as_millis()).unwrap_or(u64::MAX))
                .arg(r.most)
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(ids.iter().filter_map(|id| AgentId::parse(id)).collect())
        })
    }

    fn submit_tasks<'a>(&'a self, tasks: &'a [Task]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            if tasks.is_empty() {
                return Ok(0);
            }
            let mut inv = invoke(&scripts::TASK_SUBMIT, &self.keys);
            inv.arg(tasks.len());
            for t in tasks {
                inv.arg(&hash::task_args(t)[..]);
            }
            Ok(inv.invoke_async(&mut self.conn.clone()).await?)
        })
    }

    fn task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(async move {
            let h: HashMap<String, String> = self.conn.clone().hgetall(self.keys.task(id)).await?;
            Ok(hash::task(&h))
        })
    }

    fn cancel_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>> {
        Box::pin(async move {
            let status: Option<String> = invoke(&scripts::TASK_CANCEL, &self.keys)
                .arg(id.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(status.and_then(|s| s.parse().ok()))
        })
    }

    fn retry_task<'a>(&'a self, id: &'a TaskId) -> BoxFuture<'a, Result<Option<TaskState>>> {
        Box::pin(async move {
            let status: Option<String> = invoke(&scripts::TASK_RETRY, &self.keys)
                .arg(id.as_str())
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(status.and_then(|s| s.parse().ok()))
        })
    }

    fn tend_tasks<'a>(&'a self, pool: &'a str) -> BoxFuture<'a, Result<Tended>> {
        Box::pin(async move {
            let (due, expired): (u64, u64) = invoke(&scripts::TASK_TEND, &self.keys)
                .arg(pool)
                .invoke_async(&mut self.conn.clone())
                .await?;
            Ok(Tended { due, expired })
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
