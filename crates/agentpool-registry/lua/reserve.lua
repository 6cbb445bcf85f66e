-- reserve: take one free slot for an agent, in one step.
-- ARGV[2] placement (pack|spread)  ARGV[3] agent id  ARGV[4] pool  ARGV[5] role  ARGV[6] name
-- ARGV[7] metadata JSON  ARGV[8] the agent's own restart policy, or ''
-- ARGV[9] process it moves from, or ''  ARGV[10] '1' when the agent must already exist
-- (a move or a reschedule)  ARGV[11] '1' when the autoscaler started it, or ''
-- ARGV[12] the sealed secret_config (ciphertext only, never the secret in clear), or ''
-- Returns the chosen process id, or nil when no worker has a free slot. Fails with AGENT_GONE
-- when an existing agent was terminated, or is being terminated, meanwhile: a move or a
-- reschedule never brings back what a terminate is taking away.
local agent_id, pool, move_from = ARGV[3], ARGV[4], ARGV[9]
local akey, zkey = key.agent(agent_id), key.pool_processes(pool)
if ARGV[10] == '1' then
  local status = redis.call('HGET', akey, 'status')
  if not status or status == 'stopping' then
    return redis.error_reply('AGENT_GONE')
  end
end

-- A retried request must not take a second slot.
local current = redis.call('HGET', akey, 'process_id')
if current and current ~= '' and current ~= move_from
  and redis.call('SISMEMBER', key.process_agents(current), agent_id) == 1 then
  return current
end

local pick
if ARGV[2] == 'spread' then
  pick = redis.call('ZREVRANGEBYSCORE', zkey, '+inf', 1, 'LIMIT', 0, 1)
else
  pick = redis.call('ZRANGEBYSCORE', zkey, 1, '+inf', 'LIMIT', 0, 1)
end
if #pick == 0 then
  return false
end
local pid = pick[1]

local ms, now = redis_now()
-- A move stops the agent on its old worker: the attempt it was running is retried at once.
if move_from ~= '' then
  reclaim(agent_id, 'its agent moved off worker ' .. move_from, ms, now)
  redis.call('ZREM', key.pool_idle(pool), agent_id)
end
if move_from ~= '' and redis.call('SREM', key.process_agents(move_from), agent_id) == 1 then
  redis.call('HINCRBY', key.process(move_from), 'agent_count', -1)
  if redis.call('ZSCORE', zkey, move_from) then
    redis.call('ZINCRBY', zkey, 1, move_from)
  end
end

-- Placing an orphan again is a restart: count it in the same step.
if redis.call('HGET', akey, 'status') == 'orphaned' then
  redis.call('HINCRBY', akey, 'restarts', 1)
end
redis.call('ZINCRBY', zkey, -1, pid)
redis.call('HINCRBY', key.process(pid), 'agent_count', 1)
redis.call('SADD', key.process_agents(pid), agent_id)
redis.call('SADD', key.pool_agents(pool), agent_id)
redis.call('HSET', akey, 'agent_id', agent_id, 'pool_name', pool, 'role_type', ARGV[5],
  'name', ARGV[6], 'process_id', pid, 'status', 'pending', 'metadata', ARGV[7], 'updated_at', now)
redis.call('HSETNX', akey, 'registered_at', now)
redis.call('HSETNX', akey, 'restarts', 0)
redis.call('HINCRBY', akey, 'epoch', 1)
if ARGV[8] ~= '' then
  redis.call('HSET', akey, 'restart', ARGV[8])
end
if ARGV[11] == '1' then
  redis.call('HSET', akey, 'autoscaled', 1)
end
if ARGV[12] ~= '' then
  redis.call('HSET', akey, 'secret_config', ARGV[12])
end
return pid
