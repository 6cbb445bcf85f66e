-- process_status: set a worker's status without resurrecting a reaped registration.
-- ARGV[2] process id  ARGV[3] status
local pkey = key.process(ARGV[2])
if redis.call('EXISTS', pkey) == 0 then
  return 0
end
redis.call('HSET', pkey, 'status', ARGV[3])
return 1
