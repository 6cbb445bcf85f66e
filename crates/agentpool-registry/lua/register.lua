-- register: add a worker to the registry and to placement.
-- KEYS[1] process:<id>  KEYS[2] process:<id>:agents  KEYS[3] pool:<p>:processes
-- KEYS[4] processes:heartbeats  KEYS[5] pools
-- ARGV[1] process id  ARGV[2] max agents  ARGV[3] pool  ARGV[4..] hash field, value pairs
local ms, now = redis_now()
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
-- Agents already assigned (a re-registration after a Redis restart) keep their slots.
local count = redis.call('SCARD', KEYS[2])
redis.call('HSET', KEYS[1], 'agent_count', count, 'status', 'running', 'last_heartbeat', now)
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]) - count, ARGV[1])
redis.call('ZADD', KEYS[4], ms, ARGV[1])
redis.call('SADD', KEYS[5], ARGV[3])
return 1
