//! Postgres over TLS: `sslmode` in `DATABASE_URL` against a private cluster with `ssl = on`
//! and a per-test CA. `verify-full` with the CA runs the master with every connection
//! encrypted; a CA that did not sign the server's certificate leaves it answering 503 naming
//! the database. The cluster runs as the `postgres` user, so this needs root; elsewhere the
//! tests say so and pass without checking.

mod common;

use agentpool_testkit::tls::unrelated_ca;
use agentpool_testkit::{MasterOptions, TempDir, TestMaster, TestPostgresTls, TestRedis, wait_for};
use common::{WAIT, config};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::path::Path;

async fn cluster() -> Option<TestPostgresTls> {
    let pg = TestPostgresTls::start().await;
    if pg.is_none() {
        eprintln!("skipped: a private TLS PostgreSQL needs root and the postgres user");
    }
    pg
}

fn options(redis: &TestRedis, database_url: String) -> MasterOptions {
    MasterOptions {
        bin: env!("CARGO_BIN_EXE_agentpool").into(),
        redis_url: redis.url(),
        config_toml: config(5, 2, ""),
        env: vec![("DATABASE_URL".into(), database_url)],
        args: Vec::new(),
    }
}

fn verify_full(pg: &TestPostgresTls, ca: &Path) -> String {
    pg.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))
}

#[tokio::test]
async fn verify_full_with_the_ca_runs_the_master_over_tls() {
    let Some(pg) = cluster().await else { return };
    let redis = TestRedis::start().await;
    let mut master = TestMaster::start(options(&redis, verify_full(&pg, pg.ca_file()))).await;
    let (status, body) = master
        .post("/api/v1/pools/p/agents", json!({"count": 1}))
        .await;
    assert_eq!(status, 201, "{body}");

    let mut conn = PgConnection::connect(&pg.url("sslmode=require"))
        .await
        .expect("connect over TLS");
    let (clients, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_ssl");
    assert!(clients >= 2, "the master holds connections ({clients})");
    assert_eq!(clients, encrypted, "every connection is encrypted");
    assert!(master.terminate().await.success());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_answers_503_naming_the_database() {
    let Some(pg) = cluster().await else { return };
    let redis = TestRedis::start().await;
    let dir = TempDir::new("pg-wrong-ca");
    let wrong = unrelated_ca(&dir.path().join("other-ca.pem"));
    let master = TestMaster::start_answering(options(&redis, verify_full(&pg, &wrong))).await;
    wait_for("the master to wait for the database", WAIT, || async {
        let (status, health) = master.get("/health").await;
        (status == 503 && health["waiting_for"] == "database").then_some(())
    })
    .await;
    let (status, err) = master.get("/api/v1/pools").await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "database_unavailable", "{err}");
    wait_for(
        "the master to log the certificate problem",
        WAIT,
        || async {
            let log = master.log().to_lowercase();
            (log.contains("database unreachable") && log.contains("certificate")).then_some(())
        },
    )
    .await;
}
