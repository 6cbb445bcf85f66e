-- heartbeat: prove a worker alive, on Redis's clock, and hand back its assignment.
-- ARGV[2] process id  ARGV[3] rss bytes  ARGV[4] cpu percent
-- Returns {'reaped'} when the worker was reaped (it fences itself), {'unregistered'} when its
-- registration is gone without a reap (Redis lost its data: it registers again), else
-- {'alive', {agent ids}, {agent, task, attempt, ...}}: the agents assigned to it that should
-- run, and the task attempt each holds, so the worker reconciles both without another round
-- trip. Agents on their way out (stopping, stopped, failed, quarantined) are left out, or a
-- terminate racing a heartbeat would start them again.
local pid = ARGV[2]
if redis.call('EXISTS', key.process(pid)) == 0 then
  if redis.call('EXISTS', key.reaped(pid)) == 1 then
    return {'reaped'}
  end
  return {'unregistered'}
end
local ms, now = redis_now()
redis.call('ZADD', key.heartbeats(), ms, pid)
redis.call('HSET', key.process(pid), 'last_heartbeat', now, 'rss_bytes', ARGV[3],
  'cpu_percent', ARGV[4])
local wanted, holding = {}, {}
for _, agent_id in ipairs(redis.call('SMEMBERS', key.process_agents(pid))) do
  local f = redis.call('HMGET', key.agent(agent_id), 'status', 'current_task')
  local status = f[1]
  if status ~= 'stopping' and status ~= 'stopped' and status ~= 'failed'
    and status ~= 'quarantined' then
    wanted[#wanted + 1] = agent_id
    if f[2] and f[2] ~= '' then
      local t = redis.call('HMGET', key.task(f[2]), 'status', 'agent_id', 'runs')
      if t[1] == 'running' and t[2] == agent_id then
        holding[#holding + 1] = agent_id
        holding[#holding + 1] = f[2]
        holding[#holding + 1] = t[3]
      end
    end
  end
end
return {'alive', wanted, holding}
