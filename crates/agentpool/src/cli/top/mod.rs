//! `agentpool top`: a live full-screen view of pools, workers and agents, redrawn from the
//! API every `--interval` and at once after a key; `q`, Esc or Ctrl-C quits.
//!
//! - `snapshot`: one read of pools, workers and agents.
//! - `view`: drawing a snapshot with ratatui.

mod snapshot;
mod view;

use super::connect::{Connection, parse_secs};
use anyhow::{Result, bail};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use snapshot::Snapshot;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the view reads the API unless told otherwise.
const DEFAULT_INTERVAL: &str = "1";

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Seconds between two reads of the API.
    #[arg(long, default_value = DEFAULT_INTERVAL, value_parser = parse_secs)]
    interval: Duration,
    #[command(flatten)]
    connection: Connection,
}

/// What a key asks of the view.
enum Key {
    Quit,
    Refresh,
}

pub async fn run(args: TopArgs) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("`agentpool top` draws on a terminal; for output to a pipe use `agentpool pools`");
    }
    let client = args.connection.client()?;
    let url = args.connection.url();
    let mut keys = key_reader();
    // ratatui::init switches to the alternate screen and restores the terminal on a panic.
    let mut terminal = ratatui::init();
    let mut tick = tokio::time::interval(args.interval);
    let result = loop {
        tokio::select! {
            _ = tick.tick() => {}
            key = keys.recv() => match key {
                Some(Key::Refresh) => tick.reset(),
                Some(Key::Quit) | None => break Ok(()),
            },
        }
        let snapshot = Snapshot::read(&client).await;
        if let Err(e) = terminal.draw(|frame| view::draw(frame, &url, &snapshot)) {
            break Err(e.into());
        }
    };
    ratatui::restore();
    result
}

/// Keys from the terminal, read on a thread of their own since crossterm's read blocks.
fn key_reader() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        while let Ok(event) = event::read() {
            let Event::Key(k) = event else { continue };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            let key = match k.code {
                KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
                _ if ctrl_c => Key::Quit,
                _ => Key::Refresh,
            };
            if tx.blocking_send(key).is_err() {
                break;
            }
        }
    });
    rx
}
