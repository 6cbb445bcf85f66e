//! The embedded registry's socket: a worker process's view of it, over a real Unix socket. A
//! client registers, heartbeats, receives the master's commands, publishes events, and its
//! connection closing is reported as that worker's end; a broken socket is `Unavailable`.

use agentpool_registry::embedded::{
    EmbeddedRegistry, EmbeddedServer, SocketControlPlane, is_embedded_url, socket_path,
};
use agentpool_registry::{ControlPlane, Heartbeat, Registry, RegistryError, Target};
use agentpool_testkit::TempDir;
use agentpool_types::{AgentId, Command, CommandKind, Event, EventKind, ProcessId, ProcessState};
use agentpool_types::{AgentSpec, Placement, WorkerProcess};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out")
        .expect("channel closed")
}

fn worker(pool: &str) -> WorkerProcess {
    WorkerProcess {
        process_id: ProcessId::new(),
        pool_name: pool.to_owned(),
        pid: std::process::id(),
        host: "test-host".to_owned(),
        max_agents: 4,
        agent_count: 0,
        status: ProcessState::Starting,
        started_at: agentpool_types::now_rfc3339(),
        last_heartbeat: String::new(),
        rss_bytes: 0,
        cpu_percent: 0.0,
    }
}

async fn serve() -> (EmbeddedRegistry, EmbeddedServer, TempDir) {
    let dir = TempDir::new("socket");
    let reg = EmbeddedRegistry::new();
    let server = EmbeddedServer::bind(dir.path().join("r.sock"), reg.clone())
        .await
        .unwrap();
    (reg, server, dir)
}

#[tokio::test]
async fn a_worker_lives_its_life_over_the_socket() {
    let (reg, mut server, _dir) = serve().await;
    let mut closed = server.take_closed().expect("closed channel");
    assert!(is_embedded_url(&server.url()));
    let cp = SocketControlPlane::connect(&server.url()).await.unwrap();
    let p = worker("dev");
    let me = &p.process_id;
    cp.register(&p).await.unwrap();
    let mut events = reg.events().await.unwrap();
    let mut cmds = cp.commands("dev", me).await.unwrap();

    let r = AgentSpec {
        agent_id: AgentId::new(),
        pool_name: "dev".into(),
        role_type: "echo".into(),
        name: "n".into(),
        metadata: serde_json::json!({}),
        restart: None,
        autoscaled: false,
        secret_config: None,
    };
    let reservation = agentpool_registry::Reservation::new(&r, Placement::Pack);
    assert_eq!(reg.reserve(reservation).await.unwrap().as_ref(), Some(me));
    let hb = cp.heartbeat(me, 7, 1.5).await.unwrap();
    assert_eq!(
        hb,
        Heartbeat::Alive {
            assigned: vec![r.agent_id.clone()],
            holding: vec![],
        }
    );

    let spawn = Command::new(CommandKind::Terminate {
        agent_id: r.agent_id.clone(),
        graceful: true,
    });
    reg.send(Target::Process(&ProcessId::new()), &spawn)
        .await
        .unwrap();
    reg.send(Target::Process(me), &spawn).await.unwrap();
    assert_eq!(next(&mut cmds).await, spawn);
    let pool_wide = Command::new(CommandKind::Shutdown { grace_ms: 10 });
    reg.send(Target::Pool("dev"), &pool_wide).await.unwrap();
    assert_eq!(next(&mut cmds).await, pool_wide);
    assert!(
        cmds.try_recv().is_err(),
        "a command for someone else arrived"
    );

    let started = Event::new(EventKind::AgentStarted {
        agent_id: r.agent_id.clone(),
        process_id: me.clone(),
    });
    cp.publish("dev", &started).await.unwrap();
    assert_eq!(next(&mut events).await, started);

    drop(cmds);
    drop(cp);
    assert_eq!(&next(&mut closed).await, me, "closed connection reported");
    // The registry is the master's to clean up: the worker is still registered.
    assert!(reg.process(me).await.unwrap().is_some());
}

#[tokio::test]
async fn a_broken_socket_is_unavailable_and_ends_the_command_stream() {
    let (_reg, server, _dir) = serve().await;
    let cp = SocketControlPlane::connect(&server.url()).await.unwrap();
    let p = worker("dev");
    cp.register(&p).await.unwrap();
    let mut cmds = cp.commands("dev", &p.process_id).await.unwrap();
    drop(server);
    assert!(
        timeout(WAIT, cmds.recv())
            .await
            .expect("stream ended")
            .is_none()
    );
    let err = cp.heartbeat(&p.process_id, 0, 0.0).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_connection_that_never_registered_is_not_reported() {
    let (_reg, mut server, _dir) = serve().await;
    let mut closed = server.take_closed().unwrap();
    let a = SocketControlPlane::connect(&server.url()).await.unwrap();
    a.agent(&AgentId::new()).await.unwrap();
    drop(a);
    let b = SocketControlPlane::connect(&server.url()).await.unwrap();
    let p = worker("dev");
    b.register(&p).await.unwrap();
    drop(b);
    assert_eq!(
        next(&mut closed).await,
        p.process_id,
        "only the registered one"
    );
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_but_not_a_live_one() {
    let dir = TempDir::new("socket");
    let path = dir.path().join("r.sock");
    // A socket file whose listener is gone, as a killed master leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = EmbeddedServer::bind(&path, EmbeddedRegistry::new())
        .await
        .unwrap();
    let again = EmbeddedServer::bind(&path, EmbeddedRegistry::new()).await;
    assert!(matches!(again, Err(RegistryError::Config(_))));
    drop(server);
    assert!(!path.exists(), "socket file left behind");
    let err = SocketControlPlane::connect(&format!("unix://{}", path.display())).await;
    assert!(matches!(err, Err(RegistryError::Unavailable(_))));
}

#[tokio::test]
async fn urls() {
    assert!(is_embedded_url("unix:///tmp/a.sock"));
    assert!(!is_embedded_url("redis://127.0.0.1:6379"));
    assert_eq!(
        socket_path("unix:///tmp/a.sock").unwrap().to_str(),
        Some("/tmp/a.sock")
    );
    assert!(matches!(
        socket_path("unix://rel.sock"),
        Err(RegistryError::Config(_))
    ));
    assert!(matches!(
        SocketControlPlane::connect("redis://x").await,
        Err(RegistryError::Config(_))
    ));
}
