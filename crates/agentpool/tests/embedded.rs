//! The embedded default: no Redis, no Postgres. The registry lives in the master, workers
//! reach it over a Unix socket in the data directory, and SQLite keeps the desired state.
//! By design, workers stop with the master here (they outlive it in Redis mode).

mod common;

use agentpool_testkit::{MasterOptions, TempDir, TestMaster, wait_until, worker_pids};
use common::WAIT;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::HashSet;

const CONFIG: &str = r#"
heartbeat_interval_ms = 200
heartbeat_timeout_ms = 1500
reconcile_interval_ms = 1000

[[pools]]
name = "p"
role = "tester"
max_agents_per_process = 10
max_processes = 30
"#;

struct Embedded {
    data: TempDir,
    masters: Vec<TestMaster>,
}

impl Embedded {
    async fn start() -> Embedded {
        let mut e = Embedded {
            data: TempDir::new("agentpool-embedded"),
            masters: vec![],
        };
        e.start_master().await;
        e
    }

    /// The URL workers are given: the socket in the data directory.
    fn control_url(&self) -> String {
        format!(
            "unix://{}",
            self.data.path().join("agentpool.sock").display()
        )
    }

    async fn start_master(&mut self) {
        let master = TestMaster::start(MasterOptions {
            bin: env!("CARGO_BIN_EXE_agentpool").into(),
            // What the testkit matches workers by; REDIS_URL itself is unset below.
            redis_url: self.control_url(),
            config_toml: CONFIG.into(),
            env: vec![
                ("REDIS_URL".into(), String::new()),
                (
                    "AGENTPOOL_DATA_DIR".into(),
                    self.data.path().display().to_string(),
                ),
            ],
            ..Default::default()
        })
        .await;
        self.masters.push(master);
    }

    fn master(&self) -> &TestMaster {
        self.masters.last().expect("master")
    }

    async fn agents(&self) -> Vec<Value> {
        let (_, list) = self.master().get("/api/v1/agents?pool=p").await;
        list.as_array().cloned().unwrap_or_default()
    }

    async fn pool(&self) -> Value {
        let (status, p) = self.master().get("/api/v1/pools/p").await;
        assert_eq!(status, 200, "{p}");
        p
    }

    /// No worker over capacity, and the pool's counts add up.
    async fn assert_consistent(&self, agents: usize) {
        let p = self.pool().await;
        let procs = p["processes"].as_array().unwrap();
        let held: u64 = procs
            .iter()
            .map(|w| w["agent_count"].as_u64().unwrap())
            .sum();
        for w in procs {
            assert!(w["agent_count"].as_u64().unwrap() <= 10, "{w}");
        }
        assert_eq!(held, agents as u64, "{p}");
        assert_eq!(p["agent_count"], agents);
        assert_eq!(p["used_capacity"], agents);
        assert_eq!(
            p["total_capacity"].as_u64().unwrap(),
            10 * procs.len() as u64
        );
    }
}

#[tokio::test]
async fn serves_without_redis_and_twenty_five_agents_make_three_workers() {
    let e = Embedded::start().await;
    assert!(
        e.master().log().contains("Embedded"),
        "auto picked the embedded registry"
    );
    let (status, body) = e
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 25}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(worker_pids(&e.control_url()).len(), 3);
    let mut free: Vec<u64> = e.pool().await["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| 10 - w["agent_count"].as_u64().unwrap())
        .collect();
    free.sort();
    assert_eq!(free, [0, 0, 5]);
    e.assert_consistent(25).await;
    let row = e.master().get("/api/v1/pools").await.1[0].clone();
    assert_eq!(
        (row["process_count"].as_u64(), row["agent_count"].as_u64()),
        (Some(3), Some(25))
    );
}

