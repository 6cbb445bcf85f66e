-- heartbeat: prove a worker alive, on Redis's clock, and hand back its assignment.
-- KEYS[1] process:<id>  KEYS[2] processes:heartbeats  KEYS[3] process:<id>:agents
-- ARGV[1] process id  ARGV[2] rss bytes  ARGV[3] cpu percent
-- ARGV[4] key prefix
-- Returns {'reaped'} when the worker was reaped (it fences itself), {'unregistered'} when its
-- registration is gone without a reap (Redis lost its data: it registers again), else
-- {'alive', {agent ids}}: the agents assigned to it that should run, so the worker reconciles
-- without another round trip. Agents on their way out (stopping, stopped, failed, quarantined)
-- are left out, or a terminate racing a heartbeat would start them again.
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', ARGV[4] .. 'reaped:' .. ARGV[1]) == 1 then
    return {'reaped'}
  end
  return {'unregistered'}
end
local ms, now = redis_now()
redis.call('ZADD', KEYS[2], ms, ARGV[1])
redis.call('HSET', KEYS[1], 'last_heartbeat', now, 'rss_bytes', ARGV[2], 'cpu_percent', ARGV[3])
local wanted = {}
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local status = redis.call('HGET', ARGV[4] .. 'agent:' .. agent_id, 'status')
  if status ~= 'stopping' and status ~= 'stopped' and status ~= 'failed'
    and status ~= 'quarantined' then
    wanted[#wanted + 1] = agent_id
  end
end
return {'alive', wanted}
