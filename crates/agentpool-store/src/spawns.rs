//! [`SpawnStore`]: every spawn request, one agent or a thousand, is recorded with its agents in
//! one transaction, so a request is all there or not at all. A request left `pending` by a
//! master that died was never answered: without an idempotency key it is rolled back; with one,
//! the client's retry finishes it.

use crate::model::AgentRow;
use crate::{BoxFuture, Result};
use agentpool_types::{AgentId, AgentSpec};
use chrono::{DateTime, Utc};

/// How far a spawn request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Recorded; its agents are being placed (or its master died doing so).
    Pending,
    /// Answered with its agents.
    Done,
    /// Answered with an error; its agents were removed or terminated.
    Failed,
    /// Never answered (its master died) and had no idempotency key: its agents were terminated.
    RolledBack,
}

agentpool_types::text_enum!(RequestState {
    Pending => "pending",
    Done => "done",
    Failed => "failed",
    RolledBack => "rolled_back",
});

/// One spawn request.
#[derive(Clone, Debug, PartialEq)]
pub struct SpawnRequest {
    pub request_id: String,
    /// The client's `Idempotency-Key`, unique while the request is kept (a day).
    pub idempotency_key: Option<String>,
    /// What was asked, so a retry with the same key and another body is told apart.
    pub body_hash: String,
    pub pool_name: String,
    pub count: u32,
    /// The master that took the request.
    pub master_id: String,
    pub state: RequestState,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SpawnRequest {
    /// A new pending request, stamped now.
    pub fn new(
        key: Option<String>,
        body_hash: String,
        pool_name: &str,
        count: u32,
        master_id: &str,
    ) -> Self {
        let now = Utc::now();
        Self {
            request_id: uuid::Uuid::now_v7().to_string(),
            idempotency_key: key,
            body_hash,
            pool_name: pool_name.to_owned(),
            count,
            master_id: master_id.to_owned(),
            state: RequestState::Pending,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What [`SpawnStore::begin_spawn`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Begun {
    /// Recorded, with its agents.
    New,
    /// A request with the same idempotency key exists already: nothing was written.
    Existing(SpawnRequest),
}

pub trait SpawnStore: Send + Sync + 'static {
    /// Records the request and its agents (`desired_state = running`, `status = pending`, each
    /// with its `spawned` event) in one transaction; or, when its idempotency key is known
    /// already, writes nothing and returns the request that holds it.
    fn begin_spawn<'a>(
        &'a self,
        request: &'a SpawnRequest,
        agents: &'a [AgentSpec],
    ) -> BoxFuture<'a, Result<Begun>>;

    /// Sets how the request ended.
    fn finish_spawn<'a>(
        &'a self,
        request_id: &'a str,
        state: RequestState,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;

    /// The agents of a request, in the order they were asked for.
    fn request_agents<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<Vec<AgentRow>>>;

    /// Requests still pending, oldest first.
    fn pending_spawns(&self) -> BoxFuture<'_, Result<Vec<SpawnRequest>>>;

    /// Deletes agents that were never placed (a refused spawn keeps its request and error,
    /// not agents that never existed). Returns how many rows went.
    fn forget_agents<'a>(&'a self, ids: &'a [AgentId]) -> BoxFuture<'a, Result<u64>>;
}
