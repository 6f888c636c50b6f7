//! PostgreSQL, for several replicas sharing one catalog.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::data::KeyRow;
use super::{Dialect, SqlStore};
use crate::data::{FileEntry, restore_text};
use crate::{Backend, OpenError, Store, StoreOptions, redact_url};

/// Rows per bulk statement: one array per column, so the statement's text and plan stay the
/// same whatever the number of rows.
const BULK: usize = 5000;

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

    /// One array parameter per column (`UNNEST`): a multi-row `VALUES` of 500
    /// rows of 12 parameters cost PostgreSQL more to parse and plan than to run, and held the
    /// load of a big import at a sixth of a `COPY`'s rate.
    async fn load_states(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        keys: &[&str],
    ) -> sqlx::Result<Vec<KeyRow>> {
        let mut rows = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BULK) {
            // One index lookup per key, whatever the statistics say: `key = ANY($2)` let the
            // planner read the whole project and filter it, as it did for a table not yet
            // analysed (during an import's first minute, or with autovacuum off), once per batch.
            // `LIMIT 1` (the key is unique) keeps the subquery a lookup of its own.
            let found: Vec<KeyRow> = sqlx::query_as(
                "SELECT o.key, o.state, o.revision FROM UNNEST($2::text[]) AS wanted (key) \
                 CROSS JOIN LATERAL (SELECT key, state, revision FROM objects \
                 WHERE project = $1 AND key = wanted.key LIMIT 1) AS o",
            )
            .bind(project)
            .bind(chunk)
            .fetch_all(&mut **tx)
            .await?;
            rows.extend(found);
        }
        Ok(rows)
    }

    async fn upsert_states(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        revision: i64,
        states: &[(&str, String)],
    ) -> sqlx::Result<()> {
        for chunk in states.chunks(BULK) {
            let keys: Vec<&str> = chunk.iter().map(|(key, _)| *key).collect();
            let states: Vec<&str> = chunk.iter().map(|(_, state)| state.as_str()).collect();
            sqlx::query(
                "INSERT INTO objects (project, key, state, revision) \
                 SELECT $1, key, state, $2 FROM UNNEST($3::text[], $4::text[]) AS rows (key, state) \
                 ON CONFLICT (project, key) DO UPDATE SET state = excluded.state, revision = excluded.revision",
            )
            .bind(project)
            .bind(revision)
            .bind(&keys)
            .bind(&states)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn upsert_files(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        files: &[(&str, &str, &FileEntry)],
    ) -> sqlx::Result<()> {
        for chunk in files.chunks(BULK) {
            let parents: Vec<&str> = chunk.iter().map(|(parent, _, _)| *parent).collect();
            let names: Vec<&str> = chunk.iter().map(|(_, name, _)| *name).collect();
            let sizes: Vec<i64> = chunk.iter().map(|(_, _, f)| i64::try_from(f.size).unwrap_or(i64::MAX)).collect();
            let etags: Vec<&str> = chunk.iter().map(|(_, _, f)| f.etag.as_str()).collect();
            let modified: Vec<i64> = chunk.iter().map(|(_, _, f)| f.last_modified_ms).collect();
            let classes: Vec<Option<&str>> = chunk.iter().map(|(_, _, f)| f.storage_class.as_deref()).collect();
            let versions: Vec<Option<&str>> = chunk.iter().map(|(_, _, f)| f.version_id.as_deref()).collect();
            let archives: Vec<Option<String>> =
                chunk.iter().map(|(_, _, f)| restore_text(f.restore.as_ref())).collect();
            sqlx::query(
                "INSERT INTO entries (project, parent, name, kind, size, etag, last_modified, storage_class, \
                 version_id, archive, children, marker) \
                 SELECT $1, parent, name, 'file', size, etag, last_modified, storage_class, version_id, archive, 0, \
                 FALSE FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[], \
                 $8::text[], $9::text[]) \
                 AS rows (parent, name, size, etag, last_modified, storage_class, version_id, archive) \
                 ON CONFLICT (project, parent, name) DO UPDATE SET size = excluded.size, etag = excluded.etag, \
                 last_modified = excluded.last_modified, storage_class = excluded.storage_class, \
                 version_id = excluded.version_id, archive = excluded.archive",
            )
            .bind(project)
            .bind(&parents)
            .bind(&names)
            .bind(&sizes)
            .bind(&etags)
            .bind(&modified)
            .bind(&classes)
            .bind(&versions)
            .bind(&archives)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
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
    // Every statement planned for its own values: a prepared statement's generic plan, chosen
    // while a project's tables were small, went on scanning the whole project for each batch of
    // keys once they were large (a load of 200,000 keys fell to 2,400 keys/s).
    let connect: PgConnectOptions =
        url.parse::<PgConnectOptions>().map_err(connect_error)?.options([("plan_cache_mode", "force_custom_plan")]);
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
