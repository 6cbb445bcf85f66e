-- process_status: set a worker's status without resurrecting a reaped registration.
-- KEYS[1] process:<id>   ARGV[1] status
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
return 1
