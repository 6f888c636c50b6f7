//! PostgreSQL, for several replicas sharing one catalog.

use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{Backend, OpenError, Store, StoreOptions, redact_url};

pub(crate) struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.pool.begin().await
    }

    /// A folder's page of entries as one JSON array of arrays, in [`super::data::ENTRY_COLUMNS`]
    /// order (see [`super::data::entries_from_json`]).
    const ENTRIES_PAGE: &str = "SELECT COALESCE(json_agg(json_build_array(parent, name, kind, size, etag, \
        last_modified, storage_class, version_id, archive, children, marker) ORDER BY name), '[]')::text \
        FROM (SELECT * FROM entries WHERE project_id = $1 AND parent = $2 AND name > $3 ORDER BY name LIMIT $4) \
        AS page";

    /// The database's clock in Unix milliseconds, for leases. `clock_timestamp()` moves within a
    /// transaction, unlike `now()`.
    const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

    /// Serialises writers of `table` for the rest of the transaction, so that a check that
    /// reads several rows (the last admin token) cannot race another replica. Plain reads go on.
    async fn lock_table(tx: &mut Transaction<'static, Postgres>, table: &str) -> sqlx::Result<()> {
        sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut **tx).await?;
        Ok(())
    }
}

super::impl_stores!(PostgresStore);

#[async_trait::async_trait]
impl crate::Closer for PostgresStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}
super::projects::impl_project_stores!(PostgresStore);
super::data::impl_data_stores!(PostgresStore, sqlx::Postgres);

pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Store, OpenError> {
    let connect_error = |source: sqlx::Error| OpenError::Connect { url: redact_url(url), source: Box::new(source) };
    let connect: PgConnectOptions = url.parse().map_err(connect_error)?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(connect_error)?;
    // Replicas starting together take turns: sqlx holds an advisory lock while it migrates.
    sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(|e| OpenError::Migrate(Box::new(e)))?;
    let store = Arc::new(PostgresStore { pool });
    Ok(Store {
        credentials: store.clone(),
        configurations: store.clone(),
        tokens: store.clone(),
        leases: store.clone(),
        meta: store.clone(),
        projects: store.clone(),
        data: store.clone(),
        sync: store.clone(),
        backend: Backend::Postgres,
        closer: store,
    })
}
