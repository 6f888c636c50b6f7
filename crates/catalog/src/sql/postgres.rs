//! PostgreSQL, for several replicas sharing one catalog.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::{Dialect, SqlStore};
use crate::{Backend, OpenError, Store, StoreOptions, redact_url};

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;

    fn entries_page(rows: &str) -> String {
        format!(
            "SELECT COALESCE(json_agg(json_build_array(parent, name, kind, size, etag, last_modified, storage_class, \
             version_id, archive, children, marker) ORDER BY kind DESC, name), '[]')::text FROM ({rows}) AS page"
        )
    }

    /// `clock_timestamp()` moves within a transaction, unlike `now()`.
    const NOW_MS: &'static str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

    fn write_parameter(sql: &mut String, index: usize) {
        use std::fmt::Write;
        write!(sql, "${index}").unwrap_or_else(|_| unreachable!("a String takes any text"));
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn begin_write(writer: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
        writer.begin().await
    }

    /// `SHARE ROW EXCLUSIVE` conflicts with itself and with every write, not with reads.
    async fn lock_table(tx: &mut Transaction<'static, Postgres>, table: &'static str) -> sqlx::Result<()> {
        sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut **tx).await?;
        Ok(())
    }
}

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
    // Several connections may write at once: PostgreSQL's row and table locks order them.
    Ok(SqlStore::new(pool.clone(), pool).into_store())
}
