//! Auto-scaling and the registry layout: 25 agents in workers of 10 make 3 workers scored
//! 0, 0 and 5, under exactly the key names of the design; terminating frees every slot.

mod common;

use agentpool_testkit::worker_pids;
use common::{Cluster, config};
use redis::AsyncCommands;
use serde_json::json;

/// Redis only: it checks the Redis key schema itself; embedded.rs checks the same counts.
#[tokio::test]
async fn twenty_five_agents_make_three_workers_and_terminating_frees_every_slot() {
    let c = Cluster::start(config(10, 10, "")).await;

    let (status, agents) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 25}))
        .await;
    assert_eq!(status, 201, "{agents}");
    let agents = agents.as_array().expect("array").clone();
    assert_eq!(agents.len(), 25);
    assert!(agents.iter().all(|a| a["status"] == "idle"), "all running");

    let pids = worker_pids(&c.control_url());
    assert_eq!(pids.len(), 3, "exactly 3 live worker processes: {pids:?}");
    let mut scores: Vec<i64> = c.scores("p").await.into_iter().map(|(_, s)| s).collect();
    scores.sort();
    assert_eq!(scores, [0, 0, 5]);

    // Every key exactly as the design names it.
    let mut r = c.conn().await;
    let pools: Vec<String> = r.smembers("pools").await.unwrap();
    assert_eq!(pools, ["p"]);
    let pool_agents: Vec<String> = r.smembers("pool:p:agents").await.unwrap();
    assert_eq!(pool_agents.len(), 25);
    let beats: Vec<(String, f64)> = r
        .zrange_withscores("processes:heartbeats", 0, -1)
        .await
        .unwrap();
    assert_eq!(beats.len(), 3);
    let mut registered_pids = Vec::new();
    for (process, _) in c.scores("p").await {
        let h: std::collections::HashMap<String, String> =
            r.hgetall(format!("process:{process}")).await.unwrap();
        for field in [
            "process_id",
            "pool_name",
            "pid",
            "host",
            "max_agents",
            "agent_count",
            "status",
            "started_at",
            "last_heartbeat",
            "rss_bytes",
            "cpu_percent",
        ] {
            assert!(
                h.contains_key(field),
                "process:{process} lacks {field}: {h:?}"
            );
        }
        assert_eq!(h["status"], "running");
        assert_eq!(
            h["agent_count"],
            c.assigned(&process).await.len().to_string()
        );
        registered_pids.push(h["pid"].parse::<i32>().unwrap());
    }
    registered_pids.sort();
    let mut live = pids.clone();
    live.sort();
    assert_eq!(
        registered_pids, live,
        "registry pids are the live processes"
    );
    for a in &agents {
        let id = a["agent_id"].as_str().unwrap();
        let h: std::collections::HashMap<String, String> =
            r.hgetall(format!("agent:{id}")).await.unwrap();
        for field in [
            "agent_id",
            "pool_name",
            "role_type",
            "name",
            "process_id",
            "status",
            "restarts",
            "registered_at",
            "updated_at",
            "metadata",
        ] {
            assert!(h.contains_key(field), "agent:{id} lacks {field}");
        }
        assert_eq!(h["role_type"], "tester");
        let owner = &h["process_id"];
        let members: Vec<String> = r.smembers(format!("process:{owner}:agents")).await.unwrap();
        assert!(members.contains(&id.to_owned()));
    }
    c.assert_pools_match_registry("p", 10).await;
    let row = c.pool_row("p").await;
    assert_eq!(row["agent_count"], 25);
    assert_eq!(row["utilization"], 0.8333);

    // Terminate them all, checking /pools against the registry along the way.
    for (i, a) in agents.iter().enumerate() {
        let id = a["agent_id"].as_str().unwrap();
        let graceful = i % 2 == 0;
        let (status, body) = c
            .master
            .delete(&format!("/api/v1/agents/{id}?graceful={graceful}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "stopped");
        let exists: bool = r.exists(format!("agent:{id}")).await.unwrap();
        assert!(!exists, "agent:{id} removed");
        if i % 5 == 4 {
            c.assert_pools_match_registry("p", 10).await;
        }
    }
    let scores: Vec<i64> = c.scores("p").await.into_iter().map(|(_, s)| s).collect();
    assert_eq!(scores, [10, 10, 10], "every slot is free again");
    let left: Vec<String> = r.smembers("pool:p:agents").await.unwrap();
    assert!(left.is_empty());
    let row = c.pool_row("p").await;
    assert_eq!(row["agent_count"], 0);
    assert_eq!(row["available_capacity"], 30);
    let (_, gone) = c
        .master
        .get(&format!(
            "/api/v1/agents/{}",
            agents[0]["agent_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(gone["error"]["code"], "unknown_agent");
}