#[tokio::test]
async fn concurrency_never_overfills_a_worker_in_embedded_mode() {
    let e = Embedded::start().await;
    let spawns = (0..150).map(|_| e.master().post("/api/v1/agents", json!({"pool": "p"})));
    let answers = futures::future::join_all(spawns).await;
    let mut ids = HashSet::new();
    for (status, body) in answers {
        assert_eq!(status, 201, "{body}");
        assert!(ids.insert(body["agent_id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(worker_pids(&e.control_url()).len(), 15);
    e.assert_consistent(150).await;
}

#[tokio::test]
async fn a_killed_worker_is_reaped_and_its_agents_run_elsewhere() {
    let e = Embedded::start().await;
    let (status, placed) = e
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 10}))
        .await;
    assert_eq!(status, 201);
    let old = placed[0]["process_id"].as_str().unwrap().to_owned();
    let pid = worker_pids(&e.control_url())[0];
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    wait_until("the 10 agents to run in another worker", WAIT, || async {
        let list = e.agents().await;
        list.len() == 10
            && list
                .iter()
                .all(|a| a["status"] == "idle" && a["process_id"] != old.as_str())
    })
    .await;
    e.assert_consistent(10).await;
}

#[tokio::test]
async fn a_restarted_master_restores_every_agent_from_sqlite() {
    let mut e = Embedded::start().await;
    let (status, placed) = e
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 20}))
        .await;
    assert_eq!(status, 201);
    let ids: HashSet<String> = placed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect();
    let old_pids = worker_pids(&e.control_url());

    e.masters.last_mut().unwrap().kill();
    // Different by design from Redis mode: the workers go with the master.
    wait_until("the workers to stop with the master", WAIT, || async {
        worker_pids(&e.control_url())
            .iter()
            .all(|p| !old_pids.contains(p))
    })
    .await;
    e.start_master().await;
    wait_until("every agent running again", WAIT, || async {
        let list = e.agents().await;
        let now: HashSet<String> = list
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
            .collect();
        now == ids && list.iter().all(|a| a["status"] == "idle")
    })
    .await;
    e.assert_consistent(20).await;
}

/// An agent's own restart policy is desired state too: it comes back with the agent.
#[tokio::test]
async fn a_restored_agent_keeps_its_own_restart_policy() {
    let mut e = Embedded::start().await;
    let mut ids = Vec::new();
    for policy in ["temporary", "transient"] {
        let body = json!({"pool": "p", "restart": policy});
        let (status, agent) = e.master().post("/api/v1/agents", body).await;
        assert_eq!(status, 201, "{agent}");
        assert_eq!(agent["restart"], policy);
        ids.push((agent["agent_id"].as_str().unwrap().to_owned(), policy));
    }
    e.masters.last_mut().unwrap().kill();
    e.start_master().await;
    wait_until("both agents restored", WAIT, || async {
        let list = e.agents().await;
        list.len() == 2 && list.iter().all(|a| a["status"] == "idle")
    })
    .await;
    for (id, policy) in ids {
        let (_, agent) = e.master().get(&format!("/api/v1/agents/{id}")).await;
        assert_eq!(agent["restart"], policy, "{agent}");
    }
}

/// Stopping is not a failure: a SIGTERM stops the workers without orphaning their agents,
/// and nothing is logged as an error.
#[tokio::test]
async fn a_sigterm_stops_the_workers_without_an_error() {
    let mut e = Embedded::start().await;
    let (status, _) = e
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 25}))
        .await;
    assert_eq!(status, 201);
    let pids = worker_pids(&e.control_url());
    assert_eq!(pids.len(), 3);
    let master = e.masters.last_mut().unwrap();
    let exit = master.terminate().await;
    assert!(exit.success(), "master exit: {exit:?}");
    for pid in pids {
        assert!(
            kill(Pid::from_raw(pid), None).is_err(),
            "worker {pid} stopped"
        );
    }
    let log = master.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("orphan"))
        .collect();
    assert!(errors.is_empty(), "a normal shutdown logged: {errors:#?}");
}

