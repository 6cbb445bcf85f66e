-- task_finish: a worker reports how an attempt ended, and its agent takes its next task in
-- the same step. A report for an attempt that is no longer current (its lease ran out, it
-- was reclaimed, the task was cancelled) is dropped: a task has exactly one result.
-- ARGV[2] task id  ARGV[3] agent id  ARGV[4] process id  ARGV[5] attempt
-- ARGV[6] outcome: succeeded | failed | cancelled | agent_failed  ARGV[7] output JSON or error
-- Returns {1 if the report was taken else 0, the agent's next run as JSON or false}.
local ms, now = redis_now()
local id, agent, pid, attempt, outcome = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local t = key.task(id)
local f = redis.call('HMGET', t, 'status', 'agent_id', 'runs', 'pool_name')
local pool = f[4]
local taken = f[1] == 'running' and f[2] == agent and tonumber(f[3]) == attempt
local a = key.agent(agent)
if taken then
  redis.call('ZREM', key.pool_running(pool), id)
  if outcome == 'succeeded' then
    redis.call('HSET', t, 'output', ARGV[7], 'error', '')
    finalize(id, 'succeeded', now)
    redis.call('HINCRBY', a, 'tasks_done', 1)
    circuit_success(pool)
    announce(id, now)
  elseif outcome == 'cancelled' then
    finalize(id, 'cancelled', now)
    announce(id, now)
  else
    redis.call('HSET', t, 'error', ARGV[7])
    redis.call('HINCRBY', a, 'tasks_failed', 1)
    circuit_failure(pool, ms)
    retry_or_fail(id, pool, true, ms, now)
  end
end
-- The agent goes on, unless it broke (it restarts first), is no longer this worker's, is
-- being stopped, or holds another task (this report was stale).
local g = redis.call('HMGET', a, 'process_id', 'status', 'current_task', 'pool_name')
local next_run = false
if g[1] == pid and g[2] == 'busy' and (g[3] == id or empty(g[3])) then
  if outcome == 'agent_failed' then
    redis.call('HSET', a, 'current_task', '')
  else
    next_run = free_agent(agent, pid, g[4], ms, now) or false
  end
end
return {taken and 1 or 0, next_run}
