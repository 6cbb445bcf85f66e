//! `agentpool events`: the master's event feed (`GET /api/v1/events`), one line per event.
//! Without `--follow` it prints the events the master still buffers and exits; with it, it
//! goes on with the live ones until the stream ends or it is interrupted.

use super::connect::Connection;
use super::{write_stderr, write_stdout};
use anyhow::Result;
use serde_json::{Map, Value};

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Only events of this pool.
    #[arg(long)]
    pool: Option<String>,
    /// Only this kind (agent_started, task_finished, …) or group (process, agent, task);
    /// several separated by commas.
    #[arg(long)]
    kind: Option<String>,
    /// Keep printing live events after the buffered ones.
    #[arg(long)]
    follow: bool,
    /// Print each event's JSON as received, one per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Fields every event has; the line shows them in its first columns.
const HEAD_FIELDS: [&str; 4] = ["id", "kind", "pool", "at"];

pub async fn run(args: EventsArgs) -> Result<()> {
    let client = args.connection.client()?;
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = &args.pool {
        query.push(("pool", p));
    }
    if let Some(k) = &args.kind {
        query.push(("kind", k));
    }
    if !args.follow {
        query.push(("follow", "false"));
    }
    let mut stream = client.events(&["events"], &query).await?;
    while let Some(event) = stream.next().await? {
        if event.name == "gap" {
            write_stderr(&format!("(some events were missed: {})\n", event.data));
            continue;
        }
        if args.json {
            write_stdout(&format!("{}\n", event.data));
            continue;
        }
        match serde_json::from_str::<Map<String, Value>>(&event.data) {
            Ok(fields) => write_stdout(&format!("{}\n", line(&fields))),
            Err(_) => write_stdout(&format!("{} {}\n", event.name, event.data)),
        }
    }
    Ok(())
}

/// `17:48:13.660  task_finished      tester  task_id=… status=succeeded`: the time of day,
/// the kind, the pool, then the other fields that have a value.
fn line(fields: &Map<String, Value>) -> String {
    let text = |k: &str| match fields.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(v) => v.to_string(),
    };
    let at = text("at");
    // RFC 3339: the time of day is between the `T` and the zone.
    let time = at
        .split_once('T')
        .map_or(at.as_str(), |(_, t)| t.trim_end_matches('Z'));
    let rest: Vec<String> = fields
        .iter()
        .filter(|(k, v)| !HEAD_FIELDS.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!(
        "{time:<12}  {:<17}  {:<12}  {}",
        text("kind"),
        text("pool"),
        rest.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_time_kind_pool_and_the_fields_with_a_value() {
        let v: Map<String, Value> = serde_json::from_str(
            r#"{"id":6,"kind":"task_finished","pool":"tester","at":"2026-11-23T17:48:13.660Z",
                "task_id":"t1","status":"succeeded","error":null,"attempts":1}"#,
        )
        .unwrap();
        let l = line(&v);
        assert!(l.starts_with("17:48:13.660  task_finished"), "{l}");
        assert!(l.contains("tester") && l.contains("task_id=t1") && l.contains("attempts=1"));
        assert!(!l.contains("error"), "{l}");
    }
}
