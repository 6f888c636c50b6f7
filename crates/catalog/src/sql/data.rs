//! The projects' catalog: the SQL of [`DataStore`]. A batch ([`DataStore::apply`]) takes a few
//! statements per chunk of keys, not one per key: the keys' states read in bulk, the new states
//! and the files' entries written in bulk (each database's own bulk statements, the items of
//! [`Dialect`] for a batch), deletes per chunk, then the same for the rows of the folders the
//! batch may change. The catalog's tables name a project by its key (`projects.key`), a small
//! integer, not by its id. The rules, and what a batch writes, are in [`crate::data`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use byos_domain::objects::KeyState;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Transaction, Type};
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt};
use crate::data::{self, Entry, EntryKind, FileEntry, FolderRow, RowWrite, StoredKey, restore_from_text, split};
use crate::{ApplyOutcome, DataStore, FolderTotals, KeyUpdate, Result, StoreError, storable_key};

/// The key of the project whose id is bound as `$1`: the catalog's tables name a project by its
/// key (`projects.key`, a small integer), not by its id.
const PROJECT: &str = "(SELECT key FROM projects WHERE id = $1)";

/// Rows per multi-row statement: well under both databases' limits on bound parameters.
pub(super) const CHUNK: usize = 500;

pub(crate) const ENTRY_COLUMNS: &str =
    "parent, name, kind, size, etag, last_modified, storage_class, version_id, archive, children, marker";

super::row! {
    /// A key's row of `objects`: from the database's row, or from an element of a JSON array
    /// of arrays (see [`Dialect::load_states`]).
    #[derive(serde::Deserialize)]
    pub(crate) struct KeyRow {
        pub(super) key: String,
        state: String,
        revision: i64,
    }
}

impl KeyRow {
    fn state(&self) -> Result<KeyState> {
        serde_json::from_str(&self.state).map_err(|e| corrupt("objects", format!("key {:?}: {e}", self.key)))
    }
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<StoredKey> {
        Ok(StoredKey { state: row.state()?, key: row.key, revision: row.revision })
    }
}

/// `{verb} FROM entries` of the project's entries of `kind` at `pairs` `(parent, name)` pairs, as
/// a row-value `IN (VALUES ...)`. Parameters: the project, then each pair's parent and name.
pub(super) fn entries_in<D: Dialect>(verb: &str, kind: &str, pairs: usize) -> String {
    format!(
        "{verb} FROM entries WHERE project = {} AND kind = '{kind}' AND (parent, name) IN (VALUES {})",
        parameters::<D>(1, 1),
        tuples::<D>(2, pairs, 2)
    )
}

/// `$first, $first+1, ...`: `n` parameters, in `D`'s form ([`Dialect::write_parameter`]).
pub(super) fn parameters<D: Dialect>(first: usize, n: usize) -> String {
    let mut sql = String::with_capacity(n * 8);
    push_parameters::<D>(&mut sql, first, n);
    sql
}

/// `(...), (...)`: `rows` tuples of `width` parameters each, numbered on from `$first`.
pub(super) fn tuples<D: Dialect>(first: usize, rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * (width * 8 + 4));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_parameters::<D>(&mut sql, first + row * width, width);
        sql.push(')');
    }
    sql
}

fn push_parameters<D: Dialect>(sql: &mut String, first: usize, n: usize) {
    for i in first..first + n {
        if i > first {
            sql.push_str(", ");
        }
        D::write_parameter(sql, i);
    }
}

fn state_json(state: &KeyState) -> String {
    serde_json::to_string(state).unwrap_or_else(|_| unreachable!("a key state always serializes"))
}

super::row! {
    /// An entry's row: from the database's row, or from an element of a page's JSON array (the
    /// columns in [`ENTRY_COLUMNS`] order, see [`entries_from_json`]).
    #[derive(serde::Deserialize)]
    struct EntryRow {
        parent: String,
        name: String,
        kind: String,
        size: Option<i64>,
        etag: Option<String>,
        last_modified: Option<i64>,
        storage_class: Option<String>,
        version_id: Option<String>,
        archive: Option<String>,
        children: i64,
        marker: bool,
    }
}

impl TryFrom<EntryRow> for Entry {
    type Error = StoreError;

