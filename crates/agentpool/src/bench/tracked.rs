//! The benches' handle on the master: it records every agent a bench spawned until it is
//! terminated, and every task it submitted until it is known to have finished, so whatever
//! ends the bench (an error, a signal, a panic, a closed pipe) the agents still running are
//! known and can be stopped, and the tasks still queued can be cancelled.

use crate::cli::client::Client;
use agentpool_types::{Agent, AgentId, Task, TaskId, TaskList};
use anyhow::{Result, anyhow};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Reads go straight to the master; spawns and submissions go through [`Api::spawn`] and
/// [`Api::submit`], which track what they started.
#[derive(Clone)]
pub struct Api {
    client: Client,
    state: Arc<Mutex<State>>,
    /// Signalled each time a spawn request ends.
    settled: Arc<Notify>,
}

#[derive(Default)]
pub struct State {
    /// Agents spawned and not yet known to be terminated.
    live: HashSet<AgentId>,
    /// Tasks submitted and not yet known to have finished.
    unfinished: HashSet<TaskId>,
    /// Spawn and submit requests sent and not answered yet: the master may be placing their
    /// agents or queuing their tasks.
    in_flight: usize,
}

impl Api {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            state: Arc::default(),
            settled: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.client.get(path, query).await
    }

    /// POSTs a spawn and records the agents it returns. The request runs as its own task, so
    /// a bench cancelled mid-request (Ctrl-C) still learns the ids of the agents the master
    /// placed for it; [`Api::settle`] waits for such requests.
    pub async fn spawn<T>(&self, path: &[&str], body: &impl Serialize) -> Result<T>
    where
        T: DeserializeOwned + Send + 'static + Started,
    {
        self.post_tracked(path, None, body).await
    }

    /// POSTs tasks (one, a batch, a broadcast), with `?wait=` when given, and records those
    /// that have not finished, as [`Api::spawn`] does agents.
    pub async fn submit<T>(
        &self,
        path: &[&str],
        wait: Option<Duration>,
        body: &impl Serialize,
    ) -> Result<T>
    where
        T: DeserializeOwned + Send + 'static + Started,
    {
        self.post_tracked(path, wait, body).await
    }

    async fn post_tracked<T>(
        &self,
        path: &[&str],
        wait: Option<Duration>,
        body: &impl Serialize,
    ) -> Result<T>
    where
        T: DeserializeOwned + Send + 'static + Started,
    {
        // Owned, since the request runs as its own task.
        let client = wait.map_or_else(|| self.client.clone(), |w| self.client.patient(w));
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        let wait = wait.map(|w| format!("{:.3}", w.as_secs_f64()));
        let body = serde_json::to_value(body)?;
        let request = async move {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let query: Vec<(&str, &str)> = wait.iter().map(|w| ("wait", w.as_str())).collect();
            client.post::<T>(&path, &query, &body).await
        };
        self.tracked(request).await
    }

    async fn tracked<T, F>(&self, request: F) -> Result<T>
    where
        T: Send + 'static + Started,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let pending = InFlight::begin(self.clone());
        let task = tokio::spawn(async move {
            let result = request.await;
            if let Ok(started) = &result {
                started.record(&mut pending.api.lock());
            }
            drop(pending);
            result
        });
        task.await
            .map_err(|e| anyhow!("request task failed: {e}"))?
    }

    /// Records that an agent no longer runs.
    pub fn forget(&self, id: &AgentId) {
        self.lock().live.remove(id);
    }

    /// Records that tasks have finished (or are gone).
    pub fn finished<'a>(&self, ids: impl IntoIterator<Item = &'a TaskId>) {
        let mut state = self.lock();
        for id in ids {
            state.unfinished.remove(id);
        }
    }

    /// The tasks submitted and not known to have finished.
    pub fn unfinished(&self) -> Vec<TaskId> {
        self.lock().unfinished.iter().cloned().collect()
    }

    /// The agents spawned and not yet terminated.
    pub fn live(&self) -> Vec<AgentId> {
        self.lock().live.iter().cloned().collect()
    }

    /// Waits until no request is in flight, so [`Api::live`] names every agent and
    /// [`Api::unfinished`] every task.
    pub async fn settle(&self) {
        loop {
            let settled = self.settled.notified();
            if self.lock().in_flight == 0 {
                return;
            }
            settled.await;
        }
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: each update is one call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a spawn request from its start until it ended, however it ended.
struct InFlight {
    api: Api,
}

impl InFlight {
    fn begin(api: Api) -> Self {
        api.lock().in_flight += 1;
        Self { api }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.api.lock().in_flight -= 1;
        self.api.settled.notify_waiters();
    }
}

/// What a spawn or submit route answers, recorded as started by the bench.
pub trait Started {
    fn record(&self, state: &mut State);
}

impl Started for Agent {
    fn record(&self, state: &mut State) {
        state.live.insert(self.spec.agent_id.clone());
    }
}

impl Started for Vec<Agent> {
    fn record(&self, state: &mut State) {
        self.iter().for_each(|a| a.record(state));
    }
}

impl Started for Task {
    fn record(&self, state: &mut State) {
        if !self.status.is_final() {
            state.unfinished.insert(self.spec.task_id.clone());
        }
    }
}

impl Started for TaskList {
    fn record(&self, state: &mut State) {
        self.tasks.iter().for_each(|t| t.record(state));
    }
}
