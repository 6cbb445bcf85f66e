//! [`Tasks`]: work for the pools' agents. Submitting writes each task to the store before
//! anything else (the store is the record of truth), then queues it in the registry, whose
//! one step hands it to an idle agent at once; an agent's worker reports each attempt, and its
//! next task comes back in the same step.
//!
//! - this file: submit (to a pool, to one agent, to every agent of a pool), read, cancel, retry.
//! - `wait`: waiting for tasks to finish, woken by their announcements.

mod wait;

use crate::core::Core;
use crate::error::{MasterError, Result};
use agentpool_store::{Inserted, TaskFilter};
use agentpool_types::{AgentId, AgentState, Task, TaskId, TaskSpec, TaskState, now_rfc3339};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Tasks {
    core: Arc<Core>,
}

/// What a submission answers: each task as it stands, and whether it was new.
pub struct Submitted {
    pub tasks: Vec<Task>,
    /// False for a task an idempotency key found already.
    pub new: Vec<bool>,
}

impl Tasks {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Records and queues tasks of one pool; with `wait`, answers once they are all finished
    /// or the wait is over, whichever comes first.
    pub async fn submit(&self, specs: Vec<TaskSpec>, wait: Option<Duration>) -> Result<Submitted> {
        self.core.ensure_running()?;
        let now = now_rfc3339();
        let tasks: Vec<Task> = specs
            .into_iter()
            .map(|s| Task::queued(s, now.clone()))
            .collect();
        let inserted = self.core.store.insert_tasks(&tasks).await?;
        let mut fresh = Vec::new();
        let mut answer = Vec::with_capacity(tasks.len());
        let mut new = Vec::with_capacity(tasks.len());
        for (task, outcome) in tasks.into_iter().zip(inserted) {
            match outcome {
                Inserted::New => {
                    fresh.push(task.clone());
                    answer.push(task);
                    new.push(true);
                }
                Inserted::Existing(existing) => {
                    answer.push(*existing);
                    new.push(false);
                }
            }
        }
        // Announced first: an idle agent may take a task within the submit itself.
        crate::background::announce::tasks_queued(&self.core, &fresh);
        self.core.registry.submit_tasks(&fresh).await?;
        self.core.autoscale_soon.notify_one();
        let tasks = match wait {
            Some(limit) => self.wait(&answer, limit).await?,
            None => self.current(answer).await?,
        };
        Ok(Submitted { tasks, new })
    }

    /// The agents a task for `agent` would go to: it must exist and run.
    pub async fn target(&self, agent: &AgentId) -> Result<String> {
        let found = self.core.registry.agent(agent).await?;
        found
            .map(|a| a.spec.pool_name)
            .ok_or_else(|| MasterError::UnknownAgent(agent.to_string()))
    }

    /// The running agents of a pool, for a broadcast.
    pub async fn running_agents(&self, pool: &str) -> Result<Vec<AgentId>> {
        let name = self.core.pool(pool)?.name().to_owned();
        let agents = self.core.registry.agents(&[name]).await?;
        Ok(agents
            .into_iter()
            .filter(|a| matches!(a.status, AgentState::Idle | AgentState::Busy))
            .map(|a| a.spec.agent_id)
            .collect())
    }

    /// A task as it stands: the registry while it lives there, else the store.
    pub async fn get(&self, id: &TaskId) -> Result<Task> {
        if let Some(task) = self.core.registry.task(id).await? {
            return Ok(task);
        }
        self.core
            .store
            .task(id)
            .await?
            .ok_or_else(|| MasterError::UnknownTask(id.to_string()))
    }

    /// Tasks newest first, from the store.
    pub async fn list(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        Ok(self.core.store.tasks(filter).await?)
    }

    /// A queued task never runs; a running one is stopped by its worker, which reports it.
    pub async fn cancel(&self, id: &TaskId) -> Result<Task> {
        match self.core.registry.cancel_task(id).await? {
            Some(_) => self.get(id).await,
            // Not in the registry: finished long ago (the store has it), or unknown.
            None => self.get(id).await,
        }
    }

    /// A failed task back in line, attempts reset.
    pub async fn retry(&self, id: &TaskId) -> Result<Task> {
        match self.core.registry.retry_task(id).await? {
            Some(TaskState::Queued) => self.get(id).await,
            Some(status) => Err(MasterError::TaskNotFailed {
                task: id.to_string(),
                status,
            }),
            None => self.retry_from_store(id).await,
        }
    }

    /// A failed task the registry no longer holds: queued again from the store's record.
    async fn retry_from_store(&self, id: &TaskId) -> Result<Task> {
        let task = self
            .core
            .store
            .task(id)
            .await?
            .ok_or_else(|| MasterError::UnknownTask(id.to_string()))?;
        if task.status != TaskState::Failed {
            return Err(MasterError::TaskNotFailed {
                task: id.to_string(),
                status: task.status,
            });
        }
        let again = Task {
            attempts: 0,
            error: None,
            output: None,
            started_at: None,
            finished_at: None,
            ..Task::queued(task.spec.clone(), task.created_at.clone())
        };
        self.core.record(agentpool_store::Update::Task(
            agentpool_types::TaskChange::of(&again),
        ));
        crate::background::announce::tasks_queued(&self.core, std::slice::from_ref(&again));
        self.core
            .registry
            .submit_tasks(std::slice::from_ref(&again))
            .await?;
        self.get(id).await
    }

    /// Each task as the registry shows it now (it may have started already).
    async fn current(&self, tasks: Vec<Task>) -> Result<Vec<Task>> {
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            let now = self.core.registry.task(task.id()).await?;
            out.push(now.unwrap_or(task));
        }
        Ok(out)
    }
}
