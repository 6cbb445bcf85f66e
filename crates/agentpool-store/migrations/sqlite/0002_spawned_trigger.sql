-- An agent's `spawned` event is written by the same statement that records the agent, so a
-- spawn costs one statement on its request path instead of a transaction of several.
CREATE TRIGGER agent_spawned AFTER INSERT ON agents
BEGIN
    INSERT INTO agent_events (agent_id, kind, detail, at)
    VALUES (NEW.agent_id, 'spawned', 'pool ' || NEW.pool, NEW.created_at);
END;
