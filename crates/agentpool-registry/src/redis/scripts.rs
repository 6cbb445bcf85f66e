//! The Lua scripts, loaded once. Every script gets `keys.lua` (the key names) and `time.lua`
//! (Redis's clock as a timestamp) prepended, and takes the key prefix as `ARGV[1]`; the scripts
//! that move tasks also get `tasks.lua`, the queue's one set of rules.

use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../../lua/keys.lua"),
                include_str!("../../lua/time.lua"),
                include_str!(concat!("../../lua/", $file))
            ))
        });
    };
    (tasks $name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../../lua/keys.lua"),
                include_str!("../../lua/time.lua"),
                include_str!("../../lua/tasks.lua"),
                include_str!(concat!("../../lua/", $file))
            ))
        });
    };
}

script!(tasks RESERVE, "reserve.lua");
script!(tasks RELEASE, "release.lua");
script!(REGISTER, "register.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(tasks REAP, "reap.lua");
script!(DRAIN, "drain.lua");
script!(POOL_COUNTS, "pool_counts.lua");
script!(AGENT_STATUS, "agent_status.lua");
script!(PROCESS_STATUS, "process_status.lua");
script!(STALE, "stale.lua");
script!(LOCK, "lock.lua");
script!(AGENT_MARK, "agent_mark.lua");
script!(UNDRAIN, "undrain.lua");
script!(AGENT_RETIRE, "agent_retire.lua");
script!(tasks AGENT_READY, "agent_ready.lua");
script!(tasks TASK_SUBMIT, "task_submit.lua");
script!(tasks TASK_FINISH, "task_finish.lua");
script!(tasks TASK_TEND, "task_tend.lua");
script!(tasks TASK_CANCEL, "task_cancel.lua");
script!(tasks TASK_RETRY, "task_retry.lua");
