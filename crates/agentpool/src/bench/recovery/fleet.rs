//! The bench's agents, and the worker each run signals: a full worker holding only fresh
//! agents of the bench, checked in `/proc` to be the master's child.

use super::procfs;
use super::tally::Outcome;
use crate::bench::{ops, tracked::Api};
use agentpool_types::{Agent, AgentId, AgentState, ProcessId, ProcessState, WorkerProcess};
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Agents on the signalled worker: a full worker of the bench pool.
pub const AGENTS_PER_RUN: u64 = 10;
/// Bulk spawns of [`AGENTS_PER_RUN`] tried per run before giving up on finding a worker that
/// holds only the bench's agents (packing first fills workers that other agents share).
const MAX_BATCHES: u32 = 5;
/// Pause between two polls of the agent list while timing a recovery.
const POLL: Duration = Duration::from_millis(2);
/// A recovery slower than this is reported as not recovered.
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

/// What the bench spawned and signalled.
pub struct Bench {
    api: Api,
    pool: String,
    master_pid: u32,
    /// Spawned agents no run has used yet. Each run takes fresh ones: an agent moved before
    /// carries a restart count, and the master delays its next restart (then quarantines it),
    /// which would time the restart backoff instead of the recovery.
    fresh: HashSet<AgentId>,
    /// Agents spawned in all.
    pub spawned: usize,
    /// Workers already signalled, never picked again (a frozen one may still look full).
    signalled: HashSet<ProcessId>,
}

impl Bench {
    pub fn new(api: Api, pool: String, master_pid: u32) -> Self {
        Self {
            api,
            pool,
            master_pid,
            fresh: HashSet::new(),
            spawned: 0,
            signalled: HashSet::new(),
        }
    }

    /// A running worker holding [`AGENTS_PER_RUN`] idle agents, all fresh ones of the bench,
    /// spawning more agents until one exists. The worker is marked as signalled.
    pub async fn prepare(&mut self) -> Result<Victim> {
        for batch in 0..=MAX_BATCHES {
            if let Some(victim) = self.find_victim().await? {
                self.signalled.insert(victim.process_id.clone());
                return Ok(victim);
            }
            if batch == MAX_BATCHES {
                break;
            }
            let agents = ops::spawn_many(&self.api, &self.pool, AGENTS_PER_RUN).await?;
            let ids: Vec<AgentId> = agents.into_iter().map(|a| a.spec.agent_id).collect();
            self.spawned += ids.len();
            self.fresh.extend(ids);
        }
        bail!(
            "after {MAX_BATCHES} spawns of {AGENTS_PER_RUN}, no worker of pool {} holds \
             {AGENTS_PER_RUN} fresh agents of the bench alone (is its max_agents_per_process 10?)",
            self.pool
        )
    }

    async fn find_victim(&self) -> Result<Option<Victim>> {
        let query = [("pool", self.pool.as_str())];
        let processes: Vec<WorkerProcess> = self.api.get(&["processes"], &query).await?;
        let agents = self.agents().await?;
        let candidates = processes.iter().filter(|p| {
            p.status == ProcessState::Running
                && u64::from(p.agent_count) == AGENTS_PER_RUN
                && !self.signalled.contains(&p.process_id)
        });
        for p in candidates {
            let hosted: Vec<&Agent> = agents
                .iter()
                .filter(|a| a.process_id.as_ref() == Some(&p.process_id))
                .collect();
            let all_ours = hosted
                .iter()
                .all(|a| self.fresh.contains(&a.spec.agent_id) && a.status == AgentState::Idle);
            if hosted.len() as u64 == AGENTS_PER_RUN && all_ours {
                let victim = Victim::check(p, self.master_pid)?;
                let agents = hosted.iter().map(|a| a.spec.agent_id.clone()).collect();
                return Ok(Some(Victim { agents, ..victim }));
            }
        }
        Ok(None)
    }

    /// Terminates a finished run's agents, so the pool does not grow from run to run.
    pub async fn retire(&mut self, victim: &Victim) -> Result<()> {
        let ids: Vec<AgentId> = victim.agents.iter().cloned().collect();
        for id in &ids {
            self.fresh.remove(id);
        }
        ops::terminate_all(&self.api, &ids).await?;
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<Agent>> {
        self.api
            .get(&["agents"], &[("pool", self.pool.as_str())])
            .await
    }

    /// Polls the pool's agents until all of the victim's run in another worker.
    pub async fn wait_moved(&self, victim: &Victim, start: Instant) -> Result<Outcome> {
        loop {
            let agents = self.agents().await?;
            let seen = start.elapsed();
            if let Some(outcome) = victim.outcome(&agents, seen) {
                return Ok(outcome);
            }
            if seen >= RECOVERY_DEADLINE {
                return Ok(Outcome::TimedOut);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The worker a run signals.
pub struct Victim {
    pub process_id: ProcessId,
    pub pid: Pid,
    /// From `/proc/<pid>/stat`: tells a reused pid from the worker.
    start_time: u64,
    agents: HashSet<AgentId>,
}

impl Victim {
    /// Refuses a pid that is not a live child of the master on this machine.
    fn check(p: &WorkerProcess, master_pid: u32) -> Result<Self> {
        let raw = i32::try_from(p.pid)
            .ok()
            .filter(|&pid| pid > 1)
            .with_context(|| format!("worker {} reports pid {}", p.process_id, p.pid))?;
        let stat = procfs::child_of(p.pid, master_pid)
            .with_context(|| format!("worker {}", p.process_id))?;
        Ok(Self {
            process_id: p.process_id.clone(),
            pid: Pid::from_raw(raw),
            start_time: stat.start_time,
            agents: HashSet::new(),
        })
    }

    /// The agents on this worker, all the bench's.
    pub fn agents(&self) -> impl Iterator<Item = &AgentId> {
        self.agents.iter()
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(self.pid, sig).with_context(|| format!("sending {sig} to worker pid {}", self.pid))
    }

    /// The worker is gone: no `/proc` entry, a zombie, or the pid now names another process.
    pub fn exited(&self) -> Result<bool> {
        procfs::exited(self.pid.as_raw().unsigned_abs(), self.start_time)
    }

    /// `Some` once the run is over: all agents run in another worker, or one was lost.
    fn outcome(&self, agents: &[Agent], seen: Duration) -> Option<Outcome> {
        let mut moved = 0;
        for a in agents
            .iter()
            .filter(|a| self.agents.contains(&a.spec.agent_id))
        {
            if a.status.is_terminal() {
                return Some(Outcome::Lost(a.spec.agent_id.clone(), a.status));
            }
            let elsewhere = a.process_id.as_ref().is_some_and(|p| *p != self.process_id);
            if a.status.is_running() && elsewhere {
                moved += 1;
            }
        }
        (moved == self.agents.len()).then_some(Outcome::Moved(seen))
    }
}
