//! Pub/sub is only a wake-up: an agent placed with its spawn command never published still
//! ends up running, through the worker's reconcile on its next heartbeat.

mod common;

use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{Registry, Reservation};
use agentpool_testkit::{wait_for, wait_until};
use agentpool_types::{AgentId, AgentSpec, Placement};
use common::{Cluster, WAIT, config, spawn};

/// Redis only: it places an agent through Redis from outside the master to drop the command.
#[tokio::test]
async fn an_agent_whose_spawn_command_was_dropped_still_runs() {
    let c = Cluster::start(config(10, 2, "")).await;
    // A first agent brings up a worker.
    let (status, first) = spawn(&c.master, "p").await;
    assert_eq!(status, 201, "{first}");

    // Place a second agent exactly as the master does, but publish no command.
    let registry = RedisRegistry::connect(&c.redis().url(), "").await.unwrap();
    let id = AgentId::new();
    let spec = AgentSpec {
        agent_id: id.clone(),
        pool_name: "p".into(),
        role_type: "tester".into(),
        name: "silent".into(),
        metadata: serde_json::json!({}),
        restart: None,
        autoscaled: false,
        secret_config: None,
    };
    let process = registry
        .reserve(Reservation::new(&spec, Placement::Pack))
        .await
        .unwrap()
        .expect("a free slot");
    assert_eq!(process.as_str(), first["process_id"].as_str().unwrap());
    let pending = registry.agent(&id).await.unwrap().unwrap();
    assert_eq!(pending.status.as_str(), "pending");

    let running = wait_for("reconcile to start the silent agent", WAIT, || async {
        let (_, a) = c.master.get(&format!("/api/v1/agents/{id}")).await;
        (a["status"] == "idle").then_some(a)
    })
    .await;
    assert_eq!(running["process_id"], first["process_id"]);
    assert_eq!(running["name"], "silent");
    c.assert_pools_match_registry("p", 10).await;

    // And the reverse: an agent released behind the worker's back (no terminate command) is
    // stopped by reconcile, as the worker's log says, and nothing is written back for it.
    registry.release(&id).await.unwrap().expect("known agent");
    let logs = c.data_dir().join("logs");
    wait_until("the worker to stop the released agent", WAIT, || async {
        std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                std::fs::read_to_string(f.path()).is_ok_and(|log| {
                    log.lines()
                        .any(|l| l.contains("reconcile: stopping") && l.contains(id.as_str()))
                })
            })
    })
    .await;
    let (status, _) = c.master.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(
        status, 404,
        "a fenced status write did not recreate the agent"
    );
    c.assert_pools_match_registry("p", 10).await;
}
