//! The Lua scripts, loaded once. Scripts that stamp times get `time.lua` prepended.

use redis::Script;
use std::sync::LazyLock;

macro_rules! timed {
    ($file:literal) => {
        concat!(include_str!("../../lua/time.lua"), include_str!($file))
    };
}

pub static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(timed!("../../lua/reserve.lua")));
pub static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/release.lua")));
pub static REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(timed!("../../lua/register.lua")));
pub static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(timed!("../../lua/heartbeat.lua")));
pub static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(timed!("../../lua/reap.lua")));
pub static DRAIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/drain.lua")));
pub static POOL_COUNTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/pool_counts.lua")));
pub static AGENT_STATUS: LazyLock<Script> =
    LazyLock::new(|| Script::new(timed!("../../lua/agent_status.lua")));
pub static PROCESS_STATUS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/process_status.lua")));
pub static STALE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/stale.lua")));
pub static LOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/lock.lua")));
pub static AGENT_MARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(timed!("../../lua/agent_mark.lua")));
