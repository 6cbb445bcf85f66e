//! Pub/sub against a real Redis, where only Redis can show it: a stray message on an events
//! channel is skipped, and both subscriptions survive a Redis restart (the connection
//! reconnects and resubscribes by itself). Delivery itself (events of every pool, commands to
//! the addressed worker only) is checked on every backend in `embedded_pubsub.rs`.

mod common;

use agentpool_registry::{ControlPlane, Registry, Target};
use agentpool_testkit::wait_for;
use agentpool_types::{AgentId, Command, CommandKind, Event, EventKind, ProcessId};
use common::{Env, WAIT};
use redis::AsyncCommands;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

fn started(process_id: &ProcessId) -> Event {
    Event::new(EventKind::ProcessStarted {
        process_id: process_id.clone(),
        pid: 4242,
    })
}

fn terminate() -> Command {
    Command::new(CommandKind::Terminate {
        agent_id: AgentId::new(),
        graceful: true,
    })
}

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a message")
        .expect("subscription closed")
}

/// Redis-only: a message on the events channel that is not an event (anyone with `redis-cli`
/// can publish one) is skipped, and the stream goes on.
#[tokio::test]
async fn garbage_on_the_events_channel_is_skipped() {
    let env = Env::start().await;
    let mut events = env.reg.events().await.unwrap();
    let _: i64 = env
        .conn
        .clone()
        .publish("pool:dev:events", "not json")
        .await
        .unwrap();
    let first = started(&ProcessId::new());
    env.cp.publish("dev", &first).await.unwrap();
    assert_eq!(next(&mut events).await, first, "garbage was not skipped");
}

/// Redis-only: the connection drops with the server and must reconnect and resubscribe.
#[tokio::test]
async fn subscriptions_survive_a_redis_restart() {
    let mut env = Env::start().await;
    let me = ProcessId::new();
    let mut events = env.reg.events().await.unwrap();
    let mut cmds = env.cp.commands("dev", &me).await.unwrap();

    // Both work before the outage.
    let before = started(&me);
    env.cp.publish("dev", &before).await.unwrap();
    assert_eq!(next(&mut events).await, before);
    let cmd = terminate();
    env.reg.send(Target::Process(&me), &cmd).await.unwrap();
    assert_eq!(next(&mut cmds).await, cmd);

    env.redis.restart().await;

    // A message published while the subscriber is still reconnecting is lost, so keep
    // publishing the same message until one arrives.
    let event = started(&me);
    wait_for("an event after the restart", WAIT, || {
        let got = std::iter::from_fn(|| events.try_recv().ok()).any(|e| e == event);
        let (cp, event) = (&env.cp, event.clone());
        async move {
            if got {
                return Some(());
            }
            let _ = cp.publish("dev", &event).await;
            None
        }
    })
    .await;

    let cmd = terminate();
    wait_for("a command after the restart", WAIT, || {
        let got = std::iter::from_fn(|| cmds.try_recv().ok()).any(|c| c == cmd);
        let (reg, cmd, me) = (&env.reg, cmd.clone(), &me);
        async move {
            if got {
                return Some(());
            }
            let _ = reg.send(Target::Process(me), &cmd).await;
            None
        }
    })
    .await;

    // And once resubscribed, nothing is lost any more.
    let after = started(&me);
    env.cp.publish("dev", &after).await.unwrap();
    let got = loop {
        let e = next(&mut events).await;
        if e != event {
            break e;
        }
    };
    assert_eq!(got, after);
}
