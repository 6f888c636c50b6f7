//! SQLite, the embedded default: one file in the data directory, in WAL mode so that readers
//! never wait for the writer.
//!
//! SQLite has one writer at a time, so every write goes through one connection of its own, with
//! a large page cache: a batch of the sync engine touches pages all over the catalog's trees, and
//! with SQLite's default cache of 2 MiB it would spill them to the log before it commits and read
//! them back from the file for the next batch. Reads use the pool. Temporary data (the statement
//! journals that multi-row upserts keep) stays in memory.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::data::{CHUNK, KeyRow, entries_in, parameters, tuples};
use super::{Dialect, SqlStore};
use crate::data::{FileEntry, restore_text};
use crate::{Backend, OpenError, Store, StoreOptions};

/// The write connection's page cache.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The log's length, in pages, at which a commit of the write connection copies the log into the
/// database file (SQLite's default is 1,000, 4 MiB). A page a batch touches again and again (a
/// folder's, a B-tree's inner pages) is copied once per checkpoint however often the log holds
/// it: with 10,000 pages (40 MiB), fewer and larger checkpoints copy each such page less often.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// Each pooled connection's page cache.
const READER_CACHE_KIB: i64 = 8 * 1024;

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;

    /// `ORDER BY` inside an aggregate needs SQLite 3.44; sqlx builds its own, newer one.
    fn entries_page(rows: &str) -> String {
        format!(
            "SELECT json_group_array(json_array(parent, name, kind, size, etag, last_modified, storage_class, \
             version_id, archive, children, json(iif(marker, 'true', 'false'))) ORDER BY kind DESC, name) \
             FROM ({rows})"
        )
    }

    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

    fn write_parameter(sql: &mut String, _index: usize) {
        sql.push('?');
    }

    /// Write transactions take turns on the write connection. Taking the write lock up front
    /// (`BEGIN IMMEDIATE`) makes a transaction that reads before it writes wait for writes of
    /// one statement on the pool, instead of failing with SQLITE_BUSY when it upgrades its lock.
    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn begin_write(writer: &SqlitePool) -> sqlx::Result<Transaction<'static, Sqlite>> {
        writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Multi-row statements of [`CHUNK`] rows: SQLite binds each parameter in a function call,
    /// so many small ones cost no more than a few arrays. The rows come back as one JSON text
    /// per statement, not as rows: sqlx hands each row from SQLite's thread to the waiting task
    /// on its own, and the task, faster than SQLite, is woken for every one of them.
    async fn load_states(
        tx: &mut Transaction<'static, Sqlite>,
        project: i64,
        keys: &[&str],
    ) -> sqlx::Result<Vec<KeyRow>> {
        let mut rows = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT json_group_array(json_array(key, state, revision)) FROM objects \
                 WHERE project = ? AND key IN ({})",
                parameters::<Sqlite>(2, chunk.len())
            );
            let mut query = sqlx::query_scalar(&sql).bind(project);
            for key in chunk {
                query = query.bind(*key);
            }
            let json: String = query.fetch_one(&mut **tx).await?;
            rows.extend(from_json::<KeyRow>(&json)?);
        }
        Ok(rows)
    }

    /// As [`Self::load_states`]: one JSON text per statement.
    async fn load_folders(
        tx: &mut Transaction<'static, Sqlite>,
        project: i64,
        folders: &[(&str, &str)],
    ) -> sqlx::Result<Vec<(String, String, i64, bool)>> {
        let mut rows = Vec::with_capacity(folders.len());
        for chunk in folders.chunks(CHUNK) {
            let sql = entries_in::<Sqlite>(
                "SELECT json_group_array(json_array(parent, name, children, json(iif(marker, 'true', 'false'))))",
                "folder",
                chunk.len(),
            );
            let mut query = sqlx::query_scalar(&sql).bind(project);
            for (parent, name) in chunk {
                query = query.bind(*parent).bind(*name);
            }
            let json: String = query.fetch_one(&mut **tx).await?;
            rows.extend(from_json::<(String, String, i64, bool)>(&json)?);
        }
        Ok(rows)
    }

    /// New rows and stored ones alike, in one list of full chunks, by upserts: an insert into
    /// SQLite's tree seeks the key anyway.
    async fn write_states(
        tx: &mut Transaction<'static, Sqlite>,
        project: i64,
        revision: i64,
        new: &[(&str, String)],
        stored: &[(&str, String)],
    ) -> sqlx::Result<()> {
        let rows: Vec<&(&str, String)> = new.iter().chain(stored).collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO objects (project, key, state, revision) VALUES {} \
                 ON CONFLICT (project, key) DO UPDATE SET state = excluded.state, revision = excluded.revision",
                tuples::<Sqlite>(1, chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (key, state) in chunk {
                query = query.bind(project).bind(*key).bind(state.as_str()).bind(revision);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn write_files(
        tx: &mut Transaction<'static, Sqlite>,
        project: i64,
        new: &[(&str, &str, &FileEntry)],
        stored: &[(&str, &str, &FileEntry)],
    ) -> sqlx::Result<()> {
        let rows: Vec<&(&str, &str, &FileEntry)> = new.iter().chain(stored).collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO entries (project, parent, name, kind, size, etag, last_modified, \
                 storage_class, version_id, archive, children, marker) VALUES {} \
                 ON CONFLICT (project, parent, name) DO UPDATE SET size = excluded.size, \
                 etag = excluded.etag, last_modified = excluded.last_modified, \
                 storage_class = excluded.storage_class, version_id = excluded.version_id, \
                 archive = excluded.archive",
                tuples::<Sqlite>(1, chunk.len(), 12)
            );
            let mut query = sqlx::query(&sql);
            for (parent, name, file) in chunk {
                query = query
                    .bind(project)
                    .bind(*parent)
                    .bind(*name)
                    .bind("file")
                    .bind(i64::try_from(file.size).unwrap_or(i64::MAX))
                    .bind(file.etag.as_str())
                    .bind(file.last_modified_ms)
                    .bind(file.storage_class.as_deref())
                    .bind(file.version_id.as_deref())
                    .bind(restore_text(file.restore.as_ref()))
                    .bind(0_i64)
                    .bind(false);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Nothing to do: `begin_write` already holds the database's only write lock.
    async fn lock_table(_tx: &mut Transaction<'static, Sqlite>, _table: &'static str) -> sqlx::Result<()> {
        Ok(())
    }
}

/// The rows of a JSON array of arrays, as `json_group_array(json_array(...))` folds them.
fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> sqlx::Result<Vec<T>> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) async fn open(path: &Path, options: &StoreOptions) -> Result<Store, OpenError> {
    let connect_error = |source: sqlx::Error| OpenError::Connect {
        url: format!("sqlite:{}", path.display()),
        source: Box::new(source),
    };
    create_private(path)
        .map_err(|source| OpenError::Connect { url: format!("sqlite:{}", path.display()), source: Box::new(source) })?;
    let connect = SqliteConnectOptions::from_str("sqlite:")
        .map_err(connect_error)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL loses no committed transaction on a process crash; only a power
        // loss can take back the last ones.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(options.connect_timeout)
        .pragma("temp_store", "memory");
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.connect_timeout)
        .connect_with(
            connect
                .clone()
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string()),
        )
        .await
        .map_err(connect_error)?;
    let migrator = super::migrations::migrator(Backend::Sqlite).await?;
    migrator.run(&writer).await.map_err(|e| OpenError::Migrate(Box::new(e)))?;
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect.pragma("cache_size", format!("-{READER_CACHE_KIB}")))
        .await
        .map_err(connect_error)?;
    warn_if_open_to_others(path);
    // Writes of one statement go to the write connection too: they wait their turn in the pool's
    // queue rather than in SQLite's busy handler, which retries on a timer and can miss every
    // short gap between two large transactions until its timeout.
    Ok(SqlStore::new(pool, writer).into_store())
}

