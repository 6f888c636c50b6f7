//! SQLite, the embedded default: one file in the data directory, in WAL mode so that readers
//! never wait for the writer.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{Backend, OpenError, Store, StoreOptions};

pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// SQLite has one writer at a time. Taking the write lock up front (`BEGIN IMMEDIATE`)
    /// makes a transaction that reads before it writes wait its turn, instead of failing with
    /// SQLITE_BUSY when it tries to upgrade its lock.
    async fn begin_write(pool: &SqlitePool) -> sqlx::Result<Transaction<'static, Sqlite>> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Nothing to do: `begin_write` already holds the database's only write lock.
    async fn lock_table(_tx: &mut Transaction<'static, Sqlite>, _table: &str) -> sqlx::Result<()> {
        Ok(())
    }
}

super::impl_stores!(SqliteStore);
super::projects::impl_project_stores!(SqliteStore);
super::data::impl_data_stores!(SqliteStore, sqlx::Sqlite);

pub(crate) async fn open(path: &Path, options: &StoreOptions) -> Result<Store, OpenError> {
    let connect_error = |source: sqlx::Error| OpenError::Connect {
        url: format!("sqlite:{}", path.display()),
        source: Box::new(source),
    };
    let connect = SqliteConnectOptions::from_str("sqlite:")
        .map_err(connect_error)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL loses no committed transaction on a process crash; only a power
        // loss can take back the last ones.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(options.connect_timeout);
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(connect_error)?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(|e| OpenError::Migrate(Box::new(e)))?;
    let store = Arc::new(SqliteStore { pool });
    Ok(Store {
        credentials: store.clone(),
        configurations: store.clone(),
        tokens: store.clone(),
        leases: store.clone(),
        meta: store.clone(),
        projects: store.clone(),
        data: store.clone(),
        sync: store.clone(),
        backend: Backend::Sqlite,
        closer: store,
    })
}
