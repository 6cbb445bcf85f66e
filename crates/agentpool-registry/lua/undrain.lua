-- undrain: put a draining worker back in placement, with the slots its agents leave free.
-- Used when a drain cannot move an agent: the worker goes back to work instead of staying in
-- limbo, out of placement.
-- ARGV[2] process id
-- Returns 1, or 0 when the worker is unknown or not draining.
local pid = ARGV[2]
local pkey = key.process(pid)
if redis.call('HGET', pkey, 'status') ~= 'draining' then
  return 0
end
local pool = redis.call('HGET', pkey, 'pool_name')
local free = tonumber(redis.call('HGET', pkey, 'max_agents')) - redis.call('SCARD', key.process_agents(pid))
redis.call('HSET', pkey, 'status', 'running')
redis.call('ZADD', key.pool_processes(pool), free, pid)
return 1
