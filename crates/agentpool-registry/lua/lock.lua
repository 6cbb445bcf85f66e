-- lock: take or renew a lock with a time to live. Only its holder renews it.
-- KEYS[1] the lock key  ARGV[1] holder  ARGV[2] ttl in ms
-- Returns 1 when the caller holds the lock, 0 when someone else does.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
