-- register: add a worker to the registry and to placement.
-- ARGV[2] process id  ARGV[3] max agents  ARGV[4] pool
-- ARGV[5] n, the number of hash field/value pairs that follow, then those 2n values,
-- then the agents the worker already runs, 8 values each:
-- id, role, name, metadata, restart policy (or ''), '1' when autoscaled (or ''), status,
-- sealed secret_config (or '').
-- A worker registers again, with its agents, when Redis lost its data: what it runs is put back
-- in the registry. An agent that meanwhile belongs to another worker is left there.
local ms, now = redis_now()
local pid, pool = ARGV[2], ARGV[4]
local pkey, assigned = key.process(pid), key.process_agents(pid)
local n = tonumber(ARGV[5])
local fields = {}
for i = 6, 5 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', pkey, unpack(fields))
for i = 6 + 2 * n, #ARGV, 8 do
  local id = ARGV[i]
  local akey = key.agent(id)
  local owner = redis.call('HGET', akey, 'process_id')
  if not owner or owner == '' or owner == pid then
    if not owner then
      redis.call('HSET', akey, 'agent_id', id, 'pool_name', pool, 'role_type', ARGV[i + 1],
        'name', ARGV[i + 2], 'metadata', ARGV[i + 3], 'registered_at', now, 'restarts', 0,
        'epoch', 1)
      if ARGV[i + 4] ~= '' then
        redis.call('HSET', akey, 'restart', ARGV[i + 4])
      end
      if ARGV[i + 5] == '1' then
        redis.call('HSET', akey, 'autoscaled', 1)
      end
      if ARGV[i + 7] ~= '' then
        redis.call('HSET', akey, 'secret_config', ARGV[i + 7])
      end
    end
    redis.call('HSET', akey, 'process_id', pid, 'status', ARGV[i + 6], 'updated_at', now)
    redis.call('SADD', assigned, id)
    redis.call('SADD', key.pool_agents(pool), id)
  end
end
-- Agents already assigned keep their slots.
local count = redis.call('SCARD', assigned)
redis.call('HSET', pkey, 'agent_count', count, 'status', 'running', 'last_heartbeat', now)
redis.call('ZADD', key.pool_processes(pool), tonumber(ARGV[3]) - count, pid)
redis.call('ZADD', key.heartbeats(), ms, pid)
redis.call('SADD', key.pools(), pool)
return 1
