//! `StoreError`: "the database is unreachable" (callers answer 503) versus everything else.

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had in time: refused, timed out, dropped, pool closed.
    /// Callers answer 503 "database unavailable"; retrying later can succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error (a constraint, a bad statement, a failed migration).
    #[error("database error: {0}")]
    Database(String),
    /// Data that cannot go into the store or come out of it: a stored row that does not read
    /// back into the domain types, or an argument out of range (a malformed timestamp, too
    /// many tasks in one insert).
    #[error("invalid data: {0}")]
    Invalid(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_outage(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        match &e {
            M::Execute(inner) | M::ExecuteMigration(inner, _) if is_outage(inner) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

fn is_outage(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut
        | E::PoolClosed
        | E::Io(_)
        | E::Tls(_)
        | E::WorkerCrashed
        | E::Protocol(_) => true,
        E::Database(db) => db.code().is_some_and(|c| is_outage_code(&c)),
        E::Migrate(m) => {
            matches!(&**m, sqlx::migrate::MigrateError::Execute(inner) if is_outage(inner))
        }
        _ => false,
    }
}

/// SQLSTATEs that mean the server (or PgBouncer in front of it) is not serving: class 08
/// (connection exception; PgBouncer also reports a down server with 08P01), 57P01-57P03
/// (shutting down, cannot connect now), 53300 (too many connections) and 55000 (the database
/// is not accepting connections, `ALLOW_CONNECTIONS false`).
fn is_outage_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55000")
}
