//! A Redis outage longer than one reconnect attempt: calls fail as `Unavailable` while it lasts,
//! work again once Redis is back, and (the contract of `events` / `commands`) the pub/sub
//! streams keep delivering afterwards.

mod common;

use agentpool_registry::redis::RedisRegistry;
use agentpool_registry::{ControlPlane, Registry, RegistryError, Reservation, Target};
use agentpool_testkit::{wait_for, wait_until};
use agentpool_types::{AgentId, Command, CommandKind, Event, EventKind, Placement, ProcessId};
use common::{Env, WAIT, agent, worker_process};

/// Stops Redis and keeps it down until a fresh connection has given up three times in a row:
/// each attempt runs the same reconnect back-off as every registry connection, so by then any
/// reconnect that started when the server went away has given up too.
async fn long_outage(env: &mut Env) {
    env.redis.stop();
    for _ in 0..3 {
        match RedisRegistry::connect(&env.redis.url(), "").await {
            Err(RegistryError::Unavailable(_)) => {}
            Err(e) => panic!("connect during an outage failed as {e:?}"),
            Ok(_) => panic!("connected to a stopped Redis"),
        }
    }
    env.redis.restart().await;
    env.conn = env.redis.conn().await;
}

/// Redis-only: only a Redis server can be down while the registry handles stay up.
#[tokio::test]
async fn calls_fail_as_unavailable_during_an_outage_and_recover_after_it() {
    let mut env = Env::start().await;
    env.redis.stop();
    let err = env
        .reg
        .reserve(Reservation::new(&agent("dev"), Placement::Pack))
        .await
        .expect_err("reserve against a stopped Redis");
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err:?}");
    let err = env.reg.ping().await.expect_err("ping a stopped Redis");
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err:?}");
    env.redis.restart().await;
    long_outage(&mut env).await;

    wait_until("the registry to answer again", WAIT, || async {
        env.reg.ping().await.is_ok()
    })
    .await;
    let w = worker_process("dev", 2);
    wait_until("the control plane to answer again", WAIT, || async {
        env.cp.register(&w).await.is_ok()
    })
    .await;
    let (_, placed) = env.reserve("dev", Placement::Pack).await;
    assert_eq!(placed, Some(w.process_id.clone()));
    env.assert_slots("dev", &w.process_id, true).await;
}

/// Redis-only: the pub/sub connections must outlast Redis's reconnect back-off.
#[tokio::test]
async fn subscriptions_survive_an_outage_longer_than_the_reconnect_back_off() {
    let mut env = Env::start().await;
    let me = ProcessId::new();
    let mut events = env.reg.events().await.unwrap();
    let mut cmds = env.cp.commands("dev", &me).await.unwrap();

    long_outage(&mut env).await;
    wait_until("the registry to answer again", WAIT, || async {
        env.reg.ping().await.is_ok()
    })
    .await;

    let event = Event::new(EventKind::ProcessStopped {
        process_id: me.clone(),
    });
    wait_for("an event after the outage", WAIT, || {
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

    let cmd = Command::new(CommandKind::Terminate {
        agent_id: AgentId::new(),
        graceful: false,
    });
    wait_for("a command after the outage", WAIT, || {
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
}
