-- drain: take a worker out of placement, in one step with the emptiness check.
-- KEYS[1] process:<id>  KEYS[2] process:<id>:agents
-- ARGV[1] key prefix  ARGV[2] process id  ARGV[3] '1' to drain only an empty worker
-- Returns the worker's agents, or nil when it is unknown or (with ARGV[3]) not empty.
local pool = redis.call('HGET', KEYS[1], 'pool_name')
if not pool then
  return false
end
if ARGV[3] == '1' and redis.call('SCARD', KEYS[2]) > 0 then
  return false
end
redis.call('ZREM', ARGV[1] .. 'pool:' .. pool .. ':processes', ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'draining')
return redis.call('SMEMBERS', KEYS[2])
