//! Spawn requests on both stores: a request and its agents are written in one step; an
//! idempotency key finds its request again, also when two requests race for it.

mod common;

use agentpool_store::{Begun, DesiredState, RequestState, SpawnRequest, Store};
use agentpool_types::{AgentId, AgentSpec, RestartPolicy};
use serde_json::json;
use std::sync::Arc;

both!(
    a_request_is_recorded_with_all_its_agents,
    an_idempotency_key_finds_its_request,
    two_requests_racing_for_one_key_record_one,
    refused_agents_are_forgotten,
);

fn agents(n: usize) -> Vec<AgentSpec> {
    (0..n)
        .map(|i| AgentSpec {
            agent_id: AgentId::new(),
            pool_name: "dev".into(),
            role_type: "developer".into(),
            name: format!("dev-{i}"),
            metadata: json!({"i": i}),
            restart: (i == 0).then_some(RestartPolicy::Transient),
            autoscaled: i == 1,
            secret_config: None,
        })
        .collect()
}

fn request(key: Option<&str>, count: u32) -> SpawnRequest {
    SpawnRequest::new(
        key.map(str::to_owned),
        "hash-a".into(),
        "dev",
        count,
        "master-1",
    )
}

async fn a_request_is_recorded_with_all_its_agents(store: Arc<dyn Store>) {
    // More than one INSERT chunk, so the transaction spans several statements.
    let specs = agents(1_200);
    let req = request(None, 1_200);
    assert_eq!(store.begin_spawn(&req, &specs).await.unwrap(), Begun::New);
    let rows = store.request_agents(&req.request_id).await.unwrap();
    assert_eq!(rows.len(), 1_200);
    let mut want = specs.clone();
    want.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let got: Vec<AgentSpec> = rows.iter().map(|r| r.spec.clone()).collect();
    assert_eq!(
        got, want,
        "every spec, restart policy and autoscaled mark included, round-trips"
    );
    assert!(
        rows.iter()
            .all(|r| r.desired_state == DesiredState::Running)
    );
    let events = store.events(&specs[7].agent_id).await.unwrap();
    assert_eq!(events.len(), 1, "the spawned event comes with each agent");

    let pending = store.pending_spawns().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].count, pending[0].state),
        (1_200, RequestState::Pending)
    );
    store
        .finish_spawn(&req.request_id, RequestState::Done, None)
        .await
        .unwrap();
    assert!(store.pending_spawns().await.unwrap().is_empty());
}

async fn an_idempotency_key_finds_its_request(store: Arc<dyn Store>) {
    let req = request(Some("key-1"), 2);
    assert_eq!(
        store.begin_spawn(&req, &agents(2)).await.unwrap(),
        Begun::New
    );
    let again = request(Some("key-1"), 2);
    let Begun::Existing(found) = store.begin_spawn(&again, &agents(2)).await.unwrap() else {
        panic!("the key was not found");
    };
    assert_eq!(found.request_id, req.request_id);
    assert_eq!(found.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(
        store.request_agents(&req.request_id).await.unwrap().len(),
        2
    );
    assert!(
        store
            .request_agents(&again.request_id)
            .await
            .unwrap()
            .is_empty(),
        "the retry wrote no agent"
    );
    store
        .finish_spawn(&req.request_id, RequestState::Failed, Some("pool full"))
        .await
        .unwrap();
    let Begun::Existing(failed) = store.begin_spawn(&again, &[]).await.unwrap() else {
        panic!("the key was not found");
    };
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (RequestState::Failed, Some("pool full"))
    );
    // Without a key, nothing is shared.
    assert_eq!(
        store
            .begin_spawn(&request(None, 1), &agents(1))
            .await
            .unwrap(),
        Begun::New
    );
}

async fn two_requests_racing_for_one_key_record_one(store: Arc<dyn Store>) {
    let (a, b) = (request(Some("race"), 3), request(Some("race"), 3));
    let (sa, sb) = (agents(3), agents(3));
    let (ra, rb) = tokio::join!(store.begin_spawn(&a, &sa), store.begin_spawn(&b, &sb));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let new = outcomes.iter().filter(|o| **o == Begun::New).count();
    assert_eq!(new, 1, "exactly one request recorded: {outcomes:?}");
    let winner = if outcomes[0] == Begun::New { &a } else { &b };
    for o in &outcomes {
        if let Begun::Existing(r) = o {
            assert_eq!(r.request_id, winner.request_id);
        }
    }
    let loser = if outcomes[0] == Begun::New { &b } else { &a };
    assert!(
        store
            .request_agents(&loser.request_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pending_spawns().await.unwrap().len(), 1);
}

async fn refused_agents_are_forgotten(store: Arc<dyn Store>) {
    let specs = agents(3);
    let req = request(None, 3);
    store.begin_spawn(&req, &specs).await.unwrap();
    let ids: Vec<AgentId> = specs.iter().map(|s| s.agent_id.clone()).collect();
    assert_eq!(store.forget_agents(&ids[..2]).await.unwrap(), 2);
    assert!(store.agent(&ids[0]).await.unwrap().is_none());
    assert!(
        store.events(&ids[0]).await.unwrap().is_empty(),
        "its history goes with it"
    );
    assert!(store.agent(&ids[2]).await.unwrap().is_some());
    assert_eq!(store.forget_agents(&ids[..2]).await.unwrap(), 0);
}
