//! Logging: `RUST_LOG` picks the level (default `info`); `--log-format json` (or
//! `AGENTPOOL_LOG_FORMAT=json`) writes one JSON object per line instead of text.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for people; colours only on a terminal.
    #[default]
    Human,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields (`pool`, `process_id`, `agent_id`, `task_id`, …) at the top level, and the
    /// request `span` when there is one.
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "human" | "text" => Some(Self::Human),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
