//! The SQL of [`DataStore`](crate::DataStore) and [`SyncStore`](crate::SyncStore), shared by
//! both databases. A batch takes a few statements per chunk of keys, not one per key: one
//! `SELECT ... IN` per chunk of keys, one multi-row upsert or delete per chunk of states and of
//! files (files that go, folder by folder), then the same for the rows of the folders the batch
//! may change. The rules are in [`crate::data`].

use byos_domain::objects::KeyState;

use crate::data::{Entry, EntryKind, FileEntry, StoredKey, restore_from_text};
use crate::model::{DeadLetter, Drift, ReconcileRun, ReconcileStatus};
use crate::sql::{corrupt, uuid};
use crate::{Result, from_millis};

/// Rows per multi-row statement: well under both databases' limits on bound parameters.
pub(crate) const CHUNK: usize = 500;

pub(crate) const ENTRY_COLUMNS: &str =
    "parent, name, kind, size, etag, last_modified, storage_class, version_id, archive, children, marker";
pub(crate) const RECONCILE_COLUMNS: &str = "id, project_id, reason, status, fence, listed, added, removed, changed, \
    samples, error, started_at, updated_at, finished_at";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub(crate) key: String,
    pub(crate) state: String,
    pub(crate) revision: i64,
}

impl KeyRow {
    pub(crate) fn state(&self) -> Result<KeyState> {
        serde_json::from_str(&self.state).map_err(|e| corrupt("objects", format!("key {:?}: {e}", self.key)))
    }
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = crate::StoreError;

    fn try_from(row: KeyRow) -> Result<StoredKey> {
        Ok(StoredKey { state: row.state()?, key: row.key, revision: row.revision })
    }
}

/// `{verb} FROM entries` of the project's entries of `kind` at the `(parent, name)` pairs, as a
/// row-value `IN (VALUES ...)`.
pub(crate) fn entries_in<'a, DB: sqlx::Database>(
    verb: &str,
    project_id: &'a str,
    kind: &str,
    pairs: &[(&'a str, &'a str)],
) -> sqlx::QueryBuilder<'a, DB>
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::QueryBuilder::new(format!("{verb} FROM entries WHERE project_id = "));
    query.push_bind(project_id).push(format!(" AND kind = '{kind}' AND (parent, name) IN (VALUES "));
    let mut list = query.separated(", ");
    for (parent, name) in pairs {
        list.push("(")
            .push_bind_unseparated(*parent)
            .push_unseparated(", ")
            .push_bind_unseparated(*name)
            .push_unseparated(")");
    }
    query.push(")");
    query
}

pub(crate) fn state_json(state: &KeyState) -> String {
    serde_json::to_string(state).unwrap_or_else(|_| unreachable!("a key state always serializes"))
}

/// An entry's row: from the database's row, or from an element of a page's JSON array (the
/// columns in [`ENTRY_COLUMNS`] order, see [`entries_from_json`]).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct EntryRow {
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

impl TryFrom<EntryRow> for Entry {
    type Error = crate::StoreError;

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

#[derive(sqlx::FromRow)]
pub(crate) struct ReconcileRow {
    id: String,
    project_id: String,
    reason: String,
    status: String,
    fence: i64,
    listed: i64,
    added: i64,
    removed: i64,
    changed: i64,
    samples: String,
    error: Option<String>,
    started_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

/// The samples column holds the drift's samples; the counts have columns of their own.
pub(crate) fn samples_json(drift: &Drift) -> String {
    serde_json::to_string(drift).unwrap_or_else(|_| unreachable!("a drift report always serializes"))
}

impl TryFrom<ReconcileRow> for ReconcileRun {
    type Error = crate::StoreError;

