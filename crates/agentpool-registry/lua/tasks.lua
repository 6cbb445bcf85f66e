-- Prepended (after keys.lua and time.lua) to the scripts that move tasks: the queue's one set
-- of rules, so every step hands out, retries and ends tasks the same way.
--
-- A task is a hash `task:<id>`. While it waits it is in exactly one of: its pool's queue
-- (`pool:<p>:queue`), its target agent's queue (`agent:<a>:queue`, also counted in
-- `pool:<p>:asked`), or its pool's retry schedule (`pool:<p>:delayed`, scored by when it is
-- due). While an attempt runs it is in `pool:<p>:running`, scored by its lease's deadline.
-- Queues are scored by priority then creation time: 9 first, FIFO within a priority. Idle
-- agents wait in `pool:<p>:idle`, scored by when they became idle (the longest idle first).
--
-- Each pool's rules are in `pool:<p>:rules`, written by the master when it starts (and again
-- when Redis lost them): attempt timeout, lease grace, retry backoff, circuit breaker, how
-- long a finished task stays. Until they are there, the defaults below apply.
local DEFAULT_RULES = {
  timeout = 300000, grace = 5000, backoff = 1000, backoff_max = 60000,
  circuit_failures = 0, circuit_cooldown = 30000, final_ttl = 3600000
}
local rules_cache = {}
local function rules(pool)
  if rules_cache[pool] then return rules_cache[pool] end
  local f = redis.call('HMGET', key.pool_rules(pool), 'timeout_ms', 'lease_grace_ms',
    'retry_backoff_ms', 'retry_backoff_max_ms', 'circuit_failures', 'circuit_cooldown_ms',
    'final_ttl_ms')
  local r = {
    timeout = tonumber(f[1]) or DEFAULT_RULES.timeout,
    grace = tonumber(f[2]) or DEFAULT_RULES.grace,
    backoff = tonumber(f[3]) or DEFAULT_RULES.backoff,
    backoff_max = tonumber(f[4]) or DEFAULT_RULES.backoff_max,
    circuit_failures = tonumber(f[5]) or DEFAULT_RULES.circuit_failures,
    circuit_cooldown = tonumber(f[6]) or DEFAULT_RULES.circuit_cooldown,
    final_ttl = tonumber(f[7]) or DEFAULT_RULES.final_ttl
  }
  rules_cache[pool] = r
  return r
end

local function empty(v)
  return v == nil or v == false or v == ''
end

-- JSON text of a string field, or null.
local function jstr(v)
  if empty(v) then return 'null' end
  return cjson.encode(v)
end

-- A field that holds JSON text already (input, output), or null.
local function jraw(v)
  if empty(v) then return 'null' end
  return v
end

local function jnum(v)
  return tostring(tonumber(v) or 0)
end

-- A command envelope for a worker, as `Command` reads it.
local function command(name, data, id, now)
  return '{"id":' .. cjson.encode(id) .. ',"command":"' .. name .. '","data":' .. data ..
    ',"timestamp":"' .. now .. '"}'
end

-- Tells the master (its waiters, its history, its event stream) where a task stands.
local function announce(id, now)
  local f = redis.call('HMGET', key.task(id), 'pool_name', 'status', 'attempts', 'agent_id',
    'output', 'error', 'started_at', 'finished_at')
  local data = '{"task_id":' .. cjson.encode(id) .. ',"pool_name":' .. jstr(f[1]) ..
    ',"status":' .. jstr(f[2]) .. ',"attempts":' .. jnum(f[3]) .. ',"agent_id":' .. jstr(f[4]) ..
    ',"output":' .. jraw(f[5]) .. ',"error":' .. jstr(f[6]) .. ',"started_at":' .. jstr(f[7]) ..
    ',"finished_at":' .. jstr(f[8]) .. '}'
  local event = '{"id":' .. cjson.encode(id .. ':' .. f[2] .. ':' .. (f[3] or '0')) ..
    ',"event":"task_changed","data":' .. data .. ',"timestamp":"' .. now .. '"}'
  redis.call('PUBLISH', key.pool_events(f[1]), event)
end

local function queue_score(t)
  local f = redis.call('HMGET', t, 'priority', 'created_ms')
  return (9 - tonumber(f[1])) * 1e13 + tonumber(f[2])
end

-- A task that will not run again: kept a while for readers, the store keeps it for good.
local function finalize(id, status, now)
  local t = key.task(id)
  redis.call('HSET', t, 'status', status, 'finished_at', now, 'process_id', '')
  local ttl = rules(redis.call('HGET', t, 'pool_name')).final_ttl
  if ttl > 0 then
    redis.call('PEXPIRE', t, ttl)
  end
end

