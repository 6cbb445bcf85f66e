//! Every Redis key name. These are what users type into `redis-cli`: keep them exact.

use agentpool_types::{AgentId, ProcessId, TaskId};

/// Key names under an optional prefix.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix, which the Lua scripts need to build the keys of a process they picked.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Set of configured pool names.
    pub fn pools(&self) -> String {
        format!("{}pools", self.prefix)
    }
    /// Zset of a pool's workers in placement, scored by free slots.
    pub fn pool_processes(&self, pool: &str) -> String {
        format!("{}pool:{pool}:processes", self.prefix)
    }
    /// Set of a pool's agent ids.
    pub fn pool_agents(&self, pool: &str) -> String {
        format!("{}pool:{pool}:agents", self.prefix)
    }
    /// Pub/sub channel of pool-wide commands.
    pub fn pool_commands(&self, pool: &str) -> String {
        format!("{}pool:{pool}:commands", self.prefix)
    }
    /// Pub/sub channel of a pool's events.
    pub fn pool_events(&self, pool: &str) -> String {
        format!("{}pool:{pool}:events", self.prefix)
    }
    /// Pattern matching every pool's event channel.
    pub fn all_pool_events(&self) -> String {
        format!("{}pool:*:events", self.prefix)
    }
    /// Hash of one worker.
    pub fn process(&self, id: &ProcessId) -> String {
        format!("{}process:{id}", self.prefix)
    }
    /// Set of agents assigned to one worker: the assignment of record.
    pub fn process_agents(&self, id: &ProcessId) -> String {
        format!("{}process:{id}:agents", self.prefix)
    }
    /// Pub/sub channel of commands for one worker.
    pub fn process_commands(&self, id: &ProcessId) -> String {
        format!("{}process:{id}:commands", self.prefix)
    }
    /// Zset of every worker, scored by the Redis time (ms) of its last heartbeat.
    pub fn heartbeats(&self) -> String {
        format!("{}processes:heartbeats", self.prefix)
    }
    /// A lock with a time to live, such as the reaper's (`lock:reaper`).
    pub fn lock(&self, name: &str) -> String {
        format!("{}lock:{name}", self.prefix)
    }
    /// Hash of one agent.
    pub fn agent(&self, id: &AgentId) -> String {
        format!("{}agent:{id}", self.prefix)
    }
    /// Zset of tasks waiting for this one agent, by priority then age.
    pub fn agent_queue(&self, id: &AgentId) -> String {
        format!("{}agent:{id}:queue", self.prefix)
    }
    /// Hash of one task.
    pub fn task(&self, id: &TaskId) -> String {
        format!("{}task:{id}", self.prefix)
    }
    /// Zset of a pool's queued tasks, by priority then age.
    pub fn pool_queue(&self, pool: &str) -> String {
        format!("{}pool:{pool}:queue", self.prefix)
    }
    /// Zset of a pool's tasks waiting for one agent (counted, not served from here).
    pub fn pool_asked(&self, pool: &str) -> String {
        format!("{}pool:{pool}:asked", self.prefix)
    }
    /// Zset of a pool's tasks waiting out a retry backoff, by when they are due.
    pub fn pool_delayed(&self, pool: &str) -> String {
        format!("{}pool:{pool}:delayed", self.prefix)
    }
    /// Zset of a pool's running attempts, by lease deadline (Redis time, ms).
    pub fn pool_running(&self, pool: &str) -> String {
        format!("{}pool:{pool}:running", self.prefix)
    }
    /// Zset of a pool's idle agents, by when they became idle.
    pub fn pool_idle(&self, pool: &str) -> String {
        format!("{}pool:{pool}:idle", self.prefix)
    }
    /// Zset of a pool's failed tasks (the dead set), by when they failed.
    pub fn pool_dead(&self, pool: &str) -> String {
        format!("{}pool:{pool}:dead", self.prefix)
    }
    /// Hash of a pool's circuit breaker: state, failures, opened_ms, trial.
    pub fn pool_circuit(&self, pool: &str) -> String {
        format!("{}pool:{pool}:circuit", self.prefix)
    }
    /// Hash of a pool's task rules, written by the master.
    pub fn pool_rules(&self, pool: &str) -> String {
        format!("{}pool:{pool}:rules", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_design_schema() {
        let k = Keys::default();
        let p = ProcessId::parse("p1").unwrap();
        let a = AgentId::parse("a1").unwrap();
        assert_eq!(k.pools(), "pools");
        assert_eq!(k.pool_processes("dev"), "pool:dev:processes");
        assert_eq!(k.pool_agents("dev"), "pool:dev:agents");
        assert_eq!(k.pool_commands("dev"), "pool:dev:commands");
        assert_eq!(k.pool_events("dev"), "pool:dev:events");
        assert_eq!(k.process(&p), "process:p1");
        assert_eq!(k.process_agents(&p), "process:p1:agents");
        assert_eq!(k.process_commands(&p), "process:p1:commands");
        assert_eq!(k.heartbeats(), "processes:heartbeats");
        assert_eq!(k.agent(&a), "agent:a1");
        assert_eq!(Keys::new("t1:").agent(&a), "t1:agent:a1");
    }
}
