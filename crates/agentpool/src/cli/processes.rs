//! `agentpool processes`: one row per worker process.

use super::{CommonArgs, NO_BODY, emit, fit::Fit, table::Table};
use agentpool_types::WorkerProcess;
use anyhow::Result;
use reqwest::Method;

#[derive(clap::Args, Debug)]
pub struct ProcessesArgs {
    /// Only workers of this pool.
    #[arg(long)]
    pool: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: ProcessesArgs) -> Result<()> {
    let client = args.common.connection.client()?;
    let query: Vec<(&str, &str)> = args.pool.iter().map(|p| ("pool", p.as_str())).collect();
    let response = client
        .fetch(Method::GET, &["processes"], &query, NO_BODY)
        .await?;
    emit(response, &args.common, table)
}

/// The columns, and what each gives up on a narrow terminal: the heartbeat time goes first.
pub(super) const COLUMNS: [(&str, Fit); 8] = [
    ("PROCESS_ID", Fit::ID),
    ("POOL", Fit::SHRINK),
    ("PID", Fit::FIXED),
    ("AGENTS", Fit::FIXED),
    ("STATUS", Fit::FIXED),
    ("RSS", Fit::drop(2)),
    ("CPU", Fit::drop(1)),
    ("LAST_HEARTBEAT", Fit::drop(0)),
];

fn table(processes: Vec<WorkerProcess>) -> Table {
    let mut t = Table::fitted(&COLUMNS);
    for p in processes {
        t.row(vec![
            p.process_id.to_string(),
            p.pool_name,
            p.pid.to_string(),
            format!("{}/{}", p.agent_count, p.max_agents),
            p.status.to_string(),
            format!("{:.1}MiB", p.rss_bytes as f64 / MIB),
            format!("{:.1}%", p.cpu_percent),
            p.last_heartbeat,
        ]);
    }
    t
}

const MIB: f64 = 1024.0 * 1024.0;