    fn try_from(row: EntryRow) -> Result<Entry> {
        let kind = match row.kind.as_str() {
            "file" => EntryKind::File(FileEntry {
                size: u64::try_from(row.size.unwrap_or(0)).unwrap_or(0),
                etag: row.etag.unwrap_or_default(),
                last_modified_ms: row.last_modified.unwrap_or(0),
                storage_class: row.storage_class,
                version_id: row.version_id,
                restore: restore_from_text(row.archive.as_deref()),
            }),
            "folder" => EntryKind::Folder { marker: row.marker, children: u64::try_from(row.children).unwrap_or(0) },
            other => return Err(corrupt("entries", format!("kind {other:?}"))),
        };
        Ok(Entry { parent: row.parent, name: row.name, kind })
    }
}

/// A page of entries from one JSON array of arrays, as the backends' `ENTRIES_PAGE` query
/// builds it. A page of 1,000 entries moved as 1,000 rows costs more than the query itself (each
/// value copied out of SQLite and handed across threads); one text value does not.
pub(crate) fn entries_from_json(json: &str) -> Result<Vec<Entry>> {
    let rows: Vec<EntryRow> = serde_json::from_str(json).map_err(|e| corrupt("entries", e))?;
    rows.into_iter().map(TryInto::try_into).collect()
}

#[async_trait]
impl<D: Dialect> DataStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
    for<'q> &'q str: Encode<'q, D> + Type<D> + ColumnIndex<D::Row>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    usize: ColumnIndex<D::Row>,
    String: ColumnType<D>,
    Option<String>: ColumnType<D>,
    i64: ColumnType<D>,
    Option<i64>: ColumnType<D>,
    bool: ColumnType<D>,
    Vec<u8>: ColumnType<D>,
{
    async fn apply(&self, project: Uuid, updates: &[KeyUpdate]) -> Result<ApplyOutcome> {
        if let Some(key) = updates.iter().map(KeyUpdate::key).find(|k| !storable_key(k)) {
            return Err(StoreError::UnstorableKey(key.to_owned()));
        }
        let mut batch = Batch::begin(self, project).await?;
        let loaded = batch.load_states(updates).await?;
        let plan = data::plan(updates, loaded);
        batch.write_states(&plan.states).await?;
        batch.write_files(&plan.files).await?;
        let folders = batch.load_folders(plan.folders()).await?;
        batch.write_folders(&data::fold_folders(&plan, folders)).await?;
        let revision = batch.commit().await?;
        Ok(ApplyOutcome { revision, ..plan.outcome })
    }

    async fn revision(&self, project: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT revision FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_one(&self.pool)
            .await?)
    }

    async fn keys(&self, project: Uuid, after: Option<&str>, limit: u32) -> Result<Vec<StoredKey>> {
        // Without `after`, from the very first key: `key > ''` would leave out the empty key
        // (the project folder's own marker).
        let (from, limit_parameter) = if after.is_some() { ("AND key > $2", "$3") } else { ("", "$2") };
        let sql = format!(
            "SELECT key, state, revision FROM objects WHERE project = {PROJECT} {from} ORDER BY key LIMIT {limit_parameter}"
        );
        let mut query = sqlx::query_as(&sql).bind(project.to_string());
        if let Some(after) = after {
            query = query.bind(after);
        }
        let rows: Vec<KeyRow> = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn entries(
        &self,
        project: Uuid,
        folder: &str,
        after: Option<&str>,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<Entry>> {
        // Folders first: a page that starts among the folders (no cursor yet, or a folder's
        // name, which ends with '/') takes the folders after the cursor and the first files;
        // a page that starts among the files takes files only.
        let after = after.unwrap_or("");
        let among_folders = after.is_empty() || after.ends_with('/');
        // The names that start with `prefix` are a range in byte order: from the prefix up to
        // the prefix followed by the highest character (U+10FFFF; a name with that very
        // character right after the prefix is the one such a range leaves out).
        let range = if prefix.is_empty() { "" } else { " AND name >= $5 AND name < $6" };
        let kind = |kind: &str, after: &str| {
            format!(
                "SELECT * FROM (SELECT * FROM entries WHERE project = {PROJECT} AND parent = $2 AND kind = '{kind}' \
                 AND name > {after}{range} ORDER BY name LIMIT $4) AS {kind}s"
            )
        };
        let rows = if among_folders {
            format!(
                "SELECT * FROM ({} UNION ALL {}) AS page ORDER BY kind DESC, name LIMIT $4",
                kind("folder", "$3"),
                kind("file", "''")
            )
        } else {
            kind("file", "$3")
        };
        let sql = D::entries_page(&rows);
        let end = format!("{prefix}{}", char::MAX);
        let mut query =
            sqlx::query_scalar(&sql).bind(project.to_string()).bind(folder).bind(after).bind(i64::from(limit));
        if !prefix.is_empty() {
            query = query.bind(prefix).bind(end.as_str());
        }
        let page: String = query.fetch_one(&self.pool).await?;
        entries_from_json(&page)
    }

    async fn entry(&self, project: Uuid, path: &str) -> Result<Entry> {
        let (parent, name) = split(path);
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE project = {PROJECT} AND parent = $2 AND name = $3");
        let row: EntryRow =
            sqlx::query_as(&sql).bind(project.to_string()).bind(parent).bind(name).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn folder_totals(&self, project: Uuid, folder: &str) -> Result<FolderTotals> {
        // The folder and the folders below it: the parents from `a/b/` up to, not including,
        // `a/b0` (`0` follows `/` in byte order), a range of the entries' primary key.
        let end = format!("{}0", folder.strip_suffix('/').unwrap_or(folder));
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM entries \
             WHERE project = {PROJECT} AND parent >= $2 AND parent < $3 AND kind = 'file'"
        );
        let (files, bytes): (i64, i64) =
            sqlx::query_as(&sql).bind(project.to_string()).bind(folder).bind(end).fetch_one(&self.pool).await?;
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("entries", format!("a total of {n}")));
        Ok(FolderTotals { files: count(files)?, bytes: count(bytes)? })
    }
}

