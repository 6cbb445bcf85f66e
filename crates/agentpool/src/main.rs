//! `agentpool`: the master (`serve`), the worker (`worker`, started by the master), the client
//! subcommands and the benchmarks, in one binary.
//!
//! - `config`: the one place that reads the config file and the environment.
//! - `serve`: runs the master until SIGTERM or Ctrl-C.
//! - `worker`: runs one worker process.
//! - `cli`: client subcommands over the REST API.
//! - `bench`: benchmarks against a running master.
//! - `info`: the mode `serve` would pick and why, Redis reachability, store, pools.
//! - `cleanup`: stale registry entries and old history removed.
//! - `token`: API tokens created, listed, revoked.
//! - `telemetry`: logging.

mod bench;
mod cleanup;
mod cli;
mod config;
mod info;
mod serve;
mod telemetry;
mod token;
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "agentpool",
    version,
    about = "Multi-process, auto-scaling agent pool manager"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the master: REST API, worker processes, the registry (Redis or embedded).
    Serve(serve::ServeArgs),
    /// Run one worker process (started by the master; not for direct use).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
    #[command(flatten)]
    Client(cli::Command),
    /// Measure a running master against its targets (listed in the README).
    #[command(subcommand)]
    Bench(bench::Command),
    /// Show the mode `serve` would run in and why, Redis, the store and the pools.
    Info(info::InfoArgs),
    /// Remove stale registry entries and history older than the retention period.
    Cleanup(cleanup::CleanupArgs),
    /// API tokens: create (printed once, hash kept), list, revoke.
    #[command(subcommand)]
    Token(token::Command),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let ok = |()| ExitCode::SUCCESS;
    let result = match args.cmd {
        Cmd::Serve(a) => serve::run(a).map(ok),
        Cmd::Worker(a) => worker::run(a),
        Cmd::Client(c) => client_runtime().and_then(|rt| rt.block_on(cli::run(c))),
        Cmd::Bench(b) => client_runtime()
            .and_then(|rt| rt.block_on(bench::run(b)))
            .map(ok),
        Cmd::Info(a) => client_runtime()
            .and_then(|rt| rt.block_on(info::run(a)))
            .map(ok),
        Cmd::Cleanup(a) => client_runtime()
            .and_then(|rt| rt.block_on(cleanup::run(a)))
            .map(ok),
        Cmd::Token(c) => token::run(c).map(ok),
    };
    result.unwrap_or_else(|e| {
        // Not eprintln!: a closed stderr (`2>&1 | head`) must not turn an error into a panic.
        cli::write_stderr(&format!("error: {e:#}\n"));
        ExitCode::FAILURE
    })
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
