//! Reading tasks back through the API, for the task tests.

use super::{Cluster, WAIT};
use agentpool_testkit::wait_for;
use serde_json::Value;

/// The statuses a task ends in.
pub const FINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// A task's id, from its JSON.
pub fn task_id(v: &Value) -> String {
    v["task_id"].as_str().expect("a task id").to_owned()
}

impl Cluster {
    /// `GET /api/v1/tasks/{id}`, which must answer 200.
    pub async fn task(&self, id: &str) -> Value {
        let (status, t) = self.master.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(status, 200, "{t}");
        t
    }

    /// The task once it has finished, waiting for it.
    pub async fn finished(&self, id: &str) -> Value {
        wait_for(&format!("task {id} to finish"), WAIT, || async {
            let t = self.task(id).await;
            FINAL
                .contains(&t["status"].as_str().unwrap_or(""))
                .then_some(t)
        })
        .await
    }

    /// `POST /api/v1/pools/{pool}/tasks/batch`, which must answer 202; the tasks' ids in order.
    pub async fn submit_batch(&self, pool: &str, tasks: Vec<Value>) -> Vec<String> {
        let path = format!("/api/v1/pools/{pool}/tasks/batch");
        let (status, body) = self
            .master
            .post(&path, serde_json::json!({ "tasks": tasks }))
            .await;
        assert_eq!(status, 202, "{body}");
        body["tasks"]
            .as_array()
            .expect("the tasks")
            .iter()
            .map(task_id)
            .collect()
    }

    /// The whole body of a task's event stream, which ends by itself once the task finished.
    pub async fn task_stream(&self, id: &str) -> String {
        let url = format!("{}/api/v1/tasks/{id}/events", self.master.url());
        let resp = self
            .master
            .http()
            .get(url)
            .send()
            .await
            .expect("the event stream");
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("the stream's body")
    }
}
