//! Logging: `RUST_LOG` picks the level (default `info`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Colours only on a terminal: worker and test logs are files.
pub fn init() {
    let ansi = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
