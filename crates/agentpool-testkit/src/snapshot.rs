//! The whole content of a Redis, comparable: equal snapshots mean a call changed nothing.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// Worker fields every heartbeat rewrites (in Redis hashes and in API answers alike).
pub const HEARTBEAT_FIELDS: [&str; 3] = ["last_heartbeat", "rss_bytes", "cpu_percent"];
/// The zset scored by each worker's last heartbeat.
const HEARTBEAT_ZSET: &str = "processes:heartbeats";

/// What a snapshot keeps of the values that heartbeats rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeats {
    /// Everything, byte for byte: for tests that drive every write themselves.
    Keep,
    /// Leaves out the heartbeat fields of worker hashes and the scores of
    /// `processes:heartbeats` (its members stay): for tests with live workers, whose
    /// heartbeats are not state a request changes.
    Ignore,
}

/// Every key as `key -> "<type>:<content>"`, sets and zsets in a stable order.
///
/// Panics on a key type the registry never writes (a list, a stream), so a stray write of
/// one shows up instead of hiding behind its type name.
pub async fn redis_snapshot(
    conn: &MultiplexedConnection,
    heartbeats: Heartbeats,
) -> BTreeMap<String, String> {
    let mut c = conn.clone();
    let keys: Vec<String> = c.keys("*").await.expect("KEYS");
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut c)
            .await
            .expect("TYPE");
        // A key that expired between KEYS and TYPE (a lock, a tombstone) is gone, not a type.
        if kind == "none" {
            continue;
        }
        let content = content(&mut c, &key, &kind, heartbeats).await;
        out.insert(key, format!("{kind}:{content}"));
    }
    out
}

async fn content(
    c: &mut MultiplexedConnection,
    key: &str,
    kind: &str,
    heartbeats: Heartbeats,
) -> String {
    let ignore = heartbeats == Heartbeats::Ignore;
    match kind {
        "string" => c.get::<_, String>(key).await.expect("GET"),
        "hash" => {
            let mut h: BTreeMap<String, String> = c.hgetall(key).await.expect("HGETALL");
            if ignore {
                for field in HEARTBEAT_FIELDS {
                    h.remove(field);
                }
            }
            format!("{h:?}")
        }
        "set" => {
            let mut s: Vec<String> = c.smembers(key).await.expect("SMEMBERS");
            s.sort();
            format!("{s:?}")
        }
        "zset" if ignore && key.ends_with(HEARTBEAT_ZSET) => {
            let m: Vec<String> = c.zrange(key, 0, -1).await.expect("ZRANGE");
            format!("{m:?}")
        }
        "zset" => {
            let m: Vec<(String, f64)> = c.zrange_withscores(key, 0, -1).await.expect("ZRANGE");
            format!("{m:?}")
        }
        other => panic!("unexpected key type {other} of {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestRedis;

    #[tokio::test]
    async fn shows_every_key_and_ignores_only_heartbeats_when_asked() {
        let redis = TestRedis::start().await;
        let mut c = redis.conn().await;
        assert!(redis_snapshot(&c, Heartbeats::Keep).await.is_empty());

        let _: () = c.set("reaped:w1", "1").await.unwrap();
        let _: () = c.sadd("pools", &["b", "a"]).await.unwrap();
        let _: () = c.zadd("pool:p:processes", "w1", 3).await.unwrap();
        let _: () = c.zadd(HEARTBEAT_ZSET, "w1", 1000).await.unwrap();
        let worker = [("pid", "42"), ("last_heartbeat", "t1"), ("rss_bytes", "1")];
        let _: () = c.hset_multiple("process:w1", &worker).await.unwrap();

        let kept = redis_snapshot(&c, Heartbeats::Keep).await;
        assert_eq!(kept["reaped:w1"], "string:1");
        assert_eq!(kept["pools"], r#"set:["a", "b"]"#);
        assert_eq!(kept["pool:p:processes"], r#"zset:[("w1", 3.0)]"#);
        let ignored = redis_snapshot(&c, Heartbeats::Ignore).await;
        assert_eq!(ignored["process:w1"], r#"hash:{"pid": "42"}"#);
        assert_eq!(ignored[HEARTBEAT_ZSET], r#"zset:["w1"]"#);

        // A heartbeat changes only what `Ignore` leaves out; anything else shows either way.
        let _: () = c.hset("process:w1", "last_heartbeat", "t2").await.unwrap();
        let _: () = c.zadd(HEARTBEAT_ZSET, "w1", 2000).await.unwrap();
        assert_eq!(redis_snapshot(&c, Heartbeats::Ignore).await, ignored);
        assert_ne!(redis_snapshot(&c, Heartbeats::Keep).await, kept);
        let _: () = c.hset("process:w1", "pid", "43").await.unwrap();
        assert_ne!(redis_snapshot(&c, Heartbeats::Ignore).await, ignored);
    }

    #[tokio::test]
    #[should_panic(expected = "unexpected key type list of l")]
    async fn panics_on_a_key_type_the_registry_never_writes() {
        let redis = TestRedis::start().await;
        let mut c = redis.conn().await;
        let _: () = c.rpush("l", "x").await.unwrap();
        redis_snapshot(&c, Heartbeats::Keep).await;
    }
}
