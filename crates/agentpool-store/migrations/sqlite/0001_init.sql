-- Same schema as migrations/postgres: JSON and timestamps are TEXT here (RFC 3339, which sorts
-- in time order), ids are TEXT, the event id is an AUTOINCREMENT rowid.

CREATE TABLE pools (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE agents (
    agent_id      TEXT PRIMARY KEY,
    pool          TEXT NOT NULL,
    role          TEXT NOT NULL,
    name          TEXT NOT NULL,
    config        TEXT NOT NULL,
    desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    status        TEXT NOT NULL,
    process_id    TEXT,
    restarts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX agents_desired ON agents (desired_state, updated_at);

CREATE TABLE agent_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('spawned', 'started', 'stopped', 'failed', 'orphaned',
                                          'rescheduled', 'terminated', 'quarantined', 'restarted')),
    detail   TEXT NOT NULL DEFAULT '',
    at       TEXT NOT NULL
);
CREATE INDEX agent_events_agent ON agent_events (agent_id, id);
CREATE INDEX agent_events_at ON agent_events (at);

CREATE TABLE workers (
    process_id  TEXT PRIMARY KEY,
    pool        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    exited_at   TEXT,
    exit_status TEXT
);
CREATE INDEX workers_exited ON workers (exited_at);
