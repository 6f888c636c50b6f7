//! Reconcile runs and messages that could not be read: the SQL of [`SyncStore`].

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::data::{parameters, tuples};
use super::{ColumnType, Dialect, SqlStore, corrupt, is_foreign_key_violation, uuid};
use crate::model::{DeadLetter, Drift, OutsideChange, ReconcileRun, ReconcileStatus};
use crate::{ReconcileSchedule, Result, StoreError, SyncStore, from_millis, millis};

/// Changes per statement: three parameters each, well under SQLite's limit.
const OUTSIDE_CHUNK: usize = 300;

const RECONCILE_COLUMNS: &str = "id, project_id, reason, status, fence, listed, added, removed, changed, \
    samples, error, started_at, updated_at, finished_at, baseline";

super::row! {
    struct ReconcileRow {
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
        baseline: Option<String>,
    }
}

/// The samples column holds the drift's samples; the counts have columns of their own.
fn samples_json(drift: &Drift) -> String {
    serde_json::to_string(drift).unwrap_or_else(|_| unreachable!("a drift report always serializes"))
}

impl TryFrom<ReconcileRow> for ReconcileRun {
    type Error = StoreError;

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
            baseline: row.baseline,
        })
    }
}

#[async_trait]
impl<D: Dialect> SyncStore for SqlStore<D>
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
    async fn insert_reconcile(&self, run: &ReconcileRun) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO reconciles (id, project_id, reason, status, fence, listed, added, removed, changed, \
             samples, error, started_at, updated_at, finished_at, baseline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .bind(samples_json(&run.drift))
        .bind(run.error.as_deref())
        .bind(millis(run.started_at))
        .bind(millis(run.updated_at))
        .bind(run.finished_at.map(millis))
        .bind(run.baseline.as_deref())
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn update_reconcile(&self, run: &ReconcileRun) -> Result<()> {
        let done = sqlx::query(
            "UPDATE reconciles SET status = $2, listed = $3, added = $4, removed = $5, changed = $6, \
             samples = $7, error = $8, updated_at = $9, finished_at = $10, baseline = $11 WHERE id = $1",
        )
        .bind(run.id.to_string())
        .bind(run.status.as_str())
        .bind(i64::try_from(run.listed).unwrap_or(i64::MAX))
        .bind(i64::try_from(run.drift.added).unwrap_or(i64::MAX))
        .bind(i64::try_from(run.drift.removed).unwrap_or(i64::MAX))
        .bind(i64::try_from(run.drift.changed).unwrap_or(i64::MAX))
        .bind(samples_json(&run.drift))
        .bind(run.error.as_deref())
        .bind(millis(run.updated_at))
        .bind(run.finished_at.map(millis))
        .bind(run.baseline.as_deref())
        .execute(&self.writer)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_reconcile(&self, id: Uuid) -> Result<ReconcileRun> {
        let sql = format!("SELECT {RECONCILE_COLUMNS} FROM reconciles WHERE id = $1");
        let row: ReconcileRow = sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn latest_reconcile(&self, project: Uuid) -> Result<Option<ReconcileRun>> {
        let sql = format!(
            "SELECT {RECONCILE_COLUMNS} FROM reconciles WHERE project_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        let row: Option<ReconcileRow> =
            sqlx::query_as(&sql).bind(project.to_string()).fetch_optional(&self.pool).await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn interrupt_reconciles(&self, project: Uuid, error: &str, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE reconciles SET status = 'interrupted', error = $2, updated_at = $3, finished_at = $3 \
             WHERE project_id = $1 AND status = 'running'",
        )
        .bind(project.to_string())
        .bind(error)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(D::rows_affected(&done))
    }

    async fn due_reconciles(&self, due: &ReconcileSchedule) -> Result<Vec<Uuid>> {
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
        .bind(millis(due.created_before))
        .bind(millis(due.running_stale_before))
        .bind(millis(due.failed_before))
        .bind(millis(due.finished_before))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|(id,)| uuid("projects", id)).collect()
    }

    async fn insert_dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        sqlx::query(
            "INSERT INTO dead_letters (id, queue, message_id, body, error, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(letter.id.to_string())
        .bind(&letter.queue)
        .bind(&letter.message_id)
        .bind(&letter.body)
        .bind(&letter.error)
        .bind(millis(letter.received_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn count_dead_letters(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn note_outside_changes(&self, changes: &[OutsideChange]) -> Result<()> {
        // Rows of one statement must name distinct keys (an upsert touches a row once).
        let mut latest: Vec<&OutsideChange> = changes.iter().collect();
        latest.sort_by(|a, b| (&a.bucket, &a.key, b.at_ms).cmp(&(&b.bucket, &b.key, a.at_ms)));
        latest.dedup_by(|a, b| a.bucket == b.bucket && a.key == b.key);
        for chunk in latest.chunks(OUTSIDE_CHUNK) {
            let sql = format!(
                "INSERT INTO outside_changes (bucket, key, at) VALUES {} ON CONFLICT (bucket, key) DO UPDATE \
                 SET at = CASE WHEN excluded.at > outside_changes.at THEN excluded.at ELSE outside_changes.at END",
                tuples::<D>(1, chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for change in chunk {
                query = query.bind(change.bucket.as_str()).bind(change.key.as_str()).bind(change.at_ms);
            }
            query.execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn outside_changes(
        &self,
        bucket: &str,
        prefix: &str,
        since_ms: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutsideChange>> {
        // From the prefix (or after the last key seen), in key order; the keys past the prefix
        // end the answer.
        let (from, op) = match after {
            Some(after) if after >= prefix => (after, ">"),
            _ => (prefix, ">="),
        };
        let sql = format!(
            "SELECT key, at FROM outside_changes WHERE bucket = {} AND key {op} {} AND at >= {} \
             ORDER BY key LIMIT {}",
            parameters::<D>(1, 1),
            parameters::<D>(2, 1),
            parameters::<D>(3, 1),
            parameters::<D>(4, 1),
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
            .bind(bucket)
            .bind(from)
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, at_ms)| OutsideChange { bucket: bucket.to_owned(), key, at_ms })
            .collect())
    }

    async fn prune_outside_changes(&self, before_ms: i64) -> Result<u64> {
        let sql = format!("DELETE FROM outside_changes WHERE at < {}", parameters::<D>(1, 1));
        let done = sqlx::query(&sql).bind(before_ms).execute(&self.writer).await?;
        Ok(D::rows_affected(&done))
    }
}
