-- stale: the workers whose last heartbeat is older than the timeout, by Redis's clock, in one
-- range query; and how many workers there are, for the mass-staleness guard.
-- KEYS[1] processes:heartbeats   ARGV[1] timeout in ms
-- Returns {total, {stale process ids}}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms - tonumber(ARGV[1])))
return {redis.call('ZCARD', KEYS[1]), stale}
