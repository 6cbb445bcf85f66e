-- Agents started by a pool's autoscaler are marked, so a restore brings them back as such and
-- only they are ever scaled down: an agent spawned by hand stays until terminated by hand.
ALTER TABLE agents ADD COLUMN autoscaled BOOLEAN NOT NULL DEFAULT FALSE;