/// Creates the database file, empty and readable by its owner only, before SQLite opens it.
/// SQLite would create it with mode 0644 (less the umask); it creates its `-wal` and `-shm`
/// files with the mode of the database file, so those are private too.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Warns about a database file (or its `-wal` or `-shm` file) that others may read: one
/// created by an older version, or made so by hand. Its mode is the operator's to change.
fn warn_if_open_to_others(path: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        if let Ok(metadata) = std::fs::metadata(&file) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %file.display(),
                    mode = format!("{mode:04o}"),
                    "a database file is open to others than its owner; make it private: chmod 600 {}",
                    file.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Store, StoreOptions};

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = byos_test_support::temp_dir();
        let options = StoreOptions { url: None, max_connections: 2, connect_timeout: Duration::from_secs(10) };
        let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("{e:?}"));
        store.meta.ping().await.unwrap_or_else(|e| panic!("{e:?}"));
        // The log and the shared memory exist while the database is open.
        let modes: Vec<(String, Option<String>)> = ["", "-wal", "-shm"]
            .into_iter()
            .map(|suffix| {
                let name = format!("{}{suffix}", Store::SQLITE_FILE);
                let mode = std::fs::metadata(dir.path().join(&name))
                    .ok()
                    .map(|m| format!("{:o}", m.permissions().mode() & 0o777));
                (name, mode)
            })
            .collect();
        store.close().await;
        let private: Vec<(String, Option<String>)> =
            modes.iter().map(|(name, _)| (name.clone(), Some("600".to_owned()))).collect();
        assert_eq!(modes, private);
    }
}
