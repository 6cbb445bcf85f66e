//! What the task bodies share: quick rules, tasks, fake workers that read their commands, the
//! event stream, and the two sets the traits do not show (idle agents, dead tasks).

use crate::common::{Backend, Env, WAIT};
use agentpool_registry::{Finished, Ready, Tended};
use agentpool_testkit::wait_for;
use agentpool_types::{
    AgentId, Command, CommandKind, Event, EventKind, ProcessId, Task, TaskChange, TaskCounts,
    TaskId, TaskOutcome, TaskReport, TaskRules, TaskRun, TaskSpec, TaskState, now_rfc3339,
};
use redis::AsyncCommands;
use tokio::sync::mpsc::UnboundedReceiver;

pub const POOL: &str = "dev";

/// Rules that keep the tests quick: retries after 50 ms, no circuit breaker, long leases.
pub fn rules() -> TaskRules {
    TaskRules {
        default_timeout_ms: 60_000,
        lease_grace_ms: 1_000,
        retry_backoff_ms: 50,
        retry_backoff_max_ms: 200,
        circuit_failures: 0,
        circuit_cooldown_ms: 100,
        final_ttl_ms: 3_600_000,
    }
}

pub async fn init(env: &Env, rules: TaskRules) {
    env.reg.init_pools(&[(POOL.into(), rules)]).await.unwrap();
}

/// A task of the pool, at `priority`, with three attempts.
pub fn task(priority: u8) -> Task {
    let spec = TaskSpec {
        task_id: TaskId::new(),
        pool_name: POOL.into(),
        target_agent_id: None,
        priority,
        input: serde_json::json!({"n": priority}),
        max_attempts: 3,
        timeout_secs: None,
        idempotency_key: None,
    };
    Task::queued(spec, now_rfc3339())
}

/// A task with at most `max_attempts`.
pub fn task_max(max_attempts: u32) -> Task {
    let mut t = task(5);
    t.spec.max_attempts = max_attempts;
    t
}

/// A task only `agent` may run.
pub fn targeted(agent: &AgentId) -> Task {
    let mut t = task(5);
    t.spec.target_agent_id = Some(agent.clone());
    t.agent_id = Some(agent.clone());
    t
}

pub async fn submit(env: &Env, tasks: &[&Task]) -> u64 {
    let tasks: Vec<Task> = tasks.iter().map(|t| (*t).clone()).collect();
    env.reg.submit_tasks(&tasks).await.unwrap()
}

pub async fn get(env: &Env, id: &TaskId) -> Task {
    env.reg.task(id).await.unwrap().expect("known task")
}

pub async fn status(env: &Env, id: &TaskId) -> (TaskState, u32) {
    let t = get(env, id).await;
    (t.status, t.attempts)
}

pub async fn counts(env: &Env) -> TaskCounts {
    let pools = [(POOL.to_owned(), 10)];
    env.reg.pool_counts(&pools).await.unwrap()[0].tasks
}

pub async fn tend(env: &Env) -> Tended {
    env.reg.tend_tasks(POOL).await.unwrap()
}

/// Tends the pool until `id` is where `want` says: how a test waits out a backoff, a lease
/// or a cooldown without sleeping.
pub async fn tend_until(env: &Env, id: &TaskId, want: (TaskState, u32)) {
    wait_for(&format!("{id} to reach {want:?}"), WAIT, || async move {
        tend(env).await;
        (status(env, id).await == want).then_some(())
    })
    .await;
}

/// The attempt `agent` runs, as its worker knows it from the command it missed here.
pub async fn current_run(env: &Env, agent: &AgentId) -> TaskRun {
    let a = env.reg.agent(agent).await.unwrap().expect("known agent");
    let t = get(env, &a.current_task.expect("a busy agent")).await;
    TaskRun {
        task_id: t.spec.task_id.clone(),
        agent_id: agent.clone(),
        attempt: t.attempts,
        timeout_ms: 60_000,
        input: t.spec.input,
    }
}

/// A fake worker with its agents, listening to its commands.
pub struct Worker {
    pub pid: ProcessId,
    pub agents: Vec<AgentId>,
    pub commands: UnboundedReceiver<Command>,
}

