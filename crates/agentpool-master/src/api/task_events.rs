//! `GET /api/v1/tasks/{id}/events`: Server-Sent Events of one task: its state first
//! (`event: task`), then each status change (`event: status`) and progress report
//! (`event: progress`), then the finished task (`event: task`), and the stream closes.

use super::AppState;
use super::error::ApiError;
use super::tasks::task_id;
use agentpool_types::{Event, EventKind, TaskId};
use axum::extract::{Path, State};
use axum::response::sse::{self, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use tokio::sync::broadcast;

/// The task's Server-Sent Events: `task`, then `status` and `progress`, then `task` again.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "an event stream that closes when the task ends",
        content_type = "text/event-stream", body = super::openapi::StreamEvent)))]
pub async fn events(
    State(master): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let id = task_id(&id)?;
    // Subscribed before the first read, so no change between the two is missed.
    let rx = master.task_events();
    let first = master.task(&id).await?;
    let start = if first.status.is_final() {
        Step::Last(first)
    } else {
        Step::First(first, rx)
    };
    let stream = futures::stream::unfold((start, master, id), |(step, master, id)| async move {
        match step {
            Step::First(task, rx) => {
                let event = json_event("task", &task);
                Some((Ok(event), (Step::Follow(rx), master, id)))
            }
            Step::Follow(mut rx) => follow(&mut rx, &master, &id)
                .await
                .map(|(event, next)| (Ok(event), (next.unwrap_or(Step::Follow(rx)), master, id))),
            Step::Last(task) => Some((Ok(json_event("task", &task)), (Step::Done, master, id))),
            Step::Done => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where the stream is.
enum Step {
    First(agentpool_types::Task, broadcast::Receiver<Event>),
    Follow(broadcast::Receiver<Event>),
    Last(agentpool_types::Task),
    Done,
}

/// The next event about `id`, and what follows it when it ends the stream.
async fn follow(
    rx: &mut broadcast::Receiver<Event>,
    master: &AppState,
    id: &TaskId,
) -> Option<(sse::Event, Option<Step>)> {
    loop {
        let event = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // The missed events may have held the task's end: read where it stands, and
                // end the stream with it if it is over.
                tracing::warn!(task_id = %id, missed, "event stream fell behind; reading the task");
                match master.task(id).await {
                    Ok(task) if task.status.is_final() => {
                        return Some((json_event("task", &task), Some(Step::Done)));
                    }
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        let Some((name, done)) = about(&event, id) else {
            continue;
        };
        let sent = match &event.kind {
            EventKind::TaskChanged(change) => json_event(name, change),
            EventKind::TaskProgress { data, .. } => json_event(name, data),
            _ => continue,
        };
        if !done {
            return Some((sent, None));
        }
        let last = match master.task(id).await {
            Ok(task) => Step::Last(task),
            Err(_) => Step::Done,
        };
        return Some((sent, Some(last)));
    }
}

/// The event's name in the stream when it is about `id`, and whether it ends the stream.
fn about(event: &Event, id: &TaskId) -> Option<(&'static str, bool)> {
    match &event.kind {
        EventKind::TaskChanged(c) if &c.task_id == id => Some(("status", c.status.is_final())),
        EventKind::TaskProgress { task_id, .. } if task_id == id => Some(("progress", false)),
        _ => None,
    }
}

fn json_event(name: &str, value: &impl serde::Serialize) -> sse::Event {
    sse::Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| sse::Event::default().event(name))
}
