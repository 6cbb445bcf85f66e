//! In-process pub/sub: the embedded stand-in for Redis channels. Commands go to subscribers
//! of a worker id or a pool; events go to every `events()` subscriber. As with Redis pub/sub,
//! delivery is best effort and nothing is kept for a subscriber that is not there yet.

use crate::Target;
use agentpool_types::{Command, Event, ProcessId};
use std::sync::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

struct CommandSub {
    process: ProcessId,
    pool: String,
    tx: UnboundedSender<Command>,
}

/// The subscriber lists. Closed subscribers are pruned on the next send.
#[derive(Default)]
pub(super) struct Hub {
    commands: Mutex<Vec<CommandSub>>,
    events: Mutex<Vec<UnboundedSender<Event>>>,
}

impl Hub {
    pub fn subscribe_commands(
        &self,
        pool: &str,
        process: &ProcessId,
    ) -> UnboundedReceiver<Command> {
        let (tx, rx) = unbounded_channel();
        let sub = CommandSub {
            process: process.clone(),
            pool: pool.to_owned(),
            tx,
        };
        lock(&self.commands).push(sub);
        rx
    }

    pub fn subscribe_events(&self) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        lock(&self.events).push(tx);
        rx
    }

    pub fn send(&self, to: &Target<'_>, cmd: &Command) {
        lock(&self.commands).retain(|s| {
            let addressed = match to {
                Target::Process(p) => s.process == **p,
                Target::Pool(p) => s.pool == *p,
            };
            !addressed || s.tx.send(cmd.clone()).is_ok()
        });
    }

    pub fn publish(&self, event: &Event) {
        lock(&self.events).retain(|tx| tx.send(event.clone()).is_ok());
    }
}

/// Subscriber lists stay valid even if a holder panicked, so a poisoned lock is taken over.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
