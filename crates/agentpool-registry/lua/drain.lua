-- drain: take a worker out of placement, in one step with the emptiness check.
-- ARGV[2] process id  ARGV[3] '1' to drain only an empty worker
-- Returns the worker's agents, or nil when it is unknown or (with ARGV[3]) not empty.
local pid = ARGV[2]
local pool = redis.call('HGET', key.process(pid), 'pool_name')
if not pool then
  return false
end
if ARGV[3] == '1' and redis.call('SCARD', key.process_agents(pid)) > 0 then
  return false
end
redis.call('ZREM', key.pool_processes(pool), pid)
redis.call('HSET', key.process(pid), 'status', 'draining')
return redis.call('SMEMBERS', key.process_agents(pid))
