-- agent_status: a worker writes its agent's status, only while the agent is still its own.
-- ARGV[2] agent id  ARGV[3] process id  ARGV[4] status  ARGV[5] error, or ''
-- ARGV[6] the placement epoch the worker holds, or '' when it does not know it yet
-- ARGV[7] '1' when this write records a restart
-- Returns the agent's epoch when written, 0 when the agent belongs elsewhere, is gone, was
-- placed again since, or is being terminated and the write is not an end (the write is fenced).
local akey = key.agent(ARGV[2])
if redis.call('HGET', akey, 'process_id') ~= ARGV[3] then
  return 0
end
local ends = {stopped = true, failed = true, quarantined = true}
if redis.call('HGET', akey, 'status') == 'stopping' and not ends[ARGV[4]] then
  return 0
end
local epoch = redis.call('HGET', akey, 'epoch') or '0'
if ARGV[6] ~= '' and ARGV[6] ~= epoch then
  return 0
end
local _, now = redis_now()
redis.call('HSET', akey, 'status', ARGV[4], 'updated_at', now)
-- Only agent_ready and task_finish make an agent available for tasks.
if ARGV[4] ~= 'idle' and ARGV[4] ~= 'busy' then
  redis.call('ZREM', key.pool_idle(redis.call('HGET', akey, 'pool_name')), ARGV[2])
end
if ARGV[5] ~= '' then
  redis.call('HSET', akey, 'error', ARGV[5])
end
if ARGV[7] == '1' then
  redis.call('HINCRBY', akey, 'restarts', 1)
end
return tonumber(epoch)