-- Back in line: its target's queue, or its pool's.
local function enqueue(id)
  local t = key.task(id)
  local f = redis.call('HMGET', t, 'pool_name', 'target_agent_id')
  redis.call('HSET', t, 'status', 'queued', 'process_id', '', 'agent_id', f[2] or '')
  if empty(f[2]) then
    redis.call('ZADD', key.pool_queue(f[1]), queue_score(t), id)
  else
    redis.call('ZADD', key.agent_queue(f[2]), queue_score(t), id)
    redis.call('ZADD', key.pool_asked(f[1]), queue_score(t), id)
  end
end

-- May the pool hand out a task now? A half-open circuit lets one trial through at a time.
local function circuit_allows(pool, id, now_ms)
  local r = rules(pool)
  if r.circuit_failures == 0 then return true end
  local c = key.pool_circuit(pool)
  local f = redis.call('HMGET', c, 'state', 'opened_ms', 'trial')
  local state = f[1] or 'closed'
  if state == 'closed' then return true end
  if state == 'open' then
    if now_ms < tonumber(f[2] or '0') + r.circuit_cooldown then return false end
    redis.call('HSET', c, 'state', 'half_open', 'trial', id)
    return true
  end
  if not empty(f[3]) and redis.call('HGET', key.task(f[3]), 'status') == 'running' then
    return false
  end
  redis.call('HSET', c, 'trial', id)
  return true
end

local function circuit_success(pool)
  if rules(pool).circuit_failures == 0 then return end
  redis.call('HSET', key.pool_circuit(pool), 'state', 'closed', 'failures', 0, 'trial', '')
end

local function circuit_failure(pool, now_ms)
  local limit = rules(pool).circuit_failures
  if limit == 0 then return end
  local c = key.pool_circuit(pool)
  local failures = redis.call('HINCRBY', c, 'failures', 1)
  local state = redis.call('HGET', c, 'state') or 'closed'
  if state == 'half_open' or failures >= limit then
    redis.call('HSET', c, 'state', 'open', 'opened_ms', now_ms, 'trial', '')
  end
end

-- Starts an attempt of task `id` on `agent` of worker `pid`; returns the run as JSON text.
local function start(id, agent, pid, now_ms, now)
  local t = key.task(id)
  -- `attempts` counts towards max_attempts (a retry by hand resets it); `runs` never goes
  -- back, so each start has its own number, the fence its report must show.
  redis.call('HINCRBY', t, 'attempts', 1)
  local attempt = redis.call('HINCRBY', t, 'runs', 1)
  local f = redis.call('HMGET', t, 'timeout_secs', 'pool_name', 'input', 'target_agent_id')
  local r = rules(f[2])
  local timeout = r.timeout
  if not empty(f[1]) then timeout = tonumber(f[1]) * 1000 end
  redis.call('HSET', t, 'status', 'running', 'agent_id', agent, 'process_id', pid,
    'started_at', now, 'finished_at', '')
  redis.call('ZADD', key.pool_running(f[2]), now_ms + timeout + r.grace, id)
  if not empty(f[4]) then
    redis.call('ZREM', key.pool_asked(f[2]), id)
  end
  redis.call('HSET', key.agent(agent), 'status', 'busy', 'current_task', id, 'updated_at', now)
  redis.call('ZREM', key.pool_idle(f[2]), agent)
  announce(id, now)
  return '{"task_id":' .. cjson.encode(id) .. ',"agent_id":' .. cjson.encode(agent) ..
    ',"attempt":' .. attempt .. ',"timeout_ms":' .. timeout .. ',"input":' .. jraw(f[3]) .. '}'
end

-- The next task for an agent: its own queue first, then its pool's, circuit permitting.
local function next_for(agent, pool, now_ms)
  local own = redis.call('ZRANGE', key.agent_queue(agent), 0, 0)
  if #own > 0 then
    redis.call('ZREM', key.agent_queue(agent), own[1])
    return own[1]
  end
  local q = key.pool_queue(pool)
  local head = redis.call('ZRANGE', q, 0, 0)
  if #head == 0 or not circuit_allows(pool, head[1], now_ms) then return nil end
  redis.call('ZREM', q, head[1])
  return head[1]
end

-- An agent free for work (started, or done with a task): its next task as run JSON, or nil
-- when none waits and it is now idle.
local function free_agent(agent, pid, pool, now_ms, now)
  local id = next_for(agent, pool, now_ms)
  if id then return start(id, agent, pid, now_ms, now) end
  redis.call('HSET', key.agent(agent), 'status', 'idle', 'current_task', '', 'updated_at', now)
  redis.call('ZADD', key.pool_idle(pool), now_ms, agent)
  return nil
end

