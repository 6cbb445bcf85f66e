-- task_retry: a failed task goes back in line with its attempts reset, out of the dead set.
-- ARGV[2] task id
-- Returns the task's status after the step, or false when the task is unknown.
local ms, now = redis_now()
local id = ARGV[2]
local t = key.task(id)
local f = redis.call('HMGET', t, 'status', 'pool_name', 'target_agent_id')
if not f[1] then
  return false
end
if f[1] ~= 'failed' then
  return f[1]
end
redis.call('PERSIST', t)
redis.call('ZREM', key.pool_dead(f[2]), id)
redis.call('HSET', t, 'attempts', 0, 'error', '', 'output', '', 'started_at', '',
  'finished_at', '', 'cancel', '')
enqueue(id)
announce(id, now)
if not empty(f[3]) then
  offer_to_target(id, ms, now)
end
dispatch(f[2], ms, now)
return 'queued'
