//! `Feed`: everything that happens in the master's pools, as numbered events for
//! `GET /api/v1/events`: worker processes started, stopped and reaped; agents started, stopped,
//! failed, restarted and quarantined; tasks queued, started and finished; autoscale decisions.
//!
//! The last [`REPLAY_EVENTS`] events stay in memory, so a client that reconnects with the id
//! of the last event it saw gets what it missed. Ids count up from 1 in each master process;
//! the feed is live information, not history (the store keeps that).

use agentpool_types::ProcessId;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Events kept for clients that reconnect. At a few hundred bytes each, a few MiB at most.
pub const REPLAY_EVENTS: usize = 10_000;
/// Events a slow stream reader may fall behind by before it skips ahead (and is told so).
const LIVE_BUFFER: usize = 4_096;

/// Every kind of event, in the order of the lifecycle. A `?kind=` filter also takes the part
/// before the first `_` (`agent`, `task`, `process`) for all of a group.
pub const KINDS: &[&str] = &[
    "process_started",
    "process_stopped",
    "process_reaped",
    "agent_started",
    "agent_stopped",
    "agent_failed",
    "agent_restarted",
    "agent_quarantined",
    "task_queued",
    "task_started",
    "task_finished",
    "autoscale",
];

/// One event of the feed. `data` holds the ids and details of what happened.
#[derive(Clone, Debug, Serialize)]
pub struct FeedEvent {
    pub id: u64,
    pub kind: &'static str,
    pub pool: Option<String>,
    /// RFC 3339, when the master learned of it.
    pub at: String,
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// What a subscriber gets: the buffered events after the id it gave, whether some it asked
/// for are gone from the buffer, and the live events from then on.
pub struct Subscription {
    pub replay: Vec<Arc<FeedEvent>>,
    /// Some events after the given id are gone: older than the buffer, or the id is not one
    /// of this master's.
    pub missed: bool,
    /// The oldest id still buffered.
    pub oldest: u64,
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
}

#[derive(Default)]
struct Ring {
    next_id: u64,
    events: VecDeque<Arc<FeedEvent>>,
}

pub struct Feed {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    /// Each watched worker's pool: worker events name only the process.
    pools: Mutex<HashMap<ProcessId, String>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            ring: Mutex::new(Ring {
                next_id: 1,
                events: VecDeque::new(),
            }),
            live: broadcast::channel(LIVE_BUFFER).0,
            pools: Mutex::default(),
        }
    }
}

impl Feed {
    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool_map(&self) -> MutexGuard<'_, HashMap<ProcessId, String>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a worker's pool, so its events can name it.
    pub fn note_process(&self, id: &ProcessId, pool: &str) {
        self.pool_map().insert(id.clone(), pool.to_owned());
    }

    pub fn pool_of(&self, id: &ProcessId) -> Option<String> {
        self.pool_map().get(id).cloned()
    }

    /// Forgets a worker that is gone.
    pub fn forget_process(&self, id: &ProcessId) {
        self.pool_map().remove(id);
    }

    /// Numbers the event, keeps it for replay and sends it to the open streams. `data` must
    /// be a JSON object; anything else is kept under `"data"`.
    pub fn publish(&self, kind: &'static str, pool: Option<&str>, data: Value) {
        let data = match data {
            Value::Object(map) => map,
            other => Map::from_iter([("data".to_owned(), other)]),
        };
        let mut ring = self.ring();
        let event = Arc::new(FeedEvent {
            id: ring.next_id,
            kind,
            pool: pool.filter(|p| !p.is_empty()).map(str::to_owned),
            at: agentpool_types::now_rfc3339(),
            data,
        });
        ring.next_id += 1;
        ring.events.push_back(event.clone());
        if ring.events.len() > REPLAY_EVENTS {
            ring.events.pop_front();
        }
        // Sent under the lock, so a subscriber sees each event once: in its replay or live.
        let _ = self.live.send(event);
    }

    /// The events after `after` (all buffered ones for `None`) and the live ones from then
    /// on. An id this master never handed out (one of an earlier master) replays everything
    /// buffered, and says the rest is missed.
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let ring = self.ring();
        let live = self.live.subscribe();
        let oldest = ring.events.front().map_or(ring.next_id, |e| e.id);
        let (after, missed) = match after {
            Some(a) if a >= ring.next_id => (None, true),
            Some(a) => (Some(a), a + 1 < oldest),
            None => (None, false),
        };
        let replay = ring
            .events
            .iter()
            .filter(|e| after.is_none_or(|a| e.id > a))
            .cloned()
            .collect();
        Subscription {
            replay,
            missed,
            oldest,
            live,
        }
    }
}

/// Whether a `?kind=` filter lets `kind` through: its name, or its group.
pub fn kind_matches(filter: &str, kind: &str) -> bool {
    filter == kind || kind.split('_').next() == Some(filter)
}

/// Whether `filter` names a kind or a group of kinds.
pub fn is_known_kind(filter: &str) -> bool {
    KINDS.iter().any(|k| kind_matches(filter, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replays_after_an_id_and_reports_what_fell_out_of_the_buffer() {
        let feed = Feed::default();
        for _ in 0..REPLAY_EVENTS + 5 {
            feed.publish("agent_started", Some("p"), json!({}));
        }
        let all = feed.subscribe(None);
        assert_eq!(all.replay.len(), REPLAY_EVENTS);
        assert!(!all.missed, "nothing was asked for");
        let recent = feed.subscribe(Some(REPLAY_EVENTS as u64 + 3));
        assert_eq!(recent.replay.len(), 2);
        assert!(!recent.missed);
        let old = feed.subscribe(Some(2));
        assert!(old.missed && old.oldest == 6);
        assert_eq!(old.replay.first().map(|e| e.id), Some(6));
        let foreign = feed.subscribe(Some(1_000_000));
        assert!(foreign.missed && foreign.replay.len() == REPLAY_EVENTS);
    }

    #[test]
    fn kinds_match_by_name_or_group() {
        assert!(kind_matches("agent", "agent_started"));
        assert!(kind_matches("task_finished", "task_finished"));
        assert!(!kind_matches("task", "agent_started"));
        assert!(is_known_kind("autoscale") && is_known_kind("process"));
        assert!(!is_known_kind("nope"));
    }
}
