//! Drawing one snapshot: a header, then pools, workers and agents as tables.

use super::snapshot::Snapshot;
use crate::cli::table::count;
use agentpool_master::config::DEFAULT_HEARTBEAT_TIMEOUT;
use agentpool_types::{Agent, AgentState, PoolStats, WorkerProcess};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use std::time::SystemTime;

pub fn draw(frame: &mut Frame, url: &str, s: &Snapshot) {
    let [head, pools, workers, agents] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table_height(s.pools.len(), 8)),
        Constraint::Length(table_height(s.processes.len(), 12)),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    frame.render_widget(header(url, s), head);
    frame.render_widget(pools_table(&s.pools), pools);
    frame.render_widget(workers_table(&s.processes, s.at), workers);
    frame.render_widget(agents_table(&s.agents), agents);
}

/// Rows plus the border and the column titles, at most `most` rows.
fn table_height(rows: usize, most: usize) -> u16 {
    u16::try_from(rows.clamp(1, most) + 3).unwrap_or(u16::MAX)
}

fn header(url: &str, s: &Snapshot) -> Paragraph<'static> {
    let line = match &s.error {
        Some(e) => Line::styled(format!("agentpool top · {url} · {e}"), red()),
        None => Line::from(format!(
            "agentpool top · {url} · {}, {}, {} · q quits",
            count(s.pools.len() as u64, "pool"),
            count(s.processes.len() as u64, "worker"),
            count(s.agents.len() as u64, "agent")
        )),
    };
    Paragraph::new(line)
}

fn titled(title: &str) -> Block<'_> {
    Block::bordered().title(title)
}

fn bold_row(names: &[&'static str]) -> Row<'static> {
    Row::new(names.to_vec()).style(Style::new().add_modifier(Modifier::BOLD))
}

fn pools_table(pools: &[PoolStats]) -> Table<'static> {
    let rows = pools.iter().map(|p| {
        Row::new(vec![
            p.pool_name.clone(),
            p.process_count.to_string(),
            p.agent_count.to_string(),
            format!("{}/{}", p.used_capacity, p.total_capacity),
            format!("{:.0}%", p.utilization * 100.0),
            p.tasks.queued_tasks.to_string(),
            p.tasks.running_tasks.to_string(),
            json_name(&p.state),
            json_name(&p.tasks.circuit),
        ])
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
    ];
    Table::new(rows, widths)
        .header(bold_row(&[
            "POOL", "WORKERS", "AGENTS", "CAPACITY", "UTIL", "QUEUED", "RUNNING", "STATE",
            "CIRCUIT",
        ]))
        .block(titled("pools"))
}

fn workers_table(processes: &[WorkerProcess], now: SystemTime) -> Table<'static> {
    let rows = processes.iter().map(|p| {
        let age = heartbeat_age(&p.last_heartbeat, now);
        let late = age.is_none_or(|a| a > DEFAULT_HEARTBEAT_TIMEOUT.as_secs_f64());
        Row::new(vec![
            Cell::from(p.pool_name.clone()),
            Cell::from(p.pid.to_string()),
            Cell::from(format!("{}/{}", p.agent_count, p.max_agents)),
            Cell::from(age.map_or("?".to_owned(), |a| format!("{a:.1}s"))).style(if late {
                red()
            } else {
                Style::new()
            }),
            Cell::from(format!("{:.1}MiB", p.rss_bytes as f64 / (1024.0 * 1024.0))),
            Cell::from(format!("{:.1}%", p.cpu_percent)),
            Cell::from(p.status.to_string()),
        ])
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(10),
    ];
    Table::new(rows, widths)
        .header(bold_row(&[
            "POOL",
            "PID",
            "AGENTS",
            "HEARTBEAT",
            "RSS",
            "CPU",
            "STATUS",
        ]))
        .block(titled("workers"))
}

/// Seconds since a heartbeat's RFC 3339 time; `None` if it cannot be read.
fn heartbeat_age(at: &str, now: SystemTime) -> Option<f64> {
    let at: SystemTime = chrono::DateTime::parse_from_rfc3339(at).ok()?.into();
    Some(now.duration_since(at).map_or(0.0, |d| d.as_secs_f64()))
}

fn agents_table(agents: &[Agent]) -> Table<'static> {
    let rows = agents.iter().map(|a| {
        Row::new(vec![
            Cell::from(a.spec.pool_name.clone()),
            Cell::from(a.spec.name.clone()),
            Cell::from(a.status.to_string()).style(Style::new().fg(colour(a.status))),
            Cell::from(a.restarts.to_string()),
            Cell::from(
                a.current_task
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            Cell::from(a.error.clone().unwrap_or_default()),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(16),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(36),
        Constraint::Min(10),
    ];
    Table::new(rows, widths)
        .header(bold_row(&[
            "POOL", "NAME", "STATUS", "RESTARTS", "TASK", "ERROR",
        ]))
        .block(titled("agents"))
}

fn colour(state: AgentState) -> Color {
    match state {
        AgentState::Idle => Color::Green,
        AgentState::Busy => Color::Cyan,
        AgentState::Failed | AgentState::Quarantined => Color::Red,
        AgentState::Orphaned | AgentState::Restarting => Color::Yellow,
        _ => Color::Gray,
    }
}

/// A state's name as the API writes it.
fn json_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_owned(),
    }
}

fn red() -> Style {
    Style::new().fg(Color::Red)
}
