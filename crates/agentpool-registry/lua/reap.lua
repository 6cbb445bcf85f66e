-- reap: remove a worker and all its keys; return the agents it held (those still its own).
-- The tasks those agents were running are retried elsewhere at once (attempts count them).
-- Agents removed with it (delete) fail the tasks only they may run, as release does.
-- ARGV[2] process id  ARGV[3] mode (orphan|delete)
local pid, mode = ARGV[2], ARGV[3]
local pkey = key.process(pid)
local registered = redis.call('EXISTS', pkey) == 1
local pool = redis.call('HGET', pkey, 'pool_name')
local agents, gone = {}, {}
local ms, now = redis_now()
local why = 'its worker ' .. pid .. ' died'
if mode == 'delete' then why = 'its worker ' .. pid .. ' was stopped' end
for _, agent_id in ipairs(redis.call('SMEMBERS', key.process_agents(pid))) do
  local akey = key.agent(agent_id)
  -- An agent that already moved on belongs to its new worker; leave it alone.
  if redis.call('HGET', akey, 'process_id') == pid then
    agents[#agents + 1] = agent_id
    reclaim(agent_id, why, ms, now)
    redis.call('ZREM', key.pool_idle(redis.call('HGET', akey, 'pool_name')), agent_id)
    if mode == 'delete' then
      local agent_pool = redis.call('HGET', akey, 'pool_name')
      fail_asked(agent_id, agent_pool, ms, now)
      gone[agent_id] = true
      redis.call('SREM', key.pool_agents(agent_pool), agent_id)
      redis.call('DEL', akey)
    else
      redis.call('HSET', akey, 'status', 'orphaned', 'process_id', '', 'updated_at', now)
    end
  end
end
if pool then
  fail_delayed(gone, pool, ms, now)
  redis.call('ZREM', key.pool_processes(pool), pid)
end
redis.call('DEL', pkey, key.process_agents(pid))
redis.call('ZREM', key.heartbeats(), pid)
-- The tombstone tells a worker that wakes up later that it was reaped, as opposed to Redis
-- having lost its data; it outlives any pause a worker could come back from. An orderly stop
-- (delete) needs none: that worker is exiting.
if registered and mode ~= 'delete' then
  redis.call('SET', key.reaped(pid), '1', 'EX', 86400)
end
return agents
