//! Waiting for tasks to finish. A task's announcements wake its waiter at once; a slow poll of
//! the registry covers an announcement lost on the way.

use super::Tasks;
use crate::error::{MasterError, Result};
use agentpool_types::Task;
use std::time::Duration;

/// How often a waiter reads the registry when no announcement came.
const POLL: Duration = Duration::from_secs(1);

impl Tasks {
    /// Each task once finished, or as it stands when `limit` passes.
    pub async fn wait(&self, tasks: &[Task], limit: Duration) -> Result<Vec<Task>> {
        let waits = tasks.iter().map(|t| self.wait_one(t, limit));
        futures::future::join_all(waits).await.into_iter().collect()
    }

    async fn wait_one(&self, task: &Task, limit: Duration) -> Result<Task> {
        if task.status.is_final() {
            return Ok(task.clone());
        }
        let id = task.id();
        let registry = &self.core.registry;
        let done = self
            .core
            .hub
            .wait_every(id.as_str(), limit, POLL, || async {
                let t = registry.task(id).await?;
                Ok::<_, MasterError>(t.filter(|t| t.status.is_final()))
            })
            .await?;
        match done {
            Some(t) => Ok(t),
            None => Ok(registry.task(id).await?.unwrap_or_else(|| task.clone())),
        }
    }
}
