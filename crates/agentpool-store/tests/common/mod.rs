//! The stores the tests run against: PostgreSQL through a real PgBouncer, and SQLite.

#![allow(dead_code)]

use agentpool_store::{PgStore, Store, connect_postgres, connect_sqlite};
use agentpool_testkit::{TempDir, TestPgBouncer, TestPostgres};
use std::sync::Arc;

/// A store plus whatever keeps its database alive.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any + Send>,
}

pub struct Pg {
    pub store: PgStore,
    pub bouncer: TestPgBouncer,
    pub _pg: TestPostgres,
}

pub async fn pg_setup() -> Pg {
    let pg = TestPostgres::create().await;
    let bouncer = TestPgBouncer::in_front_of(&pg).await;
    let store = connect_postgres(&pg.url(), Some(&bouncer.url()))
        .await
        .expect("connect postgres through pgbouncer");
    Pg {
        store,
        bouncer,
        _pg: pg,
    }
}

pub async fn postgres() -> Fixture {
    let pg = pg_setup().await;
    Fixture {
        store: Arc::new(pg.store.clone()),
        _keep: Box::new(pg),
    }
}

pub async fn sqlite() -> Fixture {
    let dir = TempDir::new("store");
    let store = connect_sqlite(&dir.path().join("db/agentpool.sqlite"))
        .await
        .expect("open sqlite");
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

/// `both!(body)`: a module `body` with a `postgres` and a `sqlite` test running `body`.
#[macro_export]
macro_rules! both {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            pub async fn postgres() {
                let fx = $crate::common::postgres().await;
                super::$body(fx.store.clone()).await;
            }
            #[tokio::test]
            pub async fn sqlite() {
                let fx = $crate::common::sqlite().await;
                super::$body(fx.store.clone()).await;
            }
        }
    )+};
}