-- Whether an agent can take a task now: idle, placed, and its worker registered.
local function available(agent)
  local f = redis.call('HMGET', key.agent(agent), 'status', 'process_id')
  if f[1] ~= 'idle' or empty(f[2]) then return nil end
  if redis.call('EXISTS', key.process(f[2])) == 0 then return nil end
  return f[2]
end

-- Hands queued tasks of the pool to its idle agents, longest idle first, until either runs
-- out; each worker is told at once. Stale entries in the idle set are dropped on the way.
local function dispatch(pool, now_ms, now)
  local idle, q = key.pool_idle(pool), key.pool_queue(pool)
  while true do
    local head = redis.call('ZRANGE', idle, 0, 0)
    if #head == 0 then return end
    local agent = head[1]
    local pid = available(agent)
    if not pid then
      redis.call('ZREM', idle, agent)
    else
      local task = redis.call('ZRANGE', q, 0, 0)
      if #task == 0 or not circuit_allows(pool, task[1], now_ms) then return end
      redis.call('ZREM', q, task[1])
      local run = start(task[1], agent, pid, now_ms, now)
      redis.call('PUBLISH', key.process_commands(pid),
        command('run_task', run, task[1] .. ':run', now))
    end
  end
end

-- A targeted task goes to its agent at once when the agent is idle.
local function offer_to_target(id, now_ms, now)
  local f = redis.call('HMGET', key.task(id), 'target_agent_id', 'pool_name')
  local pid = available(f[1])
  if not pid then return end
  redis.call('ZREM', key.agent_queue(f[1]), id)
  local run = start(id, f[1], pid, now_ms, now)
  redis.call('PUBLISH', key.process_commands(pid), command('run_task', run, id .. ':run', now))
end

-- An attempt ended without a result: retried after a backoff (`delay` = true), at once (the
-- worker died, not the task's fault), or failed for good once its attempts are spent.
local function retry_or_fail(id, pool, delay, now_ms, now)
  local t = key.task(id)
  local f = redis.call('HMGET', t, 'attempts', 'max_attempts', 'cancel')
  if f[3] == '1' then
    finalize(id, 'cancelled', now)
  elseif tonumber(f[1]) >= tonumber(f[2]) then
    finalize(id, 'failed', now)
    redis.call('ZADD', key.pool_dead(pool), now_ms, id)
  elseif delay then
    local r = rules(pool)
    local wait = math.min(r.backoff * 2 ^ (tonumber(f[1]) - 1), r.backoff_max)
    redis.call('HSET', t, 'status', 'queued', 'process_id', '')
    redis.call('ZADD', key.pool_delayed(pool), now_ms + wait, id)
  else
    enqueue(id)
  end
  announce(id, now)
end

-- The attempt an agent held ends with it (its worker died, it was terminated or moved):
-- retried at once elsewhere.
local function reclaim(agent, why, now_ms, now)
  local a = key.agent(agent)
  local id = redis.call('HGET', a, 'current_task')
  redis.call('HSET', a, 'current_task', '')
  if empty(id) then return end
  local t = key.task(id)
  local f = redis.call('HMGET', t, 'status', 'agent_id', 'pool_name')
  if f[1] ~= 'running' or f[2] ~= agent then return end
  redis.call('ZREM', key.pool_running(f[3]), id)
  redis.call('HSET', t, 'error', why)
  retry_or_fail(id, f[3], false, now_ms, now)
end

-- A task that only a removed agent may run can never run: failed.
local function fail_for_gone(id, agent, pool, now_ms, now)
  redis.call('HSET', key.task(id), 'error', 'its agent ' .. agent .. ' was terminated')
  finalize(id, 'failed', now)
  redis.call('ZADD', key.pool_dead(pool), now_ms, id)
  announce(id, now)
end

-- Tasks waiting in the queue of an agent that is gone can never run.
local function fail_asked(agent, pool, now_ms, now)
  local q = key.agent_queue(agent)
  for _, id in ipairs(redis.call('ZRANGE', q, 0, -1)) do
    redis.call('ZREM', key.pool_asked(pool), id)
    fail_for_gone(id, agent, pool, now_ms, now)
  end
  redis.call('DEL', q)
end

-- Nor can the retries of their tasks that wait out a backoff: they are in the pool's schedule,
-- not in the agents' queues. `gone` is a set of agent ids; the schedule is read once for all
-- of them (it holds only attempts that failed recently).
local function fail_delayed(gone, pool, now_ms, now)
  if next(gone) == nil then return end
  local delayed = key.pool_delayed(pool)
  for _, id in ipairs(redis.call('ZRANGE', delayed, 0, -1)) do
    local agent = redis.call('HGET', key.task(id), 'target_agent_id')
    if agent and gone[agent] then
      redis.call('ZREM', delayed, id)
      fail_for_gone(id, agent, pool, now_ms, now)
    end
  end
end