    fn try_from(row: ReconcileRow) -> Result<ReconcileRun> {
        const T: &str = "reconciles";
        let mut drift: Drift = serde_json::from_str(&row.samples).map_err(|e| corrupt(T, e))?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        drift.added = count(row.added);
        drift.removed = count(row.removed);
        drift.changed = count(row.changed);
        Ok(ReconcileRun {
            id: uuid(T, &row.id)?,
            project_id: uuid(T, &row.project_id)?,
            reason: row.reason,
            status: ReconcileStatus::parse(&row.status)
                .ok_or_else(|| corrupt(T, format!("status {:?}", row.status)))?,
            fence: row.fence,
            listed: count(row.listed),
            drift,
            error: row.error,
            started_at: from_millis(T, row.started_at)?,
            updated_at: from_millis(T, row.updated_at)?,
            finished_at: row.finished_at.map(|t| from_millis(T, t)).transpose()?,
        })
    }
}

pub(crate) fn dead_letter_id(letter: &DeadLetter) -> String {
    letter.id.to_string()
}

/// Implements [`DataStore`](crate::DataStore) and [`SyncStore`](crate::SyncStore) for a backend
/// whose sqlx database is `$db`.
macro_rules! impl_data_stores {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::DataStore for $store {
            async fn apply(
                &self,
                project: uuid::Uuid,
                updates: &[$crate::KeyUpdate],
            ) -> $crate::Result<$crate::ApplyOutcome> {
                use std::collections::{BTreeMap, HashMap};

                use $crate::sql::data::CHUNK;

                if let Some(key) = updates.iter().map($crate::KeyUpdate::key).find(|k| !$crate::storable_key(k)) {
                    return Err($crate::StoreError::UnstorableKey(key.to_owned()));
                }
                let project_id = project.to_string();
                let mut tx = self.begin_write().await?;
                // Taking the next revision locks the project's row: batches of one project run
                // one after the other, on every replica.
                let revision: Option<i64> =
                    sqlx::query_scalar("UPDATE projects SET revision = revision + 1 WHERE id = $1 RETURNING revision")
                        .bind(&project_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(revision) = revision else {
                    return Err($crate::StoreError::NotFound);
                };

                let mut keys: Vec<&str> = updates.iter().map($crate::KeyUpdate::key).collect();
                keys.sort_unstable();
                keys.dedup();
                let mut loaded = HashMap::with_capacity(keys.len());
                for chunk in keys.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT key, state, revision FROM objects WHERE project_id = ",
                    );
                    query.push_bind(&project_id).push(" AND key IN (");
                    let mut list = query.separated(", ");
                    for key in chunk {
                        list.push_bind(*key);
                    }
                    query.push(")");
                    let rows: Vec<$crate::sql::data::KeyRow> = query.build_query_as().fetch_all(&mut *tx).await?;
                    for row in rows {
                        let state = row.state()?;
                        loaded.insert(row.key, (state, row.revision));
                    }
                }

                let plan = $crate::data::plan(updates, loaded);

                let mut kept = Vec::new();
                let mut forgotten = Vec::new();
                for (key, state) in &plan.states {
                    match state {
                        Some(state) => kept.push((*key, state)),
                        None => forgotten.push(*key),
                    }
                }
                for chunk in kept.chunks(CHUNK) {
                    let mut query =
                        sqlx::QueryBuilder::<$db>::new("INSERT INTO objects (project_id, key, state, revision) ");
                    query.push_values(chunk, |mut row, (key, state)| {
                        row.push_bind(&project_id)
                            .push_bind(*key)
                            .push_bind($crate::sql::data::state_json(state))
                            .push_bind(revision);
                    });
                    query.push(
                        " ON CONFLICT (project_id, key) DO UPDATE SET state = excluded.state, revision = excluded.revision",
                    );
                    query.build().execute(&mut *tx).await?;
                }
                for chunk in forgotten.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("DELETE FROM objects WHERE project_id = ");
                    query.push_bind(&project_id).push(" AND key IN (");
                    let mut list = query.separated(", ");
                    for key in chunk {
                        list.push_bind(*key);
                    }
                    query.push(")");
                    query.build().execute(&mut *tx).await?;
                }

                let mut shown = Vec::new();
                let mut hidden = Vec::new();
                for (parent, name, file) in &plan.files {
                    match file {
                        Some(file) => shown.push((*parent, *name, file)),
                        None => hidden.push((*parent, *name)),
                    }
                }
                for chunk in shown.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO entries (project_id, parent, name, kind, size, etag, last_modified, \
                         storage_class, version_id, archive, children, marker) ",
                    );
                    query.push_values(chunk, |mut row, (parent, name, file)| {
                        row.push_bind(&project_id)
                            .push_bind(*parent)
                            .push_bind(*name)
                            .push_bind("file")
                            .push_bind(i64::try_from(file.size).unwrap_or(i64::MAX))
                            .push_bind(file.etag.as_str())
                            .push_bind(file.last_modified_ms)
                            .push_bind(file.storage_class.as_deref())
                            .push_bind(file.version_id.as_deref())
                            .push_bind($crate::data::restore_text(file.restore.as_ref()))
                            .push_bind(0_i64)
                            .push_bind(false);
                    });
                    query.push(
                        " ON CONFLICT (project_id, parent, name) DO UPDATE SET size = excluded.size, \
                         etag = excluded.etag, last_modified = excluded.last_modified, \
                         storage_class = excluded.storage_class, version_id = excluded.version_id, \
                         archive = excluded.archive",
                    );
                    query.build().execute(&mut *tx).await?;
                }
                for chunk in hidden.chunks(CHUNK) {
                    let mut query = $crate::sql::data::entries_in::<$db>("DELETE", &project_id, "file", chunk);
                    query.build().execute(&mut *tx).await?;
                }

