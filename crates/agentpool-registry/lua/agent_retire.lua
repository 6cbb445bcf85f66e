-- agent_retire: the autoscaler's scale-down. Takes up to ARGV[5] of a pool's autoscaled agents
-- idle for at least ARGV[4] ms out of service, longest idle first, in one step: each leaves the
-- idle set and is marked `stopping`, so no task is handed to it from here on; the master then
-- terminates it. The pool keeps at least ARGV[3] agents, and gives none back while tasks wait
-- in its queue: those are for the idle agents, not for new ones.
-- Agents already stopping do not count as kept.
-- ARGV[2] pool  ARGV[3] agents to keep  ARGV[4] idle ms  ARGV[5] most to retire
-- Returns the retired agent ids.
local pool, keep, idle_ms, most = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retired = {}
if redis.call('ZCARD', key.pool_queue(pool)) > 0 then
  return retired
end
local ms, now = redis_now()
local idle = key.pool_idle(pool)
local candidates = redis.call('ZRANGEBYSCORE', idle, '-inf', ms - idle_ms)
if #candidates == 0 then
  return retired
end
local left = 0
for _, agent in ipairs(redis.call('SMEMBERS', key.pool_agents(pool))) do
  if redis.call('HGET', key.agent(agent), 'status') ~= 'stopping' then
    left = left + 1
  end
end
for _, agent in ipairs(candidates) do
  if #retired >= most or left <= keep then
    break
  end
  local f = redis.call('HMGET', key.agent(agent), 'status', 'autoscaled')
  if f[1] == 'idle' and f[2] == '1' and redis.call('ZCARD', key.agent_queue(agent)) == 0 then
    redis.call('ZREM', idle, agent)
    redis.call('HSET', key.agent(agent), 'status', 'stopping', 'updated_at', now)
    retired[#retired + 1] = agent
    left = left - 1
  end
end
return retired
