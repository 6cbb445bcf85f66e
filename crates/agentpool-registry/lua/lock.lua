-- lock: take or renew a lock with a time to live. Only its holder renews it.
-- ARGV[2] lock name  ARGV[3] holder  ARGV[4] ttl in ms
-- Returns 1 when the caller holds the lock, 0 when someone else does.
local lkey = key.lock(ARGV[2])
if redis.call('GET', lkey) == ARGV[3] then
  redis.call('PEXPIRE', lkey, ARGV[4])
  return 1
end
if redis.call('SET', lkey, ARGV[3], 'NX', 'PX', ARGV[4]) then
  return 1
end
return 0
