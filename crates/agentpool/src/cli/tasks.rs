//! `agentpool tasks`: one row per task, newest first.

use super::{CommonArgs, NO_BODY, emit, fit::Fit, table::Table};
use agentpool_types::{Task, TaskState};
use anyhow::Result;
use clap::builder::PossibleValuesParser;
use reqwest::Method;

#[derive(clap::Args, Debug)]
pub struct TasksArgs {
    /// Only tasks of this pool.
    #[arg(long)]
    pool: Option<String>,
    /// Only tasks in this status.
    #[arg(long, value_parser = PossibleValuesParser::new(TaskState::ALL.iter().map(|s| s.as_str())))]
    status: Option<String>,
    /// Most tasks to list, 1-1000 [default: 100].
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    common: CommonArgs,
}

pub async fn run(args: TasksArgs) -> Result<()> {
    let client = args.common.connection.client()?;
    let limit = args.limit.map(|n| n.to_string());
    let filters = [
        ("pool", args.pool.as_deref()),
        ("status", args.status.as_deref()),
        ("limit", limit.as_deref()),
    ];
    let query: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| Some((*k, (*v)?)))
        .collect();
    let response = client
        .fetch(Method::GET, &["tasks"], &query, NO_BODY)
        .await?;
    emit(response, &args.common, table)
}

/// Prints tasks as a table fitted like the others (for `task broadcast`).
pub(super) fn print(tasks: Vec<Task>, common: &CommonArgs) {
    let width = super::fit::output_width(common.wide);
    super::write_stdout(&table(tasks).render_within(width));
}

/// What each column gives up on a narrow terminal: the agent goes first, then the creation
/// time, the priority and the attempts; the result is cut before the pool name.
const COLUMNS: [(&str, Fit); 8] = [
    ("TASK_ID", Fit::ID),
    ("POOL", Fit::SHRINK),
    ("STATUS", Fit::FIXED),
    ("PRI", Fit::drop(2)),
    ("ATTEMPTS", Fit::drop(3)),
    ("AGENT", Fit::ID.or_drop(0)),
    ("CREATED", Fit::drop(1)),
    ("RESULT", Fit::SHRINK),
];

/// A result longer than this is cut even with `--wide`: an output may be a megabyte, and
/// `task show` prints it whole.
const RESULT_CHARS: usize = 60;

fn table(tasks: Vec<Task>) -> Table {
    let mut t = Table::fitted(&COLUMNS);
    for task in tasks {
        t.row(vec![
            task.spec.task_id.to_string(),
            task.spec.pool_name.clone(),
            task.status.to_string(),
            task.spec.priority.to_string(),
            format!("{}/{}", task.attempts, task.spec.max_attempts),
            task.agent_id
                .as_ref()
                .map_or_else(|| "-".to_owned(), |a| a.to_string()),
            task.created_at.clone(),
            result(&task),
        ]);
    }
    t
}

/// The output of a task that succeeded, else its last error; one line, cut to [`RESULT_CHARS`].
fn result(task: &Task) -> String {
    let text = match (&task.output, &task.error) {
        (Some(output), _) if task.status == TaskState::Succeeded => output.to_string(),
        (_, Some(error)) => error.replace(['\n', '\r'], " "),
        _ => return "-".to_owned(),
    };
    if text.chars().count() <= RESULT_CHARS {
        return text;
    }
    text.chars().take(RESULT_CHARS - 1).chain(['…']).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentpool_types::{TaskId, TaskSpec};
    use serde_json::json;

    fn task(status: TaskState, output: serde_json::Value, error: Option<&str>) -> Task {
        let spec = TaskSpec {
            task_id: TaskId::new(),
            pool_name: "p".into(),
            target_agent_id: None,
            priority: 5,
            input: json!(null),
            max_attempts: 3,
            timeout_secs: None,
            idempotency_key: None,
        };
        Task {
            status,
            output: Some(output),
            error: error.map(str::to_owned),
            ..Task::queued(spec, "2026-11-23T00:00:00.000Z".into())
        }
    }

    #[test]
    fn the_result_is_the_output_or_the_error_on_one_short_line() {
        let ok = task(TaskState::Succeeded, json!({"a": 1}), None);
        assert_eq!(result(&ok), r#"{"a":1}"#);
        let failed = task(TaskState::Failed, json!(null), Some("boom\nat line 2"));
        assert_eq!(result(&failed), "boom at line 2");
        let long = task(TaskState::Succeeded, json!("x".repeat(500)), None);
        assert_eq!(result(&long).chars().count(), RESULT_CHARS);
        assert!(result(&long).ends_with('…'));
        let queued = Task {
            output: None,
            ..task(TaskState::Queued, json!(null), None)
        };
        assert_eq!(result(&queued), "-");
    }
}
