-- agent_mark: the master sets an agent's status (quarantined after a crash loop of its
-- workers), without resurrecting an agent that was terminated meanwhile.
-- KEYS[1] agent:<id>   ARGV[1] status  ARGV[2] error, or ''
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local _, now = redis_now()
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', now)
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[2])
end
return 1
