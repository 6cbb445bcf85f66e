-- task_tend: a pool's clockwork, run by the master a few times a second: retries whose
-- backoff is over go back in line; attempts whose lease ran out (their worker stopped
-- reporting) are retried elsewhere or failed; failed tasks whose hash expired leave the dead
-- set; then idle agents get what waits.
-- ARGV[2] pool
-- Returns {tasks back in line, attempts expired}.
local ms, now = redis_now()
local pool = ARGV[2]
local due = redis.call('ZRANGEBYSCORE', key.pool_delayed(pool), '-inf', ms)
for _, id in ipairs(due) do
  redis.call('ZREM', key.pool_delayed(pool), id)
  enqueue(id)
  if not empty(redis.call('HGET', key.task(id), 'target_agent_id')) then
    offer_to_target(id, ms, now)
  end
end
local expired = redis.call('ZRANGEBYSCORE', key.pool_running(pool), '-inf', ms)
for _, id in ipairs(expired) do
  redis.call('ZREM', key.pool_running(pool), id)
  local t = key.task(id)
  local agent = redis.call('HGET', t, 'agent_id')
  redis.call('HSET', t, 'error', 'lease expired: its worker did not report the attempt in time')
  -- The agent is free again if its worker still holds it; a late report is dropped.
  if not empty(agent) and redis.call('HGET', key.agent(agent), 'current_task') == id then
    redis.call('HSET', key.agent(agent), 'current_task', '')
  end
  retry_or_fail(id, pool, false, ms, now)
end
-- A failed task leaves the dead set when its hash expires (the store keeps both, and a retry
-- by hand works from there): else the set would grow with every failure.
local ttl = rules(pool).final_ttl
if ttl > 0 then
  redis.call('ZREMRANGEBYSCORE', key.pool_dead(pool), '-inf', ms - ttl)
end
dispatch(pool, ms, now)
return {#due, #expired}
