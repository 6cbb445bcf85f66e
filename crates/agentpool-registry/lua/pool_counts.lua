-- pool_counts: everything /pools shows, for every pool, in one round trip.
-- Then pairs of ARGV from ARGV[2]: pool name, its max_agents_per_process.
-- Returns per pool {name, processes, capacity, free, agents, processes with an agent,
-- queued tasks, running tasks, circuit state}.
--
-- Free slots are summed by score value (one ZCOUNT per possible score) rather than by walking
-- the workers, so the cost is O(capacity * log workers): 1,000 workers cost what 10 do.
-- This counts every worker of a pool at the pool's configured capacity, which is what workers
-- register with.
local out = {}
for i = 2, #ARGV, 2 do
  local pool, cap = ARGV[i], tonumber(ARGV[i + 1])
  local zkey = key.pool_processes(pool)
  local count = redis.call('ZCARD', zkey)
  local free = 0
  for score = 1, cap do
    free = free + score * redis.call('ZCOUNT', zkey, score, score)
  end
  local active = redis.call('ZCOUNT', zkey, '-inf', '(' .. cap)
  local agents = redis.call('SCARD', key.pool_agents(pool))
  local queued = redis.call('ZCARD', key.pool_queue(pool)) + redis.call('ZCARD', key.pool_asked(pool))
    + redis.call('ZCARD', key.pool_delayed(pool))
  local running = redis.call('ZCARD', key.pool_running(pool))
  local circuit = redis.call('HGET', key.pool_circuit(pool), 'state') or 'closed'
  out[#out + 1] = {pool, count, count * cap, free, agents, active, queued, running, circuit}
end
return out
