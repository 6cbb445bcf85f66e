-- One name per field: the store's columns take the names the API and the Redis hashes use
-- (pool_name, role_type, metadata), and an agent's own restart policy is kept, so a restore
-- brings a `temporary` agent back `temporary`.
ALTER TABLE agents RENAME COLUMN pool TO pool_name;
ALTER TABLE agents RENAME COLUMN role TO role_type;
ALTER TABLE agents RENAME COLUMN config TO metadata;
ALTER TABLE agents ADD COLUMN restart TEXT
    CHECK (restart IN ('permanent', 'transient', 'temporary'));
ALTER TABLE workers RENAME COLUMN pool TO pool_name;

CREATE OR REPLACE FUNCTION agentpool_agent_spawned() RETURNS trigger AS $$
BEGIN
    INSERT INTO agent_events (agent_id, kind, detail, at)
    VALUES (NEW.agent_id, 'spawned', 'pool ' || NEW.pool_name, NEW.created_at);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
