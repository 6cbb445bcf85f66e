-- register: add a worker to the registry and to placement.
-- KEYS[1] process:<id>  KEYS[2] process:<id>:agents  KEYS[3] pool:<p>:processes
-- KEYS[4] processes:heartbeats  KEYS[5] pools
-- ARGV[1] process id  ARGV[2] max agents  ARGV[3] pool  ARGV[4] key prefix
-- ARGV[5] n, the number of hash field/value pairs that follow, then those 2n values,
-- then the agents the worker already runs, 5 values each: id, role, name, metadata, status.
-- A worker registers again, with its agents, when Redis lost its data: what it runs is put back
-- in the registry. An agent that meanwhile belongs to another worker is left there.
local ms, now = redis_now()
local prefix, pid, pool = ARGV[4], ARGV[1], ARGV[3]
local n = tonumber(ARGV[5])
local fields = {}
for i = 6, 5 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
for i = 6 + 2 * n, #ARGV, 5 do
  local id = ARGV[i]
  local akey = prefix .. 'agent:' .. id
  local owner = redis.call('HGET', akey, 'process_id')
  if not owner or owner == '' or owner == pid then
    if not owner then
      redis.call('HSET', akey, 'agent_id', id, 'pool_name', pool, 'role_type', ARGV[i + 1],
        'name', ARGV[i + 2], 'metadata', ARGV[i + 3], 'registered_at', now, 'restarts', 0,
        'epoch', 1)
    end
    redis.call('HSET', akey, 'process_id', pid, 'status', ARGV[i + 4], 'updated_at', now)
    redis.call('SADD', KEYS[2], id)
    redis.call('SADD', prefix .. 'pool:' .. pool .. ':agents', id)
  end
end
-- Agents already assigned keep their slots.
local count = redis.call('SCARD', KEYS[2])
redis.call('HSET', KEYS[1], 'agent_count', count, 'status', 'running', 'last_heartbeat', now)
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]) - count, pid)
redis.call('ZADD', KEYS[4], ms, pid)
redis.call('SADD', KEYS[5], pool)
return 1
