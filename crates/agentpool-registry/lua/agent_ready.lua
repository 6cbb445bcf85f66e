-- agent_ready: an agent came up (started, or restarted in place): it is idle and ready for
-- work, and takes the next task waiting for it or its pool in the same step. Written only
-- while the agent is the worker's own under the given placement epoch, as agent_status.
-- An attempt it still held died with it: retried at once, not left to its lease.
-- ARGV[2] agent id  ARGV[3] process id  ARGV[4] epoch, or ''
-- Returns {epoch, run JSON or false}; {0, false} when fenced.
local ms, now = redis_now()
local agent, pid = ARGV[2], ARGV[3]
local a = key.agent(agent)
local f = redis.call('HMGET', a, 'process_id', 'epoch', 'status', 'pool_name')
if f[1] ~= pid or (ARGV[4] ~= '' and ARGV[4] ~= (f[2] or '0')) or f[3] == 'stopping' then
  return {0, false}
end
reclaim(agent, 'its agent restarted', ms, now)
local run = free_agent(agent, pid, f[4], ms, now)
return {tonumber(f[2] or '0'), run or false}
