-- task_cancel: a queued (or scheduled) task is cancelled at once and never runs; a running one
-- is marked, and its worker told to stop it (it reports `cancelled`); a finished one stays.
-- ARGV[2] task id
-- Returns the task's status after the step, or false when the task is unknown.
local ms, now = redis_now()
local id = ARGV[2]
local t = key.task(id)
local f = redis.call('HMGET', t, 'status', 'pool_name', 'target_agent_id', 'process_id', 'agent_id')
if not f[1] then
  return false
end
if f[1] == 'queued' then
  redis.call('ZREM', key.pool_queue(f[2]), id)
  redis.call('ZREM', key.pool_delayed(f[2]), id)
  redis.call('ZREM', key.pool_asked(f[2]), id)
  if not empty(f[3]) then
    redis.call('ZREM', key.agent_queue(f[3]), id)
  end
  finalize(id, 'cancelled', now)
  announce(id, now)
  return 'cancelled'
end
if f[1] == 'running' then
  redis.call('HSET', t, 'cancel', '1')
  local data = '{"task_id":' .. cjson.encode(id) .. ',"agent_id":' .. jstr(f[5]) .. '}'
  redis.call('PUBLISH', key.process_commands(f[4]), command('cancel_task', data, id .. ':cancel', now))
end
return f[1]
