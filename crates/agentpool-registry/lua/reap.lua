-- reap: remove a worker and all its keys; return the agents it held (those still its own).
-- KEYS[1] process:<id>  KEYS[2] process:<id>:agents  KEYS[3] processes:heartbeats
-- ARGV[1] key prefix  ARGV[2] process id  ARGV[3] mode (orphan|delete)  ARGV[4] pool, if known
local prefix, pid, mode = ARGV[1], ARGV[2], ARGV[3]
local registered = redis.call('EXISTS', KEYS[1]) == 1
local pool = redis.call('HGET', KEYS[1], 'pool_name') or ARGV[4]
local agents = {}
local _, now = redis_now()
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local akey = prefix .. 'agent:' .. agent_id
  -- An agent that already moved on belongs to its new worker; leave it alone.
  if redis.call('HGET', akey, 'process_id') == pid then
    agents[#agents + 1] = agent_id
    if mode == 'delete' then
      redis.call('DEL', akey)
      if pool and pool ~= '' then
        redis.call('SREM', prefix .. 'pool:' .. pool .. ':agents', agent_id)
      end
    else
      redis.call('HSET', akey, 'status', 'orphaned', 'process_id', '', 'updated_at', now)
    end
  end
end
if pool and pool ~= '' then
  redis.call('ZREM', prefix .. 'pool:' .. pool .. ':processes', pid)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], pid)
-- The tombstone tells a worker that wakes up later that it was reaped, as opposed to Redis
-- having lost its data; it outlives any pause a worker could come back from. An orderly stop
-- (delete) needs none: that worker is exiting.
if registered and mode ~= 'delete' then
  redis.call('SET', prefix .. 'reaped:' .. pid, '1', 'EX', 86400)
end
return agents
