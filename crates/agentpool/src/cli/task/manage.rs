//! `task show`, `task cancel` and `task retry`: one task by id, printed as it stands after.

use super::print_task;
use crate::cli::{CommonArgs, NO_BODY, write_stderr};
use anyhow::Result;
use reqwest::Method;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// The task's id.
    id: String,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn show(args: IdArgs) -> Result<ExitCode> {
    act(&args, Method::GET, &["tasks", &args.id]).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(args: IdArgs) -> Result<ExitCode> {
    let task = act(&args, Method::DELETE, &["tasks", &args.id]).await?;
    // A running attempt ends when its worker has stopped it, a moment later.
    if !task.status.is_final() {
        write_stderr(&format!(
            "cancel requested: the worker stops the running attempt \
             (`agentpool task watch {}` follows it)\n",
            args.id
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(args: IdArgs) -> Result<ExitCode> {
    act(&args, Method::POST, &["tasks", &args.id, "retry"]).await?;
    Ok(ExitCode::SUCCESS)
}

async fn act(args: &IdArgs, method: Method, path: &[&str]) -> Result<agentpool_types::Task> {
    let client = args.common.connection.client()?;
    let body = client.fetch(method, path, &[], NO_BODY).await?;
    print_task(&body, &args.common)
}
