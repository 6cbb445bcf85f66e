-- Pools as configured, agents with what they should be doing, their append-only history, and
-- worker processes. Ids are TEXT (uuid v7 strings); timestamps are written by the application.

CREATE TABLE pools (
    name       TEXT PRIMARY KEY,
    spec       JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE agents (
    agent_id      TEXT PRIMARY KEY,
    pool          TEXT NOT NULL,
    role          TEXT NOT NULL,
    name          TEXT NOT NULL,
    config        JSONB NOT NULL,
    desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    status        TEXT NOT NULL,
    process_id    TEXT,
    restarts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_desired ON agents (desired_state, updated_at);

CREATE TABLE agent_events (
    id       BIGSERIAL PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('spawned', 'started', 'stopped', 'failed', 'orphaned',
                                          'rescheduled', 'terminated', 'quarantined', 'restarted')),
    detail   TEXT NOT NULL DEFAULT '',
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_events_agent ON agent_events (agent_id, id);
CREATE INDEX agent_events_at ON agent_events (at);

CREATE TABLE workers (
    process_id  TEXT PRIMARY KEY,
    pool        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    exited_at   TIMESTAMPTZ,
    exit_status TEXT
);
CREATE INDEX workers_exited ON workers (exited_at);
