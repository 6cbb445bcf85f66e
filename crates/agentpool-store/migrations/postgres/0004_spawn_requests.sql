-- Spawn requests: every spawn, one agent or a thousand, is recorded with its agents in one
-- transaction. A request still `pending` when its master died was never answered: without an
-- idempotency key it is rolled back at the next start; with one, the client's retry finishes
-- it. Keys are kept 24 hours.
CREATE TABLE spawn_requests (
    request_id      TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    body_hash       TEXT NOT NULL,
    pool_name       TEXT NOT NULL,
    count           BIGINT NOT NULL,
    master_id       TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'done', 'failed', 'rolled_back')),
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX spawn_requests_state ON spawn_requests (state, created_at);

ALTER TABLE agents ADD COLUMN request_id TEXT;
CREATE INDEX agents_request ON agents (request_id);

-- A drain is desired state: it survives a Redis restart that forgets the worker was draining.
ALTER TABLE workers ADD COLUMN drain_requested_at TIMESTAMPTZ;
