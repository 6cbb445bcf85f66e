-- stale: the workers whose last heartbeat is older than the timeout, by Redis's clock, in one
-- range query; and how many workers there are, for the mass-staleness guard.
-- ARGV[2] timeout in ms
-- Returns {total, {stale process ids}}.
local now_ms = redis_now()
local hb = key.heartbeats()
local stale = redis.call('ZRANGEBYSCORE', hb, '-inf', '(' .. (now_ms - tonumber(ARGV[2])))
return {redis.call('ZCARD', hb), stale}
