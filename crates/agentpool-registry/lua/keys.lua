-- Prepended to every script: the one place the Lua side spells key names (`redis/keys.rs` is
-- the Rust side's). Every script gets the key prefix as ARGV[1]; its own arguments follow.
local PREFIX = ARGV[1]
local key = {}
function key.pools() return PREFIX .. 'pools' end
function key.pool_processes(pool) return PREFIX .. 'pool:' .. pool .. ':processes' end
function key.pool_agents(pool) return PREFIX .. 'pool:' .. pool .. ':agents' end
function key.process(id) return PREFIX .. 'process:' .. id end
function key.process_agents(id) return PREFIX .. 'process:' .. id .. ':agents' end
function key.heartbeats() return PREFIX .. 'processes:heartbeats' end
function key.agent(id) return PREFIX .. 'agent:' .. id end
function key.reaped(id) return PREFIX .. 'reaped:' .. id end
function key.lock(name) return PREFIX .. 'lock:' .. name end
function key.pool_queue(pool) return PREFIX .. 'pool:' .. pool .. ':queue' end
function key.pool_asked(pool) return PREFIX .. 'pool:' .. pool .. ':asked' end
function key.pool_delayed(pool) return PREFIX .. 'pool:' .. pool .. ':delayed' end
function key.pool_running(pool) return PREFIX .. 'pool:' .. pool .. ':running' end
function key.pool_idle(pool) return PREFIX .. 'pool:' .. pool .. ':idle' end
function key.pool_dead(pool) return PREFIX .. 'pool:' .. pool .. ':dead' end
function key.pool_circuit(pool) return PREFIX .. 'pool:' .. pool .. ':circuit' end
function key.pool_events(pool) return PREFIX .. 'pool:' .. pool .. ':events' end
function key.process_commands(id) return PREFIX .. 'process:' .. id .. ':commands' end
function key.task(id) return PREFIX .. 'task:' .. id end
function key.agent_queue(id) return PREFIX .. 'agent:' .. id .. ':queue' end
function key.pool_rules(pool) return PREFIX .. 'pool:' .. pool .. ':rules' end