/// Registers a worker with room for exactly `n` agents and places `n` fresh agents on it
/// (every earlier worker is full, so placement has no other choice).
pub async fn worker(env: &Env, n: u32) -> Worker {
    let pid = env.worker(POOL, n).await;
    let commands = env.cp.commands(POOL, &pid).await.unwrap();
    let mut agents = Vec::new();
    for _ in 0..n {
        let (a, p) = env.place(POOL).await;
        assert_eq!(p, pid, "placed on the newest worker");
        agents.push(a);
    }
    Worker {
        pid,
        agents,
        commands,
    }
}

impl Worker {
    pub fn agent(&self, i: usize) -> &AgentId {
        &self.agents[i]
    }

    /// Agent `i` came up.
    pub async fn ready(&self, env: &Env, i: usize) -> Ready {
        env.cp
            .agent_ready(&self.pid, &self.agents[i], None)
            .await
            .unwrap()
    }

    /// Agent `i` came up and took a task at once.
    pub async fn ready_run(&self, env: &Env, i: usize) -> TaskRun {
        match self.ready(env, i).await {
            Ready::Run { run, .. } => run,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    /// The next command this worker is sent.
    pub async fn command(&mut self) -> Command {
        let got = tokio::time::timeout(WAIT, self.commands.recv()).await;
        got.expect("a command in time").expect("subscription open")
    }

    /// The next command, which must be a `run_task`.
    pub async fn run(&mut self) -> TaskRun {
        let cmd = self.command().await;
        let CommandKind::RunTask(run) = cmd.kind else {
            panic!("expected run_task, got {cmd:?}");
        };
        assert_eq!(cmd.id, format!("{}:run", run.task_id));
        run
    }

    pub async fn finish(&self, env: &Env, run: &TaskRun, outcome: TaskOutcome) -> Finished {
        let report = TaskReport {
            task_id: run.task_id.clone(),
            agent_id: run.agent_id.clone(),
            process_id: self.pid.clone(),
            attempt: run.attempt,
            outcome,
        };
        env.cp.finish_task(&report).await.unwrap()
    }

    pub async fn succeed(&self, env: &Env, run: &TaskRun) -> Finished {
        let output = serde_json::json!({"done": run.task_id.to_string()});
        self.finish(env, run, TaskOutcome::Succeeded(output)).await
    }

    pub async fn fail(&self, env: &Env, run: &TaskRun) -> Finished {
        self.finish(env, run, TaskOutcome::Failed("boom".into()))
            .await
    }
}

/// Reads the event stream until `id` is announced with `status`; earlier events are skipped.
pub async fn announced(
    events: &mut UnboundedReceiver<Event>,
    id: &TaskId,
    status: TaskState,
) -> (String, TaskChange) {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            if let EventKind::TaskChanged(c) = e.kind
                && c.task_id == *id
                && c.status == status
            {
                return (e.id, c);
            }
        }
        panic!("event stream ended");
    });
    found
        .await
        .unwrap_or_else(|_| panic!("{id} never announced {status}"))
}

/// The pool's idle agents, longest idle first.
pub async fn idle(env: &Env) -> Vec<AgentId> {
    match &env.backend {
        Backend::Redis(_, conn) => {
            let key = format!("pool:{POOL}:idle");
            let ids: Vec<String> = conn.clone().zrange(key, 0, -1).await.unwrap();
            ids.iter().filter_map(|a| AgentId::parse(a)).collect()
        }
        Backend::Embedded(reg) | Backend::Socket(reg, ..) => reg.state().idle_agents(POOL),
    }
}

/// The pool's dead set.
pub async fn dead(env: &Env) -> Vec<TaskId> {
    match &env.backend {
        Backend::Redis(_, conn) => {
            let key = format!("pool:{POOL}:dead");
            let ids: Vec<String> = conn.clone().zrange(key, 0, -1).await.unwrap();
            ids.iter().filter_map(|t| TaskId::parse(t)).collect()
        }
        Backend::Embedded(reg) | Backend::Socket(reg, ..) => reg.state().dead_tasks(POOL),
    }
}
