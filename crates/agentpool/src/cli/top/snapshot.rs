//! One read of what `top` shows: pools, workers and agents, or why they could not be read.

use crate::cli::{NO_BODY, client::Client};
use agentpool_types::{Agent, PoolStats, WorkerProcess};
use anyhow::Result;
use reqwest::Method;
use std::time::SystemTime;

pub struct Snapshot {
    pub pools: Vec<PoolStats>,
    pub processes: Vec<WorkerProcess>,
    pub agents: Vec<Agent>,
    /// Why the last read failed; the view then keeps the screen and says so.
    pub error: Option<String>,
    pub at: SystemTime,
}

impl Snapshot {
    pub async fn read(client: &Client) -> Self {
        let at = SystemTime::now();
        match Self::fetch(client).await {
            Ok((pools, processes, agents)) => Self {
                pools,
                processes,
                agents,
                error: None,
                at,
            },
            Err(e) => Self {
                pools: Vec::new(),
                processes: Vec::new(),
                agents: Vec::new(),
                error: Some(format!("{e:#}")),
                at,
            },
        }
    }

    async fn fetch(client: &Client) -> Result<(Vec<PoolStats>, Vec<WorkerProcess>, Vec<Agent>)> {
        let (pools, processes, agents) = tokio::try_join!(
            client.fetch(Method::GET, &["pools"], &[], NO_BODY),
            client.fetch(Method::GET, &["processes"], &[], NO_BODY),
            client.fetch(Method::GET, &["agents"], &[], NO_BODY),
        )?;
        Ok((pools.decode()?, processes.decode()?, agents.decode()?))
    }
}
