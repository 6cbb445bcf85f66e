//! Durable desired state, against both stores: Postgres through a real PgBouncer, and SQLite.
//! One test body, two setups. A master restart is a non-event, a wiped Redis is restored, a
//! database outage answers 503 and leaves nothing behind, and every agent has its history.

mod common;

use agentpool_testkit::{
    MasterOptions, TempDir, TestMaster, TestPgBouncer, TestPostgres, TestRedis, wait_for,
    wait_until, worker_pids,
};
use common::WAIT;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

const CONFIG: &str = r#"
heartbeat_interval_ms = 200
heartbeat_timeout_ms = 1500
reconcile_interval_ms = 1000
shutdown_grace_ms = 5000

[[pools]]
name = "p"
role = "tester"
max_agents_per_process = 10
max_processes = 10
"#;

/// Which store a test runs against.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// Redis, a database, and the masters started on them (kept to the end: dropping one kills
/// the workers).
struct Stack {
    redis: TestRedis,
    data: TempDir,
    _pg: Option<(TestPostgres, TestPgBouncer)>,
    bouncer_env: Vec<(String, String)>,
    masters: Vec<TestMaster>,
}

impl Stack {
    async fn start(kind: Kind) -> Stack {
        let redis = TestRedis::start().await;
        let data = TempDir::new("agentpool-data");
        let (pg, bouncer_env) = match kind {
            Kind::Sqlite => (None, vec![]),
            Kind::Postgres => {
                let pg = TestPostgres::create().await;
                let bouncer = TestPgBouncer::in_front_of(&pg).await;
                let env = vec![
                    ("DATABASE_URL".to_owned(), pg.url()),
                    ("PGBOUNCER_URL".to_owned(), bouncer.url()),
                ];
                (Some((pg, bouncer)), env)
            }
        };
        let mut stack = Stack {
            redis,
            data,
            _pg: pg,
            bouncer_env,
            masters: vec![],
        };
        stack.start_master().await;
        stack
    }

    async fn start_master(&mut self) {
        let mut env = self.bouncer_env.clone();
        // Every master of the stack shares the data directory (the SQLite file, the logs).
        env.push((
            "AGENTPOOL_DATA_DIR".into(),
            self.data.path().display().to_string(),
        ));
        let master = TestMaster::start(MasterOptions {
            bin: env!("CARGO_BIN_EXE_agentpool").into(),
            redis_url: self.redis.url(),
            config_toml: CONFIG.into(),
            env,
            ..Default::default()
        })
        .await;
        self.masters.push(master);
    }

    fn master(&self) -> &TestMaster {
        self.masters.last().expect("a master")
    }

    fn bouncer(&mut self) -> &mut TestPgBouncer {
        &mut self._pg.as_mut().expect("postgres setup").1
    }

    async fn agents(&self) -> Vec<Value> {
        let (_, list) = self.master().get("/api/v1/agents?pool=p").await;
        list.as_array().cloned().unwrap_or_default()
    }

    async fn events(&self, id: &str) -> Vec<String> {
        let (_, list) = self
            .master()
            .get(&format!("/api/v1/agents/{id}/events"))
            .await;
        list.as_array()
            .into_iter()
            .flatten()
            .map(|e| e["event"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Every key and value, minus what changes on its own (heartbeats, the reaper lock).
    async fn registry(&self) -> BTreeMap<String, String> {
        let mut c = self.redis.conn().await;
        let keys: Vec<String> = c.keys("*").await.unwrap();
        let mut out = BTreeMap::new();
        for k in keys
            .into_iter()
            .filter(|k| !k.starts_with("lock:") && k != "processes:heartbeats")
        {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap();
            let v = match kind.as_str() {
                "hash" => {
                    let mut h: BTreeMap<String, String> = c.hgetall(&k).await.unwrap();
                    for f in ["last_heartbeat", "rss_bytes", "cpu_percent"] {
                        h.remove(f);
                    }
                    format!("{h:?}")
                }
                "set" => {
                    let mut s: Vec<String> = c.smembers(&k).await.unwrap();
                    s.sort();
                    format!("{s:?}")
                }
                "zset" => format!(
                    "{:?}",
                    c.zrange_withscores::<_, Vec<(String, i64)>>(&k, 0, -1)
                        .await
                        .unwrap()
                ),
                other => other.to_owned(),
            };
            out.insert(k, v);
        }
        out
    }
}

async fn spawn_30(s: &Stack) -> HashSet<String> {
    let (status, body) = s
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 30}))
        .await;
    assert_eq!(status, 201, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn all_running(s: &Stack, ids: &HashSet<String>) -> bool {
    let list = s.agents().await;
    let now: HashSet<String> = list
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
        .collect();
    &now == ids && list.iter().all(|a| a["status"] == "idle")
}

macro_rules! both_stores {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $body(Kind::Sqlite).await
        }
        #[tokio::test]
        async fn $postgres() {
            $body(Kind::Postgres).await
        }
    };
}

