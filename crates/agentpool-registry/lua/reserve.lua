-- reserve: take one free slot for an agent, in one step.
-- KEYS[1] pool:<p>:processes  KEYS[2] pool:<p>:agents  KEYS[3] agent:<id>
-- ARGV[1] key prefix  ARGV[2] placement (pack|spread)  ARGV[3] agent id  ARGV[4] pool
-- ARGV[5] role  ARGV[6] name  ARGV[7] metadata JSON  ARGV[8] process it moves from, or ''
-- ARGV[9] '1' when the agent must already exist (a move or a reschedule)
-- ARGV[10] the agent's own restart policy, or ''
-- Returns the chosen process id, or nil when no worker has a free slot. Fails with AGENT_GONE
-- when an existing agent was terminated meanwhile, so a reschedule cannot resurrect it.
local prefix, agent_id, move_from = ARGV[1], ARGV[3], ARGV[8]
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('AGENT_GONE')
end

-- A retried request must not take a second slot.
local current = redis.call('HGET', KEYS[3], 'process_id')
if current and current ~= '' and current ~= move_from
  and redis.call('SISMEMBER', prefix .. 'process:' .. current .. ':agents', agent_id) == 1 then
  return current
end

local pick
if ARGV[2] == 'spread' then
  pick = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', 1, 'LIMIT', 0, 1)
else
  pick = redis.call('ZRANGEBYSCORE', KEYS[1], 1, '+inf', 'LIMIT', 0, 1)
end
if #pick == 0 then
  return false
end
local pid = pick[1]

if move_from ~= '' and redis.call('SREM', prefix .. 'process:' .. move_from .. ':agents', agent_id) == 1 then
  redis.call('HINCRBY', prefix .. 'process:' .. move_from, 'agent_count', -1)
  if redis.call('ZSCORE', KEYS[1], move_from) then
    redis.call('ZINCRBY', KEYS[1], 1, move_from)
  end
end

local _, now = redis_now()
-- Placing an orphan again is a restart: count it in the same step.
if redis.call('HGET', KEYS[3], 'status') == 'orphaned' then
  redis.call('HINCRBY', KEYS[3], 'restarts', 1)
end
redis.call('ZINCRBY', KEYS[1], -1, pid)
redis.call('HINCRBY', prefix .. 'process:' .. pid, 'agent_count', 1)
redis.call('SADD', prefix .. 'process:' .. pid .. ':agents', agent_id)
redis.call('SADD', KEYS[2], agent_id)
redis.call('HSET', KEYS[3], 'agent_id', agent_id, 'pool_name', ARGV[4], 'role_type', ARGV[5],
  'name', ARGV[6], 'process_id', pid, 'status', 'pending', 'metadata', ARGV[7], 'updated_at', now)
redis.call('HSETNX', KEYS[3], 'registered_at', now)
redis.call('HSETNX', KEYS[3], 'restarts', 0)
redis.call('HINCRBY', KEYS[3], 'epoch', 1)
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[3], 'restart', ARGV[10])
end
return pid