/// One batch of [`DataStore::apply`]: its write transaction, on one project, at the project's
/// next revision.
struct Batch<D: Database> {
    tx: Transaction<'static, D>,
    /// The project's key, which names it in the catalog's tables.
    project: i64,
    revision: i64,
}

impl<D: Dialect> Batch<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
    for<'q> &'q str: Encode<'q, D> + Type<D> + ColumnIndex<D::Row>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    usize: ColumnIndex<D::Row>,
    String: ColumnType<D>,
    Option<String>: ColumnType<D>,
    i64: ColumnType<D>,
    Option<i64>: ColumnType<D>,
    bool: ColumnType<D>,
    Vec<u8>: ColumnType<D>,
{
    /// Starts the write transaction and takes the project's next revision, which locks the
    /// project's row: batches of one project run one after the other, on every replica.
    async fn begin(store: &SqlStore<D>, project: Uuid) -> Result<Batch<D>> {
        let mut tx = store.begin_write().await?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("UPDATE projects SET revision = revision + 1 WHERE id = $1 RETURNING revision, key")
                .bind(project.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((revision, project)) = row else {
            return Err(StoreError::NotFound);
        };
        Ok(Batch { tx, project, revision })
    }

    /// The stored states of the updates' keys, each with the revision it last changed at. A key
    /// the store does not have is missing.
    async fn load_states(&mut self, updates: &[KeyUpdate]) -> Result<HashMap<String, (KeyState, i64)>> {
        let mut keys: Vec<&str> = updates.iter().map(KeyUpdate::key).collect();
        keys.sort_unstable();
        keys.dedup();
        let rows = D::load_states(&mut self.tx, self.project, &keys).await?;
        let mut loaded = HashMap::with_capacity(rows.len());
        for row in rows {
            let state = row.state()?;
            loaded.insert(row.key, (state, row.revision));
        }
        Ok(loaded)
    }

    /// Stores the keys' new states at the batch's revision; a key whose state holds nothing any
    /// more loses its row.
    async fn write_states(&mut self, states: &[(&str, RowWrite<KeyState>)]) -> Result<()> {
        let (mut new, mut stored, mut forgotten) = (Vec::new(), Vec::new(), Vec::new());
        for (key, write) in states {
            match write {
                RowWrite::Insert(state) => new.push((*key, state_json(state))),
                RowWrite::Update(state) => stored.push((*key, state_json(state))),
                RowWrite::Delete => forgotten.push(*key),
            }
        }
        D::write_states(&mut self.tx, self.project, self.revision, &new, &stored).await?;
        for chunk in forgotten.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM objects WHERE project = {} AND key IN ({})",
                parameters::<D>(1, 1),
                parameters::<D>(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(self.project);
            for key in chunk {
                query = query.bind(*key);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Writes the entries of files that appear or change, and deletes those of files that go.
    async fn write_files(&mut self, files: &[(&str, &str, RowWrite<FileEntry>)]) -> Result<()> {
        let (mut new, mut stored, mut hidden) = (Vec::new(), Vec::new(), Vec::new());
        for (parent, name, write) in files {
            match write {
                RowWrite::Insert(file) => new.push((*parent, *name, file)),
                RowWrite::Update(file) => stored.push((*parent, *name, file)),
                RowWrite::Delete => hidden.push((*parent, *name)),
            }
        }
        D::write_files(&mut self.tx, self.project, &new, &stored).await?;
        for chunk in hidden.chunks(CHUNK) {
            let sql = entries_in::<D>("DELETE", "file", chunk.len());
            let mut query = sqlx::query(&sql).bind(self.project);
            for (parent, name) in chunk {
                query = query.bind(*parent).bind(*name);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// The rows of `folders` before the batch (`None`: the folder has no row).
    async fn load_folders<'p>(&mut self, folders: BTreeSet<&'p str>) -> Result<BTreeMap<&'p str, Option<FolderRow>>> {
        let mut rows: BTreeMap<&str, Option<FolderRow>> = folders.iter().map(|path| (*path, None)).collect();
        let folders: Vec<(&str, &str)> = folders.iter().map(|path| split(path)).collect();
        for (parent, name, children, marker) in D::load_folders(&mut self.tx, self.project, &folders).await? {
            if let Some(row) = rows.get_mut(format!("{parent}{name}").as_str()) {
                *row = Some(FolderRow { children, marker });
            }
        }
        Ok(rows)
    }

    /// Writes the rows of folders that appear or whose count or marker changes, and deletes
    /// those of folders that go (`None`).
    async fn write_folders(&mut self, folders: &[(&str, Option<FolderRow>)]) -> Result<()> {
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (path, row) in folders {
            match row {
                Some(row) => kept.push((*path, *row)),
                None => gone.push(split(path)),
            }
        }
        for chunk in kept.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO entries (project, parent, name, kind, children, marker) VALUES {} \
                 ON CONFLICT (project, parent, name) DO UPDATE SET \
                 children = excluded.children, marker = excluded.marker",
                tuples::<D>(1, chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for (path, folder) in chunk {
                let (parent, name) = split(path);
                query = query
                    .bind(self.project)
                    .bind(parent)
                    .bind(name)
                    .bind("folder")
                    .bind(folder.children)
                    .bind(folder.marker);
            }
            query.execute(&mut *self.tx).await?;
        }
        for chunk in gone.chunks(CHUNK) {
            let sql = entries_in::<D>("DELETE", "folder", chunk.len());
            let mut query = sqlx::query(&sql).bind(self.project);
            for (parent, name) in chunk {
                query = query.bind(*parent).bind(*name);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Commits the batch; returns its revision.
    async fn commit(self) -> Result<i64> {
        self.tx.commit().await?;
        Ok(self.revision)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;

    /// SQLite's generated statements use bare `?`: a numbered or named parameter costs a lookup
    /// in a list at every bind, which made big batches 8 times as slow to apply.
    #[test]
    fn generated_statements_number_parameters_as_each_database_binds_them_fastest() {
        assert_eq!(tuples::<Sqlite>(3, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(tuples::<Postgres>(3, 2, 2), "($3, $4), ($5, $6)");
        assert_eq!(
            entries_in::<Sqlite>("DELETE", "file", 1),
            "DELETE FROM entries WHERE project = ? AND kind = 'file' AND (parent, name) IN (VALUES (?, ?))"
        );
        assert_eq!(
            entries_in::<Postgres>("DELETE", "file", 1),
            "DELETE FROM entries WHERE project = $1 AND kind = 'file' AND (parent, name) IN (VALUES ($2, $3))"
        );
    }
}