both_stores!(master_restart: master_restart_sqlite, master_restart_postgres);
both_stores!(redis_wiped: redis_wiped_sqlite, redis_wiped_postgres);
both_stores!(audit_trail: audit_trail_sqlite, audit_trail_postgres);

async fn master_restart(kind: Kind) {
    let mut s = Stack::start(kind).await;
    let ids = spawn_30(&s).await;
    let pids = worker_pids(&s.redis.url());
    assert_eq!(pids.len(), 3);
    let sample: Vec<String> = ids.iter().take(5).cloned().collect();
    for id in &sample {
        wait_until("the start to be in the history", WAIT, || async {
            s.events(id).await.contains(&"started".to_owned())
        })
        .await;
    }
    let before = s.registry().await;

    s.masters.last_mut().unwrap().kill();
    s.start_master().await;

    assert!(s.master().log().contains("adopted live worker"), "{kind:?}");
    assert_eq!(
        worker_pids(&s.redis.url()),
        pids,
        "the same worker processes"
    );
    assert!(all_running(&s, &ids).await);
    assert_eq!(s.registry().await, before, "the registry is unchanged");
    // None was started twice: the registry (statuses, epochs, update times) is unchanged, and
    // each agent's history still has exactly one start.
    for id in &sample {
        let events = s.events(id).await;
        assert_eq!(
            events.iter().filter(|e| *e == "started").count(),
            1,
            "{id}: {events:?}"
        );
    }

    // The new master drains and terminates on adopted workers as on its own.
    let victim = s.agents().await[0]["process_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = s
        .master()
        .delete(&format!("/api/v1/processes/{victim}"))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until(
        "agents of the drained worker to run elsewhere",
        WAIT,
        || async {
            all_running(&s, &ids).await
                && s.agents()
                    .await
                    .iter()
                    .all(|a| a["process_id"] != victim.as_str())
        },
    )
    .await;
    let one = ids.iter().next().unwrap();
    assert_eq!(
        s.master().delete(&format!("/api/v1/agents/{one}")).await.0,
        200
    );
    let row = s.master().get("/api/v1/pools").await.1[0].clone();
    assert_eq!(row["agent_count"], 29, "{row}");
}

async fn redis_wiped(kind: Kind) {
    let s = Stack::start(kind).await;
    let ids = spawn_30(&s).await;
    // Lose a worker as well, so its agents can only come back from the store.
    let pids = worker_pids(&s.redis.url());
    let mut c = s.redis.conn().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    kill(Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();

    wait_until("all 30 agents to run again", WAIT, || async {
        all_running(&s, &ids).await
    })
    .await;
    let row = s.master().get("/api/v1/pools").await.1[0].clone();
    assert_eq!(
        (row["agent_count"].as_i64(), row["used_capacity"].as_i64()),
        (Some(30), Some(30)),
        "{row}"
    );
    // Workers may bring their agents back before the master's next check sees the wipe.
    wait_until("the master to notice the wipe", WAIT, || async {
        s.master().log().contains("lost its pools")
    })
    .await;
}

async fn audit_trail(kind: Kind) {
    let s = Stack::start(kind).await;
    let (status, agent) = s
        .master()
        .post("/api/v1/agents", json!({"pool": "p"}))
        .await;
    assert_eq!(status, 201);
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    let pid = worker_pids(&s.redis.url())[0];
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    wait_until("the agent to run in a new worker", WAIT, || async {
        let (_, a) = s.master().get(&format!("/api/v1/agents/{id}")).await;
        a["status"] == "idle" && a["process_id"] != agent["process_id"]
    })
    .await;
    assert_eq!(
        s.master().delete(&format!("/api/v1/agents/{id}")).await.0,
        200
    );

    let events = wait_for("the full history", WAIT, || async {
        let e = s.events(&id).await;
        e.contains(&"terminated".to_owned()).then_some(e)
    })
    .await;
    let wanted = [
        "spawned",
        "started",
        "orphaned",
        "rescheduled",
        "started",
        "terminated",
    ];
    let mut at = events.iter();
    for w in wanted {
        assert!(
            at.any(|e| e == w),
            "{w} missing or out of order in {events:?}"
        );
    }
    // The history outlives the agent.
    assert_eq!(s.master().get(&format!("/api/v1/agents/{id}")).await.0, 404);
}

/// Postgres only: SQLite has no server to lose.
#[tokio::test]
async fn database_down_answers_503_and_recovers_by_itself() {
    let mut s = Stack::start(Kind::Postgres).await;
    assert_eq!(
        s.master()
            .post("/api/v1/agents", json!({"pool": "p"}))
            .await
            .0,
        201
    );
    let before = s.registry().await;

    s.bouncer().stop();
    let (status, body) = s
        .master()
        .post("/api/v1/agents", json!({"pool": "p"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database")
    );
    assert_eq!(s.registry().await, before, "no reservation left behind");
    let (status, _) = s.master().get("/api/v1/pools").await;
    assert_eq!(status, 200, "reads keep being served from Redis");
    let (status, health) = s.master().get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        health["database"]["error"], "database unavailable",
        "{health}"
    );
    assert_eq!(health["redis"]["status"], "up", "{health}");

    s.bouncer().start().await;
    wait_until("spawn to work again without a restart", WAIT, || async {
        s.master()
            .post("/api/v1/agents", json!({"pool": "p"}))
            .await
            .0
            == 201
    })
    .await;
}

/// Postgres only: the database refusing connections (as an operator takes it away) is an
/// outage like any other: 503 naming the database, the driver's words only in the log.
#[tokio::test]
async fn a_database_refusing_connections_answers_503_not_500() {
    let s = Stack::start(Kind::Postgres).await;
    let (status, agent) = s
        .master()
        .post("/api/v1/agents", json!({"pool": "p"}))
        .await;
    assert_eq!(status, 201, "{agent}");
    let pg = &s._pg.as_ref().expect("postgres setup").0;
    pg.refuse_connections(true).await;
    let (status, body) = s
        .master()
        .post("/api/v1/agents", json!({"pool": "p"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    let id = agent["agent_id"].as_str().unwrap();
    let (status, body) = s.master().delete(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    let (status, health) = s.master().get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        health["database"]["error"], "database unavailable",
        "{health}"
    );
    assert!(
        !health.to_string().contains("accepting connections"),
        "no driver text in the answer: {health}"
    );
    pg.refuse_connections(false).await;
    wait_until("spawn to work again", WAIT, || async {
        s.master()
            .post("/api/v1/agents", json!({"pool": "p"}))
            .await
            .0
            == 201
    })
    .await;
    assert_eq!(
        s.master().get(&format!("/api/v1/agents/{id}")).await.0,
        200,
        "never half-terminated"
    );
}

/// Two masters on one Redis and one Postgres: either answers for agents the other spawned,
/// and killing one loses nothing and restarts no agent.
#[tokio::test]
async fn two_masters_share_the_pool_and_survive_one_killed() {
    let mut s = Stack::start(Kind::Postgres).await;
    s.start_master().await;
    let (a, b) = (&s.masters[0], &s.masters[1]);
    let (status, body) = a.post("/api/v1/pools/p/agents", json!({"count": 12})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = b.post("/api/v1/pools/p/agents", json!({"count": 8})).await;
    assert_eq!(status, 201, "{body}");
    let ids: HashSet<String> = s
        .agents()
        .await
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 20);
    for m in &s.masters {
        let (_, list) = m.get("/api/v1/agents?pool=p").await;
        assert_eq!(
            list.as_array().map(Vec::len),
            Some(20),
            "every master sees all"
        );
    }
    let pids = worker_pids(&s.redis.url());

    s.masters[0].kill();
    let b = &s.masters[1];
    let (status, body) = b.post("/api/v1/pools/p/agents", json!({"count": 5})).await;
    assert_eq!(status, 201, "the survivor spawns: {body}");
    let mut all = ids.clone();
    all.extend(
        body.as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap().to_owned()),
    );
    wait_until("all 25 agents to run", WAIT, || async {
        all_running(&s, &all).await
    })
    .await;
    for pid in &pids {
        assert!(
            kill(Pid::from_raw(*pid), None).is_ok(),
            "worker {pid} outlived the master that started it"
        );
    }
    let list = s.agents().await;
    assert!(
        list.iter().all(|a| a["restarts"] == 0),
        "no agent restarted: {list:?}"
    );
}
