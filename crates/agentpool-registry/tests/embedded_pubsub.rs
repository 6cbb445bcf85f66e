//! Events and commands on every backend: a worker's events of any pool reach the master's
//! `events`, and the master's commands reach the addressed worker's `commands` only (by its id
//! or its pool), in the order sent.

#[path = "embedded_common/mod.rs"]
mod common;

use agentpool_registry::Target;
use agentpool_types::{AgentId, Command, CommandKind, Event, EventKind, ProcessId};
use common::{Env, WAIT};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

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

async fn events(env: Env) {
    let mut events = env.reg.events().await.unwrap();
    let p = ProcessId::new();
    let first = Event::new(EventKind::ProcessStarted {
        process_id: p.clone(),
        pid: 4242,
    });
    env.cp.publish("dev", &first).await.unwrap();
    assert_eq!(next(&mut events).await, first);
    let second = Event::new(EventKind::AgentFailed {
        agent_id: AgentId::new(),
        process_id: p,
        error: "boom".into(),
    });
    env.cp.publish("other", &second).await.unwrap();
    assert_eq!(next(&mut events).await, second);
}
both!(events_of_every_pool_reach_the_master, events);

async fn commands(env: Env) {
    let me = ProcessId::new();
    let someone_else = ProcessId::new();
    let mut cmds = env.cp.commands("dev", &me).await.unwrap();

    // Sent in order on one connection: what is not for us must not arrive before what is.
    let not_mine = terminate();
    env.reg
        .send(Target::Process(&someone_else), &not_mine)
        .await
        .unwrap();
    env.reg
        .send(Target::Pool("other"), &not_mine)
        .await
        .unwrap();
    let direct = terminate();
    env.reg.send(Target::Process(&me), &direct).await.unwrap();
    assert_eq!(next(&mut cmds).await, direct);

    let pool_wide = Command::new(CommandKind::Shutdown { grace_ms: 500 });
    env.reg.send(Target::Pool("dev"), &pool_wide).await.unwrap();
    assert_eq!(next(&mut cmds).await, pool_wide);
    assert!(cmds.try_recv().is_err(), "unexpected extra command");
}
both!(commands_reach_the_addressed_worker_only, commands);
