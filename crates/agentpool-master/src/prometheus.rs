//! Prometheus metrics: the recorder (one per process), what each metric means, and the
//! gauges of `/metrics`.
//!
//! Counters and histograms are recorded where things happen. Gauges (agents by status,
//! workers, free slots, pending spawns, tasks, circuit, worker RSS and CPU) are read from the
//! registry when `/metrics` is scraped, not kept by a loop: the registry is the record of what
//! is live (other masters change it too), one scrape costs the two reads `/pools` and
//! `/processes` make anyway, and nothing runs between scrapes. A gauge that was not set by the
//! latest scrape (a worker that is gone) is dropped from the output.

use crate::core::Core;
use crate::error::Result;
use agentpool_types::{AgentState, CircuitState, PoolStats, TaskId};
use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Bucket bounds in seconds: from a warm spawn (~1 ms) to a slow task (a minute).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Gauges not set again within this are dropped: every scrape sets all live ones first.
const GAUGE_IDLE: Duration = Duration::from_secs(1);
/// Queued tasks whose start is timed; beyond this, queue waits go unmeasured, not memory.
const MAX_TIMED_TASKS: usize = 100_000;

/// How often histograms are folded between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. When another recorder was installed first
/// (a host program's), metrics go there and `/metrics` shows only the scrape-time gauges.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("bucket list is not empty")
                .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        };
        let handle = builder()
            .install_recorder()
            .unwrap_or_else(|_| builder().build_recorder().handle());
        describe();
        handle
    })
}

/// Installs the recorder and, once per process, keeps its histograms' memory bounded between
/// scrapes.
pub fn start_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    let handle = handle();
    STARTED.get_or_init(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    });
}

/// The text of a scrape: gauges read now, then everything rendered.
pub async fn render(core: &Core, stats: Vec<PoolStats>) -> Result<String> {
    let pools = core.pools.names().to_vec();
    let (agents, processes) =
        tokio::try_join!(core.registry.agents(&pools), core.registry.processes())?;
    for pool in &pools {
        for status in AgentState::ALL {
            let n = agents
                .iter()
                .filter(|a| &a.spec.pool_name == pool && a.status == *status)
                .count();
            gauge!("agentpool_agents", "pool" => pool.clone(), "status" => status.as_str())
                .set(n as f64);
        }
    }
    for s in &stats {
        pool_gauges(s);
    }
    for p in &processes {
        let labels = [
            ("pool", p.pool_name.clone()),
            ("process_id", p.process_id.to_string()),
        ];
        gauge!("agentpool_worker_resident_memory_bytes", &labels).set(p.rss_bytes as f64);
        gauge!("agentpool_worker_cpu_ratio", &labels).set(f64::from(p.cpu_percent) / 100.0);
    }
    Ok(handle().render())
}

fn pool_gauges(s: &PoolStats) {
    let pool = || s.pool_name.clone();
    gauge!("agentpool_workers", "pool" => pool()).set(s.process_count as f64);
    gauge!("agentpool_pool_capacity_slots", "pool" => pool()).set(s.total_capacity as f64);
    gauge!("agentpool_pool_free_slots", "pool" => pool()).set(s.available_capacity as f64);
    gauge!("agentpool_pool_pending_spawns", "pool" => pool()).set(s.pending_spawns as f64);
    gauge!("agentpool_tasks_queued", "pool" => pool()).set(s.tasks.queued_tasks as f64);
    gauge!("agentpool_tasks_running", "pool" => pool()).set(s.tasks.running_tasks as f64);
    for state in CircuitState::ALL {
        let on = s.tasks.circuit == *state;
        gauge!("agentpool_pool_circuit_state", "pool" => pool(), "state" => state.as_str())
            .set(if on { 1.0 } else { 0.0 });
    }
}

/// When each queued task was queued, for the queue-wait histogram.
#[derive(Default)]
pub struct TaskClock(Mutex<HashMap<TaskId, Instant>>);

impl TaskClock {
    pub fn queued(&self, id: &TaskId) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_TIMED_TASKS {
            map.entry(id.clone()).or_insert_with(Instant::now);
        }
    }

    /// How long the task waited; `None` for one not timed.
    pub fn left_queue(&self, id: &TaskId) -> Option<Duration> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id).map(|at| at.elapsed())
    }

    pub fn forget(&self, id: &TaskId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

fn describe() {
    describe_gauge!(
        "agentpool_agents",
        "Agents by pool and status (registry, at scrape)."
    );
    describe_gauge!("agentpool_workers", "Registered worker processes by pool.");
    describe_gauge!(
        "agentpool_pool_capacity_slots",
        "Agent slots of a pool's workers."
    );
    describe_gauge!(
        "agentpool_pool_free_slots",
        "Agent slots free in a pool's workers."
    );
    describe_gauge!(
        "agentpool_pool_pending_spawns",
        "Spawns waiting for room in a pool."
    );
    describe_gauge!("agentpool_tasks_queued", "Tasks waiting in a pool's queue.");
    describe_gauge!("agentpool_tasks_running", "Tasks running in a pool.");
    describe_gauge!(
        "agentpool_pool_circuit_state",
        "1 for the state a pool's circuit breaker is in, 0 for the others."
    );
    describe_gauge!(
        "agentpool_worker_resident_memory_bytes",
        "A worker's resident memory, from its heartbeat."
    );
    describe_gauge!(
        "agentpool_worker_cpu_ratio",
        "A worker's CPU use (1 = one core), from its heartbeat."
    );
    describe_counter!(
        "agentpool_agent_spawns_total",
        "Agents asked for through spawn requests, by outcome."
    );
    describe_counter!("agentpool_agent_terminations_total", "Agents terminated.");
    describe_counter!(
        "agentpool_agent_restarts_total",
        "Agents restarted in place after a failure."
    );
    describe_counter!(
        "agentpool_agent_failures_total",
        "Agents that failed for good."
    );
    describe_counter!(
        "agentpool_agent_quarantines_total",
        "Agents quarantined for a crash loop."
    );
    describe_counter!(
        "agentpool_worker_reaps_total",
        "Workers reaped, by cause (stale_heartbeat, exited, disconnected)."
    );
    describe_counter!("agentpool_tasks_submitted_total", "Tasks queued by submit.");
    describe_counter!(
        "agentpool_tasks_finished_total",
        "Tasks finished, by outcome (succeeded, failed, cancelled)."
    );
    describe_counter!(
        "agentpool_autoscale_decisions_total",
        "Autoscaler decisions, by direction."
    );
    describe_histogram!(
        "agentpool_spawn_duration_seconds",
        "Spawn requests, from arrival until the agents run (or are placed)."
    );
    describe_histogram!(
        "agentpool_task_queue_wait_seconds",
        "Time from submit until an agent started the task."
    );
    describe_histogram!(
        "agentpool_task_run_seconds",
        "Time an attempt ran, from start to its end."
    );
    describe_histogram!(
        "agentpool_pools_request_duration_seconds",
        "Time to answer GET /api/v1/pools."
    );
}
