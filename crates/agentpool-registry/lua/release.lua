-- release: the reverse of reserve. Gives the agent's slot back and removes the agent.
-- KEYS[1] agent:<id>   ARGV[1] key prefix  ARGV[2] agent id
-- Returns the agent hash as a flat list, or nil when the agent is unknown.
local prefix, agent_id = ARGV[1], ARGV[2]
local hash = redis.call('HGETALL', KEYS[1])
if #hash == 0 then
  return false
end
local pool = redis.call('HGET', KEYS[1], 'pool_name')
local pid = redis.call('HGET', KEYS[1], 'process_id')
if pid and pid ~= '' then
  if redis.call('SREM', prefix .. 'process:' .. pid .. ':agents', agent_id) == 1 then
    redis.call('HINCRBY', prefix .. 'process:' .. pid, 'agent_count', -1)
    -- A draining worker is out of placement: its freed slot must not reappear there.
    local zkey = prefix .. 'pool:' .. pool .. ':processes'
    if redis.call('ZSCORE', zkey, pid) then
      redis.call('ZINCRBY', zkey, 1, pid)
    end
  end
end
redis.call('SREM', prefix .. 'pool:' .. pool .. ':agents', agent_id)
redis.call('DEL', KEYS[1])
return hash
