//! PostgreSQL, for several replicas sharing one catalog.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::data::{CHUNK, KeyRow, entries_in};
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

    /// The keys' range first: a batch of keys that are the only ones in their range, or nearly
    /// (an import's, a reconcile's listing), takes one descent of the index instead of one per
    /// key, and none at all where the project has nothing yet. A batch whose range holds more
    /// rows than it has keys (events, all over the bucket) is then looked up key by key: the
    /// range's read, of one row more than the batch has keys, is what such a batch pays extra.
    async fn load_states(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        keys: &[&str],
    ) -> sqlx::Result<Vec<KeyRow>> {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(Vec::new());
        };
        let limit = keys.len() + 1;
        let mut ranged: Vec<KeyRow> = sqlx::query_as(
            "SELECT key, state, revision FROM objects WHERE project = $1 AND key >= $2 AND key <= $3 \
             ORDER BY key LIMIT $4",
        )
        .bind(project)
        .bind(*first)
        .bind(*last)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut **tx)
        .await?;
        if ranged.len() < limit {
            // Both in byte order (`COLLATE "C"`, as Rust compares strings).
            ranged.retain(|row| keys.binary_search(&row.key.as_str()).is_ok());
            return Ok(ranged);
        }
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

    async fn load_folders(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        folders: &[(&str, &str)],
    ) -> sqlx::Result<Vec<(String, String, i64, bool)>> {
        let mut rows = Vec::with_capacity(folders.len());
        for chunk in folders.chunks(CHUNK) {
            let sql = entries_in::<Postgres>("SELECT parent, name, children, marker", "folder", chunk.len());
            let mut query = sqlx::query_as(&sql).bind(project);
            for (parent, name) in chunk {
                query = query.bind(*parent).bind(*name);
            }
            rows.extend(query.fetch_all(&mut **tx).await?);
        }
        Ok(rows)
    }

    /// New rows by a binary `COPY`: a batch's 1,000 rows per table go in 1.3 times as fast as by
    /// an `INSERT` of arrays. Stored rows by an upsert of arrays, one per column: a multi-row
    /// `VALUES` of 500 rows of 12 parameters cost PostgreSQL more to parse and plan than to run.
    async fn write_states(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        revision: i64,
        new: &[(&str, String)],
        stored: &[(&str, String)],
    ) -> sqlx::Result<()> {
        if !new.is_empty() {
            let mut rows = CopyRows::new(new.len() * 256);
            for (key, state) in new {
                rows.row(4).bigint(project).text(key)?.text(state)?.bigint(revision);
            }
            copy_in(tx, "COPY objects (project, key, state, revision) FROM STDIN (FORMAT binary)", rows).await?;
        }
        for chunk in stored.chunks(BULK) {
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

    /// As [`Dialect::write_states`]: new rows by `COPY`, stored ones by an upsert of arrays.
    async fn write_files(
        tx: &mut Transaction<'static, Postgres>,
        project: i64,
        new: &[(&str, &str, &FileEntry)],
        stored: &[(&str, &str, &FileEntry)],
    ) -> sqlx::Result<()> {
        if !new.is_empty() {
            let mut rows = CopyRows::new(new.len() * 128);
            for (parent, name, file) in new {
                rows.row(10)
                    .bigint(project)
                    .text(parent)?
                    .text(name)?
                    .text("file")?
                    .bigint(i64::try_from(file.size).unwrap_or(i64::MAX))
                    .text(&file.etag)?
                    .bigint(file.last_modified_ms)
                    .optional_text(file.storage_class.as_deref())?
                    .optional_text(file.version_id.as_deref())?
                    .optional_text(restore_text(file.restore.as_ref()).as_deref())?;
            }
            let statement = "COPY entries (project, parent, name, kind, size, etag, last_modified, storage_class, \
                             version_id, archive) FROM STDIN (FORMAT binary)";
            copy_in(tx, statement, rows).await?;
        }
        for chunk in stored.chunks(BULK) {
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

/// Sends `rows` to a `COPY ... FROM STDIN` `statement`.
async fn copy_in(tx: &mut Transaction<'static, Postgres>, statement: &str, rows: CopyRows) -> sqlx::Result<()> {
    let mut copy = tx.copy_in_raw(statement).await?;
    copy.send(rows.finish()).await?;
    copy.finish().await?;
    Ok(())
}

/// Rows in `COPY`'s binary format, which PostgreSQL reads without parsing or unescaping text:
/// a header, then each row as its number of columns and each value as its length (`-1`: NULL)
/// and its bytes (text as UTF-8, `bigint` as 8 bytes big-endian), then `-1`.
struct CopyRows {
    bytes: Vec<u8>,
}

impl CopyRows {
    /// The signature, no flags, no header extension.
    const HEADER: &'static [u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    fn new(capacity: usize) -> CopyRows {
        let mut bytes = Vec::with_capacity(Self::HEADER.len() + capacity);
        bytes.extend_from_slice(Self::HEADER);
        CopyRows { bytes }
    }

    fn row(&mut self, columns: i16) -> &mut CopyRows {
        self.bytes.extend_from_slice(&columns.to_be_bytes());
        self
    }

    fn bigint(&mut self, value: i64) -> &mut CopyRows {
        self.bytes.extend_from_slice(&8_i32.to_be_bytes());
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn text(&mut self, value: &str) -> sqlx::Result<&mut CopyRows> {
        let length = i32::try_from(value.len())
            .map_err(|_| sqlx::Error::Protocol(format!("a value of {} bytes is too long for COPY", value.len())))?;
        self.bytes.extend_from_slice(&length.to_be_bytes());
        self.bytes.extend_from_slice(value.as_bytes());
        Ok(self)
    }

    fn optional_text(&mut self, value: Option<&str>) -> sqlx::Result<&mut CopyRows> {
        match value {
            Some(value) => self.text(value),
            None => {
                self.bytes.extend_from_slice(&(-1_i32).to_be_bytes());
                Ok(self)
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&(-1_i16).to_be_bytes());
        self.bytes
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
    let migrator = super::migrations::migrator(Backend::Postgres).await?;
    migrator.run(&pool).await.map_err(|e| OpenError::Migrate(Box::new(e)))?;
    // Several connections may write at once: PostgreSQL's row and table locks order them.
    Ok(SqlStore::new(pool.clone(), pool).into_store())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_are_in_postgres_binary_format() {
        let mut rows = CopyRows::new(0);
        rows.row(3).bigint(7).text("a/b").unwrap().optional_text(None).unwrap();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend([0, 0, 0, 0, 0, 0, 0, 0]); // no flags, no header extension
        expected.extend([0, 3]); // three columns
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]); // 8 bytes: 7
        expected.extend([0, 0, 0, 3, b'a', b'/', b'b']); // 3 bytes of text
        expected.extend([0xff, 0xff, 0xff, 0xff]); // NULL
        expected.extend([0xff, 0xff]); // the end
        assert_eq!(rows.finish(), expected);
    }
}
