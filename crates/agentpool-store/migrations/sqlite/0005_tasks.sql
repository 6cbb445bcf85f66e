-- Same schema as migrations/postgres: JSON and timestamps are TEXT here (RFC 3339, which sorts
-- in time order).
-- Tasks: the record of truth for every task submitted (Redis carries only the live ones, and
-- a finished task only for a while). A row is the task's spec and where it got to; the
-- registry's changes move it forward, never back (see the store's `TaskStore`).
CREATE TABLE tasks (
    task_id         TEXT PRIMARY KEY,
    pool_name       TEXT NOT NULL,
    target_agent_id TEXT,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    input           TEXT NOT NULL,
    max_attempts    INTEGER NOT NULL,
    timeout_secs    INTEGER,
    idempotency_key TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL,
    agent_id        TEXT,
    output          TEXT,
    error           TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
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