#[tokio::test]
async fn a_redis_url_at_a_dead_port_is_an_error_not_embedded_mode() {
    let data = TempDir::new("agentpool-deadredis");
    let port = agentpool_testkit::free_port();
    let log = data.path().join("master.log");
    let out = std::fs::File::create(&log).unwrap();
    let listen = format!("127.0.0.1:{}", agentpool_testkit::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentpool"))
        .args(["serve", "--listen", &listen])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .env("AGENTPOOL_DATA_DIR", data.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    wait_until("the master to say Redis is unreachable", WAIT, || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("redis unreachable; retrying"))
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")),
        "names the URL: {text}"
    );
    assert!(
        !text.contains("embedded registry"),
        "never falls back: {text}"
    );
    assert!(!data.path().join("agentpool.sock").exists());
    // It answers at once meanwhile, naming what it waits for, instead of hanging.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let health = http.get(format!("http://{listen}/health")).send().await;
    let health = health.expect("an answer, not a hang");
    assert_eq!(health.status().as_u16(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["waiting_for"].as_str()),
        (Some("starting"), Some("redis")),
        "{body}"
    );
    let pools = http
        .get(format!("http://{listen}/api/v1/pools"))
        .send()
        .await
        .unwrap();
    assert_eq!(pools.status().as_u16(), 503);
    let body: Value = pools.json().await.unwrap();
    assert_eq!(body["error"]["code"], "redis_unavailable", "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

fn agentpool(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentpool"));
    cmd.args(args).env_remove("REDIS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run agentpool");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn info_says_which_mode_auto_picks_and_why() {
    let data = TempDir::new("agentpool-info");
    let dir = data.path().display().to_string();
    let text = agentpool(&["info"], &[("AGENTPOOL_DATA_DIR", &dir)]);
    assert!(
        text.contains("mode:      embedded (auto: no Redis URL configured"),
        "{text}"
    );
    assert!(
        text.contains(&format!("store:     sqlite {dir}/agentpool.sqlite")),
        "{text}"
    );
    assert!(text.contains("developer"), "lists the pools: {text}");

    let port = agentpool_testkit::free_port();
    let url = format!("redis://:secret@127.0.0.1:{port}");
    let text = agentpool(
        &["info"],
        &[("AGENTPOOL_DATA_DIR", &dir), ("REDIS_URL", &url)],
    );
    assert!(
        text.contains("mode:      redis (auto: a Redis URL is configured (REDIS_URL))"),
        "{text}"
    );
    assert!(
        text.contains(&format!("redis://:***@127.0.0.1:{port} (unreachable")),
        "{text}"
    );
    assert!(!text.contains("secret"), "the password is masked: {text}");
}

#[tokio::test]
async fn cleanup_removes_old_history_and_says_what() {
    let mut e = Embedded::start().await;
    let (status, placed) = e
        .master()
        .post("/api/v1/pools/p/agents", json!({"count": 3}))
        .await;
    assert_eq!(status, 201);
    let (status, task) = e
        .master()
        .post("/api/v1/pools/p/tasks?wait=10", json!({"input": "x"}))
        .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["status"], "succeeded", "{task}");
    for a in placed.as_array().unwrap() {
        let id = a["agent_id"].as_str().unwrap();
        assert_eq!(
            e.master().delete(&format!("/api/v1/agents/{id}")).await.0,
            200
        );
    }
    assert!(e.masters.last_mut().unwrap().terminate().await.success());

    let dir = e.data.path().display().to_string();
    let env = [("AGENTPOOL_DATA_DIR", dir.as_str())];
    let first = agentpool(&["cleanup", "--retention-days", "0"], &env);
    let removed = |text: &str| -> u64 {
        let at = text.find("removed ").expect("a report") + "removed ".len();
        text[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        removed(&first) >= 3 * 2,
        "spawned and terminated events of 3 agents: {first}"
    );
    assert!(first.contains("3 stopped agents"), "{first}");
    assert!(first.contains("removed 1 finished tasks"), "{first}");
    let second = agentpool(&["cleanup", "--retention-days", "0"], &env);
    assert_eq!(removed(&second), 0, "{second}");
    assert!(second.contains("removed 0 finished tasks"), "{second}");
}
