-- agent_mark: the master sets an agent's status (`stopping` when it is being terminated,
-- `quarantined` after a crash loop of its workers), without resurrecting an agent that was
-- removed meanwhile. A `stopping` agent is not placed again by a move or a reschedule, and its
-- worker may only report it stopped.
-- ARGV[2] agent id  ARGV[3] status  ARGV[4] error, or ''
-- Returns the agent hash as a flat list as it was before the write, or nil when the agent is
-- unknown.
local akey = key.agent(ARGV[2])
local before = redis.call('HGETALL', akey)
if #before == 0 then
  return false
end
local _, now = redis_now()
redis.call('HSET', akey, 'status', ARGV[3], 'updated_at', now)
if ARGV[4] ~= '' then
  redis.call('HSET', akey, 'error', ARGV[4])
end
return before
