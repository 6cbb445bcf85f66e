-- agent_status: a worker writes its agent's status, only while the agent is still its own.
-- KEYS[1] agent:<id>   ARGV[1] process id  ARGV[2] status  ARGV[3] error, or ''
-- Returns 1 when written, 0 when the agent belongs elsewhere or is gone (the write is fenced).
if redis.call('HGET', KEYS[1], 'process_id') ~= ARGV[1] then
  return 0
end
local _, now = redis_now()
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', now)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[3])
end
return 1
