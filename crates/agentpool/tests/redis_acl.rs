//! Redis ACL least privilege: a redis-server with `requirepass` and the two users the README
//! documents, `agentpool-master` and `agentpool-worker`, each limited to the commands and key
//! patterns it needs (under a key prefix). The master and its workers, each as its own user,
//! spawn, run a task, reap a SIGKILLed worker and terminate an agent; the worker user is
//! refused what it has no business doing.

mod common;

use agentpool_testkit::procs::kill_workers;
use agentpool_testkit::{
    MasterOptions, RedisOptions, TestMaster, TestRedis, wait_for, wait_until, worker_pids,
};
use common::{WAIT, pool_config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const PREFIX: &str = "ap:";
const MASTER_PW: &str = "master-secret-pw";
const WORKER_PW: &str = "worker-secret-pw";

/// The commands both users need: connection setup, scripts, reads of hashes, pub/sub. The
/// client's `CLIENT SETINFO` at connect may be refused: it ignores that.
const COMMON: &str = "-@all +ping +hello +evalsha +script|load +hgetall \
    +publish +subscribe +unsubscribe +time";
/// What the worker's scripts (register, heartbeat, agent_status, agent_ready, task_finish,
/// process_status, with the task rules of tasks.lua) call.
const WORKER_COMMANDS: &str = "+exists +hget +hmget +hset +hincrby +sadd +scard +smembers \
    +zadd +zrem +zrange +del +pexpire";
/// What the master's scripts and direct commands add to that.
const MASTER_COMMANDS: &str = "+get +set +hsetnx +hmset +persist +pexpire +sismember +srem \
    +zcard +zcount +zincrby +zrangebyscore +zrevrangebyscore +zremrangebyscore +zscore \
    +psubscribe +punsubscribe";

/// `redis.conf` lines of the two users, with every key and channel pattern under `prefix`.
fn acl_users(prefix: &str) -> Vec<String> {
    let p = |patterns: &[&str], sigil: &str| -> String {
        patterns
            .iter()
            .map(|k| format!("{sigil}{prefix}{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let worker_keys = [
        "pools",
        "pool:*",
        "process:*",
        "processes:heartbeats",
        "agent:*",
        "task:*",
    ];
    let channels = p(&["pool:*", "process:*"], "&");
    vec![
        format!(
            "user agentpool-master on >{MASTER_PW} resetkeys {} {} resetchannels {channels} {} \
             {COMMON} {WORKER_COMMANDS} {MASTER_COMMANDS}",
            p(&worker_keys, "~"),
            p(&["reaped:*", "lock:*"], "~"),
            p(&["pool:*:events"], "&"),
        ),
        format!(
            "user agentpool-worker on >{WORKER_PW} resetkeys {} {} resetchannels {channels} \
             {COMMON} {WORKER_COMMANDS}",
            p(&worker_keys, "~"),
            p(&["reaped:*"], "%R~"),
        ),
    ]
}

/// Kills the workers of a URL when the test ends, passed or not: `TestMaster` only knows the
/// master's URL.
struct Workers(String);

impl Drop for Workers {
    fn drop(&mut self) {
        kill_workers(&self.0);
    }
}

async fn agents(m: &TestMaster) -> Vec<Value> {
    let (_, list) = m.get("/api/v1/agents?pool=p").await;
    list.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn master_and_workers_run_as_least_privilege_acl_users() {
    let redis = TestRedis::start_with(RedisOptions {
        password: Some("admin-pw".into()),
        conf: acl_users(PREFIX),
        ..RedisOptions::default()
    })
    .await;
    let worker_url = redis.url_as("agentpool-worker", WORKER_PW);
    let _workers = Workers(worker_url.clone());
    let fast = format!(
        "key_prefix = \"{PREFIX}\"\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 1500"
    );
    let master = TestMaster::start(MasterOptions {
        bin: env!("CARGO_BIN_EXE_agentpool").into(),
        redis_url: redis.url_as("agentpool-master", MASTER_PW),
        config_toml: pool_config(2, 4, &fast, ""),
        env: vec![("AGENTPOOL_WORKER_REDIS_URL".into(), worker_url.clone())],
        args: Vec::new(),
    })
    .await;

    let (status, spawned) = master
        .post("/api/v1/pools/p/agents", json!({"count": 3}))
        .await;
    assert_eq!(status, 201, "{spawned}");
    assert_eq!(
        worker_pids(&worker_url).len(),
        2,
        "workers use their own user"
    );

    let (status, task) = master
        .post("/api/v1/pools/p/tasks", json!({"input": "acl"}))
        .await;
    assert!(status == 201 || status == 202, "{status} {task}");
    let id = task["task_id"].as_str().expect("a task id").to_owned();
    let done = wait_for("the task to finish", WAIT, || async {
        let (_, t) = master.get(&format!("/api/v1/tasks/{id}")).await;
        (t["status"] == "succeeded" || t["status"] == "failed").then_some(t)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // SIGKILL the worker of the first agent: it is reaped and its agents run elsewhere.
    let victim = spawned[0]["process_id"].as_str().unwrap().to_owned();
    let (_, procs) = master.get("/api/v1/processes").await;
    let pid = procs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_id"] == victim.as_str())
        .and_then(|p| p["pid"].as_i64())
        .expect("the victim is listed") as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the worker");
    wait_until(
        "the killed worker's agents to run elsewhere",
        WAIT,
        || async {
            let list = agents(&master).await;
            list.len() == 3
                && list
                    .iter()
                    .all(|a| a["status"] == "idle" && a["process_id"] != victim.as_str())
        },
    )
    .await;

    let agent = spawned[1]["agent_id"].as_str().unwrap();
    let (status, body) = master.delete(&format!("/api/v1/agents/{agent}")).await;
    assert!((200..300).contains(&status), "{status} {body}");
    wait_until("the agent to be gone", WAIT, || async {
        agents(&master).await.len() == 2
    })
    .await;

    let logs = master.log() + &worker_logs(&master);
    assert!(
        !logs.to_lowercase().contains("noperm"),
        "a permission was missing:\n{logs}"
    );
    refused_to_the_worker(&redis, &worker_url).await;
}

/// The worker user may not wipe Redis, read configuration, or touch the master's leases.
async fn refused_to_the_worker(redis: &TestRedis, worker_url: &str) {
    let mut conn = redis
        .client_of(worker_url)
        .get_multiplexed_async_connection()
        .await
        .expect("the worker user connects");
    let lock = format!("{PREFIX}lock:reaper");
    let outside = "other-app:key";
    let attempts: Vec<(&str, redis::Cmd)> = vec![
        ("FLUSHALL", redis::cmd("FLUSHALL")),
        (
            "CONFIG GET",
            redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        ),
        ("KEYS", redis::cmd("KEYS").arg("*").clone()),
        ("HGETALL lease", redis::cmd("HGETALL").arg(&lock).clone()),
        (
            "HGETALL outside",
            redis::cmd("HGETALL").arg(outside).clone(),
        ),
        ("SET lease", redis::cmd("SET").arg(&lock).arg("x").clone()),
    ];
    for (what, cmd) in attempts {
        let err = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err(what);
        assert!(
            err.to_string().to_lowercase().contains("noperm"),
            "{what}: {err}"
        );
    }
}

fn worker_logs(master: &TestMaster) -> String {
    let dir = master.data_dir().join("logs");
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out += &std::fs::read_to_string(entry.path()).unwrap_or_default();
    }
    out
}
