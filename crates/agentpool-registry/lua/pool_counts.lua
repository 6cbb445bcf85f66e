-- pool_counts: everything /pools shows, for every pool, in one round trip.
-- ARGV[1] key prefix  ARGV[2..] pool names
-- Returns per pool {name, processes, capacity, free, agents, processes with an agent}.
local prefix = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local pool = ARGV[i]
  local members = redis.call('ZRANGE', prefix .. 'pool:' .. pool .. ':processes', 0, -1, 'WITHSCORES')
  local count, capacity, free, active = 0, 0, 0, 0
  for j = 1, #members, 2 do
    local max = tonumber(redis.call('HGET', prefix .. 'process:' .. members[j], 'max_agents') or 0)
    local slots = tonumber(members[j + 1])
    count = count + 1
    capacity = capacity + max
    free = free + slots
    if slots < max then
      active = active + 1
    end
  end
  local agents = redis.call('SCARD', prefix .. 'pool:' .. pool .. ':agents')
  out[#out + 1] = {pool, count, capacity, free, agents, active}
end
return out
