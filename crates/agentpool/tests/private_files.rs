//! What the master leaves on disk and in the process table is for its own user only: the
//! data directory 0700, the store, the socket and the worker logs 0600, and no worker shows
//! its registry URL (which may hold a password) on its command line.

mod common;

use agentpool_testkit::TempDir;
use common::{Backend, Cluster, config};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    let root = TempDir::new("private");
    let data = root.path().join("data");
    let dir = data.to_str().unwrap();
    let c = Cluster::start_on_env(
        Backend::Embedded,
        config(5, 2, ""),
        &[("AGENTPOOL_DATA_DIR", dir)],
    )
    .await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 2}))
        .await;
    assert_eq!(status, 201, "{body}");

    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("agentpool.sqlite")), 0o600, "the store");
    assert_eq!(mode(&data.join("agentpool.sock")), 0o600, "the socket");
    let logs = data.join("logs");
    assert_eq!(mode(&logs), 0o700, "the log directory");
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().flatten().collect();
    assert!(!files.is_empty(), "a worker log");
    for f in files {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
}

both_backends!(no_worker_shows_its_registry_url: cmdline_redis, cmdline_embedded);

async fn no_worker_shows_its_registry_url(backend: Backend) {
    let c = Cluster::start_on(backend, config(5, 2, ""), &[]).await;
    let (status, body) = c
        .master
        .post("/api/v1/pools/p/agents", json!({"count": 6}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, workers) = c.master.get("/api/v1/processes?pool=p").await;
    let pids: Vec<i64> = workers
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), 2, "{workers}");
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(cmdline.contains(" worker "), "{cmdline}");
        for secret in ["redis://", "unix://", &c.control_url()] {
            assert!(!cmdline.contains(secret), "{secret:?} in `{cmdline}`");
        }
        let environ = std::fs::metadata(format!("/proc/{pid}/environ")).expect("environ");
        assert_eq!(
            environ.permissions().mode() & 0o077,
            0,
            "the environment is the owner's"
        );
    }
}

/// Even with the data directory opened up by hand, the embedded registry's socket serves its
/// own user only: another user's connection is closed unanswered.
#[tokio::test]
async fn the_socket_refuses_another_user() {
    let c = Cluster::start_on(Backend::Embedded, config(5, 2, ""), &[]).await;
    let socket = c.data_dir().join("agentpool.sock");
    let open = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    let mut dir = socket.parent();
    while let Some(d) = dir {
        open(d, mode(d) | 0o755).expect("open the directory up");
        dir = d.parent().filter(|p| p != &Path::new("/"));
    }
    open(&socket, 0o777).expect("open the socket up");
    // Connects (the file's rights allow it) and waits for the server to close its end.
    let probe = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        s.settimeout(5)\n\
        try:\n    data = s.recv(1)\nexcept socket.timeout:\n    data = b'?'\nexcept OSError:\n    data = b''\n\
        print('closed' if data == b'' else 'answered')\n";
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c", probe])
        .arg(&socket)
        .output()
        .expect("runuser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "closed", "{stderr}");
    agentpool_testkit::wait_until("the refusal in the log", common::WAIT, || async {
        c.master
            .log()
            .contains("refused a connection from another user")
    })
    .await;
}
