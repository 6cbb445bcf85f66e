-- agent_status: a worker writes its agent's status, only while the agent is still its own.
-- KEYS[1] agent:<id>   ARGV[1] process id  ARGV[2] status  ARGV[3] error, or ''
-- ARGV[4] the placement epoch the worker holds, or '' when it does not know it yet
-- ARGV[5] '1' when this write records a restart
-- Returns the agent's epoch when written, 0 when the agent belongs elsewhere, is gone, or was
-- placed again since (the write is fenced).
if redis.call('HGET', KEYS[1], 'process_id') ~= ARGV[1] then
  return 0
end
local epoch = redis.call('HGET', KEYS[1], 'epoch') or '0'
if ARGV[4] ~= '' and ARGV[4] ~= epoch then
  return 0
end
local _, now = redis_now()
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', now)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[3])
end
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[1], 'restarts', 1)
end
return tonumber(epoch)
