-- task_submit: records tasks and queues them; idle agents get them at once (their workers are
-- told in the same step). Also puts back tasks the store has and Redis lost: a task already
-- known is left as it is, so a retried submit adds nothing.
-- ARGV[2] n, then 11 values per task: id, pool, target agent (or ''), priority, input JSON,
-- max attempts, timeout seconds (or ''), idempotency key (or ''), created_at, created_ms,
-- attempts already spent.
-- Returns how many tasks were new.
local ms, now = redis_now()
local n, added, pools = tonumber(ARGV[2]), 0, {}
for i = 0, n - 1 do
  local b = 3 + i * 11
  local id = ARGV[b]
  local t = key.task(id)
  if redis.call('EXISTS', t) == 0 then
    redis.call('HSET', t, 'task_id', id, 'pool_name', ARGV[b + 1], 'target_agent_id', ARGV[b + 2],
      'priority', ARGV[b + 3], 'input', ARGV[b + 4], 'max_attempts', ARGV[b + 5],
      'timeout_secs', ARGV[b + 6], 'idempotency_key', ARGV[b + 7], 'created_at', ARGV[b + 8],
      'created_ms', ARGV[b + 9], 'attempts', ARGV[b + 10], 'runs', ARGV[b + 10],
      'status', 'queued', 'output', '',
      'error', '', 'started_at', '', 'finished_at', '', 'process_id', '', 'cancel', '')
    enqueue(id)
    if not empty(ARGV[b + 2]) then
      offer_to_target(id, ms, now)
    end
    pools[ARGV[b + 1]] = true
    added = added + 1
  end
end
for pool in pairs(pools) do
  dispatch(pool, ms, now)
end
return added
