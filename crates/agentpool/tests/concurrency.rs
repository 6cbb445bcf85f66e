//! 200 concurrent spawn requests: every agent is placed exactly once, no worker holds more
//! than its capacity, and every score is capacity minus assigned agents.

mod common;

use common::{Cluster, config, spawn};
use std::collections::{HashMap, HashSet};

both_backends!(two_hundred_concurrent_spawns_never_overfill_a_worker: two_hundred_concurrent_spawns_never_overfill_a_worker_redis, two_hundred_concurrent_spawns_never_overfill_a_worker_embedded);

async fn two_hundred_concurrent_spawns_never_overfill_a_worker(backend: common::Backend) {
    let c = Cluster::start_on(backend, config(10, 40, "max_concurrent_starts = 4"), &[]).await;
    let requests = (0..200).map(|_| spawn(&c.master, "p"));
    let answers = futures::future::join_all(requests).await;
    let mut ids = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["status"], "idle");
        assert!(
            ids.insert(body["agent_id"].as_str().unwrap().to_owned()),
            "duplicate agent id"
        );
    }

    let scores = c.scores("p").await;
    assert_eq!(scores.len(), 20, "200 agents / 10 per worker: {scores:?}");
    let pids = agentpool_testkit::worker_pids(&c.control_url());
    assert_eq!(
        pids.len(),
        20,
        "no worker started beyond the demand: {pids:?}"
    );
    let mut owner: HashMap<String, String> = HashMap::new();
    for (process, score) in &scores {
        let assigned = c.assigned(process).await;
        assert!(assigned.len() <= 10, "{process} holds {}", assigned.len());
        assert_eq!(*score, 10 - assigned.len() as i64);
        for a in assigned {
            assert!(
                owner.insert(a.clone(), process.clone()).is_none(),
                "{a} assigned twice"
            );
        }
    }
    let placed: HashSet<String> = owner.keys().cloned().collect();
    assert_eq!(
        placed, ids,
        "every spawned agent is assigned, and nothing else"
    );
    c.assert_pools_match_registry("p", 10).await;

    // Each agent runs in the worker it is assigned to: the worker wrote its status.
    let (_, list) = c.master.get("/api/v1/agents?pool=p&status=idle").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 200);
    for a in list {
        let id = a["agent_id"].as_str().unwrap();
        assert_eq!(a["process_id"].as_str(), owner.get(id).map(String::as_str));
    }
}
