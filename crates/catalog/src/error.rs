//! Why a store operation failed ([`StoreError`], [`Conflict`]), and whether trying again can
//! help ([`StoreError::is_retryable`]).

use std::error::Error as StdError;

use byos_domain::AwsRegion;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A stored row no longer satisfies the domain's rules.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// A key the store cannot keep ([`storable_key`](crate::storable_key)); nothing of the batch
    /// was applied.
    #[error("the store cannot keep the key {0:?}: it contains NUL")]
    UnstorableKey(String),
    /// The database failed or could not be reached; [`StoreError::is_retryable`] says whether
    /// trying again can help.
    #[error("database error")]
    Database(#[source] Box<dyn StdError + Send + Sync>),
}

/// A write refused because it would break an invariant of the store. Exhaustive on purpose:
/// a new conflict does not compile until the service maps it to its catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("a {resource} named {name:?} already exists")]
    NameTaken { resource: &'static str, name: String },
    #[error("storage configuration {name:?} is already the default for {region}")]
    DefaultForRegionTaken { name: String, region: AwsRegion },
    /// `users` are the names of the `used_by` (such as `project`) that use it.
    #[error("{resource} {name:?} is used by {used_by} {users:?}")]
    InUse { resource: &'static str, name: String, used_by: &'static str, users: Vec<String> },
    #[error("token {name:?} is the last admin token that does not expire")]
    LastAdminToken { name: String },
    /// Another configuration already owns an overlapping part of the bucket.
    #[error("storage configuration {name:?} already uses an overlapping prefix of {bucket}")]
    PrefixOverlap { name: String, bucket: String, prefix: Option<String> },
    /// Another project already owns an overlapping part of the bucket: one project's folder
    /// lies inside the other's.
    #[error("project {name:?} already owns {prefix:?} of {bucket}")]
    ProjectPrefixOverlap { name: String, bucket: String, prefix: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            e => StoreError::Database(Box::new(e)),
        }
    }
}

impl StoreError {
    /// Whether the same operation may succeed if tried again: the database could not be reached
    /// or was busy (no connection free in time, a connection that failed, a serialization failure
    /// or deadlock on PostgreSQL, a locked database on SQLite). An answer about the data (not
    /// found, a conflict, a corrupt row, a broken constraint, a key the store cannot keep) stays
    /// the same, and so does a failure this code cannot classify.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::NotFound
            | StoreError::Conflict(_)
            | StoreError::Corrupt { .. }
            | StoreError::UnstorableKey(_) => false,
            StoreError::Database(cause) => {
                if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
                    sqlx_error_is_transient(e)
                } else {
                    cause.is::<std::io::Error>()
                }
            }
        }
    }
}

fn sqlx_error_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // SQLite's thread of a connection stopped: the next connection has a thread of its own.
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                postgres_code_is_transient(pg.code())
            } else if let Some(sqlite) = db.try_downcast_ref::<SqliteError>() {
                DatabaseError::code(sqlite).and_then(|code| code.parse().ok()).is_some_and(sqlite_code_is_transient)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL's SQLSTATE: class 08 (connection exception), 40001 (serialization failure), 40P01
/// (deadlock detected), 57P01 to 57P03 (the server shuts down, restarts, or is starting).
fn postgres_code_is_transient(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
}

/// SQLite's extended result code: its low byte is the primary code, SQLITE_BUSY (5: another
/// connection holds the lock) or SQLITE_LOCKED (6: a conflict within one connection's cache).
fn sqlite_code_is_transient(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection, PgConnection, SqliteConnection};

    use super::*;

    /// Each error's name, and whether it is retryable.
    fn check(cases: Vec<(&str, StoreError)>, retryable: &[&str]) {
        let found: Vec<(&str, bool)> = cases.iter().map(|(name, e)| (*name, e.is_retryable())).collect();
        let expected: Vec<(&str, bool)> = cases.iter().map(|(name, _)| (*name, retryable.contains(name))).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn answers_about_the_data_are_final() {
        check(
            vec![
                ("not found", StoreError::NotFound),
                ("row not found", sqlx::Error::RowNotFound.into()),
                ("conflict", Conflict::LastAdminToken { name: "admin".to_owned() }.into()),
                ("corrupt", StoreError::Corrupt { table: "projects", reason: "id".to_owned() }),
                ("unstorable key", StoreError::UnstorableKey("a\0b".to_owned())),
                ("column not found", sqlx::Error::ColumnNotFound("name".to_owned()).into()),
                ("decode", sqlx::Error::Decode("not a number".into()).into()),
                ("protocol", sqlx::Error::Protocol("unexpected message".to_owned()).into()),
                ("something else", StoreError::Database("unclassified".into())),
            ],
            &[],
        );
    }

    #[test]
    fn an_unreachable_or_busy_database_may_answer_later() {
        check(
            vec![
                ("pool timed out", sqlx::Error::PoolTimedOut.into()),
                ("pool closed", sqlx::Error::PoolClosed.into()),
                ("io", sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()).into()),
                ("worker crashed", sqlx::Error::WorkerCrashed.into()),
                ("io, not through sqlx", StoreError::Database(Box::new(std::io::Error::other("reset")))),
            ],
            &["pool timed out", "pool closed", "io", "worker crashed", "io, not through sqlx"],
        );
    }

    async fn sqlite_error(conn: &mut SqliteConnection, sql: &str) -> StoreError {
        match sqlx::raw_sql(sql).execute(conn).await {
            Ok(_) => panic!("{sql} succeeded"),
            Err(e) => e.into(),
        }
    }

    #[tokio::test]
    async fn sqlite_busy_is_retryable_and_constraints_are_not() {
        let dir = byos_test_support::temp_dir();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite3"))
            .create_if_missing(true)
            .busy_timeout(Duration::ZERO);
        let connect = || async { SqliteConnection::connect_with(&options).await.unwrap() };
        let (mut holder, mut other) = (connect().await, connect().await);
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a'); BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let busy = sqlite_error(&mut other, "BEGIN IMMEDIATE").await;
        let unique = sqlite_error(&mut holder, "INSERT INTO t VALUES ('a')").await;
        check(vec![("busy", busy), ("unique", unique)], &["busy"]);
    }

    async fn postgres_error(conn: &mut PgConnection, code: &str) -> StoreError {
        let sql = format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
        match sqlx::raw_sql(&sql).execute(conn).await {
            Ok(_) => panic!("{sql} succeeded"),
            Err(e) => e.into(),
        }
    }

    #[tokio::test]
    async fn postgres_serialization_failures_and_deadlocks_are_retryable() {
        let url = byos_test_support::postgres_admin_url();
        let mut conn = PgConnection::connect(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let mut cases = Vec::new();
        for (name, code) in [
            ("serialization failure", "40001"),
            ("deadlock", "40P01"),
            ("connection failure", "08006"),
            ("admin shutdown", "57P01"),
            ("unique violation", "23505"),
            ("foreign key violation", "23503"),
            ("check violation", "23514"),
            ("syntax error", "42601"),
        ] {
            cases.push((name, postgres_error(&mut conn, code).await));
        }
        // Nothing listens on port 1: the connection is refused.
        match PgConnection::connect("postgres://postgres@127.0.0.1:1/postgres").await {
            Ok(_) => panic!("a connection to port 1"),
            Err(e) => cases.push(("connection refused", e.into())),
        }
        check(
            cases,
            &["serialization failure", "deadlock", "connection failure", "admin shutdown", "connection refused"],
        );
    }
}
