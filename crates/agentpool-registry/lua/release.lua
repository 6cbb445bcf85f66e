-- release: the reverse of reserve. Gives the agent's slot back and removes the agent. A task it
-- was running is retried elsewhere; tasks waiting for it alone fail, as it will never run them.
-- ARGV[2] agent id
-- Returns the agent hash as a flat list, or nil when the agent is unknown.
local agent_id = ARGV[2]
local akey = key.agent(agent_id)
local hash = redis.call('HGETALL', akey)
if #hash == 0 then
  return false
end
local pool = redis.call('HGET', akey, 'pool_name')
local ms, now = redis_now()
reclaim(agent_id, 'its agent was terminated', ms, now)
fail_asked(agent_id, pool, ms, now)
fail_delayed({[agent_id] = true}, pool, ms, now)
redis.call('ZREM', key.pool_idle(pool), agent_id)
local pid = redis.call('HGET', akey, 'process_id')
if pid and pid ~= '' then
  if redis.call('SREM', key.process_agents(pid), agent_id) == 1 then
    redis.call('HINCRBY', key.process(pid), 'agent_count', -1)
    -- A draining worker is out of placement: its freed slot must not reappear there.
    local zkey = key.pool_processes(pool)
    if redis.call('ZSCORE', zkey, pid) then
      redis.call('ZINCRBY', zkey, 1, pid)
    end
  end
end
redis.call('SREM', key.pool_agents(pool), agent_id)
redis.call('DEL', akey)
return hash
