-- Tasks: the record of truth for every task submitted (Redis carries only the live ones, and
-- a finished task only for a while). A row is the task's spec and where it got to; the
-- registry's changes move it forward, never back (see the store's `TaskStore`).
CREATE TABLE tasks (
    task_id         TEXT PRIMARY KEY,
    pool_name       TEXT NOT NULL,
    target_agent_id TEXT,
    priority        BIGINT NOT NULL CHECK (priority BETWEEN 0 AND 9),
    input           JSONB NOT NULL,
    max_attempts    BIGINT NOT NULL,
    timeout_secs    BIGINT,
    idempotency_key TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts        BIGINT NOT NULL,
    agent_id        TEXT,
    output          JSONB,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    -- A key answers with its task within its pool; tasks without a key (NULL) never clash.
    UNIQUE (pool_name, idempotency_key)
);
-- Listings, newest first: of a pool (also the stats' counts of a window), of a status (also
-- the unfinished tasks a restore reads), of everything; the id orders tasks created together.
CREATE INDEX tasks_pool_created ON tasks (pool_name, created_at, task_id);
CREATE INDEX tasks_status_created ON tasks (status, created_at, task_id);
CREATE INDEX tasks_created ON tasks (created_at, task_id);
-- Finished tasks of a pool in finishing order: the stats' sample and the trim's boundary.
CREATE INDEX tasks_pool_finished ON tasks (pool_name, finished_at, task_id);