                // Folder rows: read those the batch may change, then write the ones that change,
                // a statement per chunk of them.
                let folders = plan.folders();
                let mut rows: BTreeMap<&str, Option<$crate::data::FolderRow>> =
                    folders.iter().map(|path| (*path, None)).collect();
                let folders: Vec<(&str, &str)> = folders.iter().map(|path| $crate::data::split(path)).collect();
                for chunk in folders.chunks(CHUNK) {
                    let mut query = $crate::sql::data::entries_in::<$db>(
                        "SELECT parent, name, children, marker",
                        &project_id,
                        "folder",
                        chunk,
                    );
                    let found: Vec<(String, String, i64, bool)> = query.build_query_as().fetch_all(&mut *tx).await?;
                    for (parent, name, children, marker) in found {
                        if let Some(row) = rows.get_mut(format!("{parent}{name}").as_str()) {
                            *row = Some($crate::data::FolderRow { children, marker });
                        }
                    }
                }
                let folded = $crate::data::fold_folders(&plan, rows);
                let mut kept = Vec::new();
                let mut gone = Vec::new();
                for (path, row) in &folded {
                    match row {
                        Some(row) => kept.push((*path, *row)),
                        None => gone.push($crate::data::split(path)),
                    }
                }
                for chunk in kept.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO entries (project_id, parent, name, kind, children, marker) ",
                    );
                    query.push_values(chunk, |mut row, (path, folder)| {
                        let (parent, name) = $crate::data::split(path);
                        row.push_bind(&project_id)
                            .push_bind(parent)
                            .push_bind(name)
                            .push_bind("folder")
                            .push_bind(folder.children)
                            .push_bind(folder.marker);
                    });
                    query.push(
                        " ON CONFLICT (project_id, parent, name) DO UPDATE SET \
                         children = excluded.children, marker = excluded.marker",
                    );
                    query.build().execute(&mut *tx).await?;
                }
                for chunk in gone.chunks(CHUNK) {
                    let mut query = $crate::sql::data::entries_in::<$db>("DELETE", &project_id, "folder", chunk);
                    query.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok($crate::ApplyOutcome { revision, ..plan.outcome })
            }

            async fn revision(&self, project: uuid::Uuid) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT revision FROM projects WHERE id = $1")
                    .bind(project.to_string())
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn keys(
                &self,
                project: uuid::Uuid,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::StoredKey>> {
                let mut query =
                    sqlx::QueryBuilder::<$db>::new("SELECT key, state, revision FROM objects WHERE project_id = ");
                query.push_bind(project.to_string());
                // Without `after`, from the very first key: `key > ''` would leave out the empty
                // key (the project folder's own marker).
                if let Some(after) = after {
                    query.push(" AND key > ").push_bind(after);
                }
                query.push(" ORDER BY key LIMIT ").push_bind(i64::from(limit));
                let rows: Vec<$crate::sql::data::KeyRow> = query.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn entries(
                &self,
                project: uuid::Uuid,
                folder: &str,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::Entry>> {
                let page: String = sqlx::query_scalar(Self::ENTRIES_PAGE)
                    .bind(project.to_string())
                    .bind(folder)
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_one(&self.pool)
                    .await?;
                $crate::sql::data::entries_from_json(&page)
            }

            async fn entry(&self, project: uuid::Uuid, path: &str) -> $crate::Result<$crate::Entry> {
                let (parent, name) = $crate::data::split(path);
                let sql = format!(
                    "SELECT {} FROM entries WHERE project_id = $1 AND parent = $2 AND name = $3",
                    $crate::sql::data::ENTRY_COLUMNS
                );
                let row: $crate::sql::data::EntryRow = sqlx::query_as(&sql)
                    .bind(project.to_string())
                    .bind(parent)
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
                row.try_into()
            }
        }

        #[async_trait::async_trait]
        impl $crate::SyncStore for $store {
            async fn insert_reconcile(&self, run: &$crate::ReconcileRun) -> $crate::Result<()> {
                let result = sqlx::query(
                    "INSERT INTO reconciles (id, project_id, reason, status, fence, listed, added, removed, changed, \
                     samples, error, started_at, updated_at, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(run.id.to_string())
                .bind(run.project_id.to_string())
                .bind(&run.reason)
                .bind(run.status.as_str())
                .bind(run.fence)
                .bind(i64::try_from(run.listed).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.added).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.removed).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.changed).unwrap_or(i64::MAX))
                .bind($crate::sql::data::samples_json(&run.drift))
                .bind(run.error.as_deref())
                .bind($crate::millis(run.started_at))
                .bind($crate::millis(run.updated_at))
                .bind(run.finished_at.map($crate::millis))
                .execute(self.write_pool())
                .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) if $crate::sql::is_foreign_key_violation(&e) => Err($crate::StoreError::NotFound),
                    Err(e) => Err(e.into()),
                }
            }

            async fn update_reconcile(&self, run: &$crate::ReconcileRun) -> $crate::Result<()> {
                let done = sqlx::query(
                    "UPDATE reconciles SET status = $2, listed = $3, added = $4, removed = $5, changed = $6, \
                     samples = $7, error = $8, updated_at = $9, finished_at = $10 WHERE id = $1",
                )
                .bind(run.id.to_string())
                .bind(run.status.as_str())
                .bind(i64::try_from(run.listed).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.added).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.removed).unwrap_or(i64::MAX))
                .bind(i64::try_from(run.drift.changed).unwrap_or(i64::MAX))
                .bind($crate::sql::data::samples_json(&run.drift))
                .bind(run.error.as_deref())
                .bind($crate::millis(run.updated_at))
                .bind(run.finished_at.map($crate::millis))
                .execute(self.write_pool())
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn get_reconcile(&self, id: uuid::Uuid) -> $crate::Result<$crate::ReconcileRun> {
                let sql = format!("SELECT {} FROM reconciles WHERE id = $1", $crate::sql::data::RECONCILE_COLUMNS);
                let row: $crate::sql::data::ReconcileRow =
                    sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn latest_reconcile(&self, project: uuid::Uuid) -> $crate::Result<Option<$crate::ReconcileRun>> {
                let sql = format!(
                    "SELECT {} FROM reconciles WHERE project_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1",
                    $crate::sql::data::RECONCILE_COLUMNS
                );
                let row: Option<$crate::sql::data::ReconcileRow> =
                    sqlx::query_as(&sql).bind(project.to_string()).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn interrupt_reconciles(
                &self,
                project: uuid::Uuid,
                error: &str,
                now: time::OffsetDateTime,
            ) -> $crate::Result<u64> {
                let done = sqlx::query(
                    "UPDATE reconciles SET status = 'interrupted', error = $2, updated_at = $3, finished_at = $3 \
                     WHERE project_id = $1 AND status = 'running'",
                )
                .bind(project.to_string())
                .bind(error)
                .bind($crate::millis(now))
                .execute(self.write_pool())
                .await?;
                Ok(done.rows_affected())
            }

            async fn due_reconciles(&self, due: &$crate::ReconcileSchedule) -> $crate::Result<Vec<uuid::Uuid>> {
                // Each project's latest run, by the index on (project_id, started_at).
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT p.id FROM projects p \
                     LEFT JOIN reconciles r ON r.id = (SELECT id FROM reconciles \
                         WHERE project_id = p.id ORDER BY started_at DESC, id DESC LIMIT 1) \
                     WHERE (r.id IS NULL AND p.created_at <= $1) \
                        OR (r.status = 'running' AND r.updated_at <= $2) \
                        OR (r.status IN ('failed', 'interrupted') AND r.finished_at <= $3) \
                        OR (r.status = 'finished' AND r.finished_at <= $4) \
                     ORDER BY p.id",
                )
                .bind($crate::millis(due.created_before))
                .bind($crate::millis(due.running_stale_before))
                .bind($crate::millis(due.failed_before))
                .bind($crate::millis(due.finished_before))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|(id,)| $crate::sql::uuid("projects", id)).collect()
            }

            async fn insert_dead_letter(&self, letter: &$crate::DeadLetter) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO dead_letters (id, queue, message_id, body, error, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind($crate::sql::data::dead_letter_id(letter))
                .bind(&letter.queue)
                .bind(&letter.message_id)
                .bind(&letter.body)
                .bind(&letter.error)
                .bind($crate::millis(letter.received_at))
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn count_dead_letters(&self) -> $crate::Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters").fetch_one(&self.pool).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }
    };
}

pub(crate) use impl_data_stores;
