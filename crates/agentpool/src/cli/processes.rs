//! `agentpool processes`: one row per worker process.

use super::{CommonArgs, client::Client, emit, table::Table};
use agentpool_types::WorkerProcess;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct ProcessesArgs {
    /// Only workers of this pool.
    #[arg(long)]
    pool: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: ProcessesArgs) -> Result<()> {
    let client = Client::new(&args.common.url)?;
    let query: Vec<(&str, &str)> = args.pool.iter().map(|p| ("pool", p.as_str())).collect();
    let response = client.get(&["processes"], &query).await?;
    emit(response, args.common.json, table)
}

fn table(processes: Vec<WorkerProcess>) -> Table {
    let mut t = Table::new(&[
        "PROCESS_ID",
        "POOL",
        "PID",
        "AGENTS",
        "STATUS",
        "RSS",
        "CPU",
        "LAST_HEARTBEAT",
    ]);
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
