//! [`crate::SpawnStore`] for both backends: a request and all its agents in one transaction.

use agentpool_types::{AgentId, AgentSpec};
use chrono::Utc;
use sqlx::types::Json;

use super::records::{AgentRecord, SpawnRecord, convert};
use super::{PgStore, SqliteStore};
use crate::error::Result;
use crate::model::AgentRow;
use crate::spawns::{Begun, RequestState, SpawnRequest};

/// Agents per multi-row INSERT: far below either database's limit on bound parameters.
const INSERT_CHUNK: usize = 500;

mod q {
    pub const INSERT_REQUEST: &str = "INSERT INTO spawn_requests (request_id, idempotency_key, \
         body_hash, pool_name, count, master_id, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)";
    pub const BY_KEY: &str = "SELECT * FROM spawn_requests WHERE idempotency_key = $1";
    pub const INSERT_AGENTS: &str = "INSERT INTO agents (agent_id, pool_name, role_type, name, \
         metadata, restart, autoscaled, secret_config, request_id, desired_state, status, restarts, created_at, updated_at) ";
    pub const FINISH: &str =
        "UPDATE spawn_requests SET state = $2, error = $3, updated_at = $4 WHERE request_id = $1";
    pub const AGENTS: &str = "SELECT * FROM agents WHERE request_id = $1 ORDER BY agent_id";
    pub const PENDING: &str =
        "SELECT * FROM spawn_requests WHERE state = 'pending' ORDER BY created_at, request_id";
    pub const FORGET: &str = "DELETE FROM agents WHERE agent_id = $1";
}

/// Implements [`crate::SpawnStore`] for a struct with a `pool` field of the given database.
macro_rules! spawn_store {
    ($store:ty, $db:ty) => {
        impl $crate::SpawnStore for $store {
            fn begin_spawn<'a>(
                &'a self,
                request: &'a SpawnRequest,
                agents: &'a [AgentSpec],
            ) -> $crate::BoxFuture<'a, Result<Begun>> {
                Box::pin($crate::sql::bounded(async move {
                    if let Some(existing) = self.by_key(request).await? {
                        return Ok(Begun::Existing(existing));
                    }
                    let mut tx = self.pool.begin().await?;
                    let inserted = sqlx::query(q::INSERT_REQUEST)
                        .bind(&request.request_id)
                        .bind(request.idempotency_key.as_deref())
                        .bind(&request.body_hash)
                        .bind(&request.pool_name)
                        .bind(i64::from(request.count))
                        .bind(&request.master_id)
                        .bind(request.created_at)
                        .execute(&mut *tx)
                        .await;
                    if let Err(e) = inserted {
                        // Another request with the same key won the race: answer with it.
                        drop(tx);
                        return match self.by_key(request).await? {
                            Some(existing) => Ok(Begun::Existing(existing)),
                            None => Err(e.into()),
                        };
                    }
                    for chunk in agents.chunks(INSERT_CHUNK) {
                        let mut insert = sqlx::QueryBuilder::<$db>::new(q::INSERT_AGENTS);
                        let now = Utc::now();
                        insert.push_values(chunk, |mut row, a| {
                            row.push_bind(a.agent_id.as_str())
                                .push_bind(&a.pool_name)
                                .push_bind(&a.role_type)
                                .push_bind(&a.name)
                                .push_bind(Json(&a.metadata))
                                .push_bind(a.restart.map(|r| r.as_str()))
                                .push_bind(a.autoscaled)
                                .push_bind(a.secret_config.as_ref().map(|s| s.as_str()))
                                .push_bind(&request.request_id)
                                .push_bind("running")
                                .push_bind("pending")
                                .push_bind(0_i64)
                                .push_bind(now)
                                .push_bind(now);
                        });
                        insert.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(Begun::New)
                }))
            }

            fn finish_spawn<'a>(
                &'a self,
                request_id: &'a str,
                state: RequestState,
                error: Option<&'a str>,
            ) -> $crate::BoxFuture<'a, Result<()>> {
                Box::pin($crate::sql::bounded(async move {
                    sqlx::query(q::FINISH)
                        .bind(request_id)
                        .bind(state.as_str())
                        .bind(error)
                        .bind(Utc::now())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }))
            }

            fn request_agents<'a>(
                &'a self,
                request_id: &'a str,
            ) -> $crate::BoxFuture<'a, Result<Vec<AgentRow>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<AgentRecord> = sqlx::query_as(q::AGENTS)
                        .bind(request_id)
                        .fetch_all(&self.pool)
                        .await?;
                    convert(rows)
                }))
            }

            fn pending_spawns(&self) -> $crate::BoxFuture<'_, Result<Vec<SpawnRequest>>> {
                Box::pin($crate::sql::bounded(async move {
                    let rows: Vec<SpawnRecord> =
                        sqlx::query_as(q::PENDING).fetch_all(&self.pool).await?;
                    convert(rows)
                }))
            }

            fn forget_agents<'a>(
                &'a self,
                ids: &'a [AgentId],
            ) -> $crate::BoxFuture<'a, Result<u64>> {
                Box::pin($crate::sql::bounded(async move {
                    let mut tx = self.pool.begin().await?;
                    let mut gone = 0;
                    for id in ids {
                        let done = sqlx::query(q::FORGET)
                            .bind(id.as_str())
                            .execute(&mut *tx)
                            .await?;
                        gone += done.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(gone)
                }))
            }
        }

        impl $store {
            /// The request holding `request`'s idempotency key, if it has one and it is known.
            async fn by_key(&self, request: &SpawnRequest) -> Result<Option<SpawnRequest>> {
                let Some(key) = &request.idempotency_key else {
                    return Ok(None);
                };
                let row: Option<SpawnRecord> = sqlx::query_as(q::BY_KEY)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(SpawnRequest::try_from).transpose()
            }
        }
    };
}

spawn_store!(PgStore, sqlx::Postgres);
spawn_store!(SqliteStore, sqlx::Sqlite);
