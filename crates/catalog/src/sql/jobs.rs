//! Jobs: the SQL of [`JobStore`].

use async_trait::async_trait;
use byos_domain::{Problem, ValidationReport};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Transaction, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::data::tuples;
use super::{ColumnType, Dialect, SqlStore, corrupt, is_foreign_key_violation, signed, stored_problem, uuid};
use crate::model::{Job, JobObject, JobPlan, JobProgress, JobSpec, JobStatus, ObjectResult};
use crate::{JobStore, Recorded, Result, StoreError, from_millis, millis};

const JOB_COLUMNS: &str = "id, kind, project_id, spec, status, objects_total, objects_done, objects_skipped, \
    objects_failed, bytes_total, bytes_done, error_code, error_message, cancel_requested, created_by, created_at, \
    updated_at, started_at, finished_at, plan, preflight";

const OBJECT_COLUMNS: &str = "seq, source_key, version_id, size, etag, destination_key, result, error";

/// Objects one statement inserts: 9 parameters each, within both databases' limits.
const OBJECTS_PER_INSERT: usize = 500;

super::row! {
    struct JobRow {
        id: String,
        kind: String,
        project_id: String,
        spec: String,
        status: String,
        objects_total: Option<i64>,
        objects_done: i64,
        objects_skipped: i64,
        objects_failed: i64,
        bytes_total: Option<i64>,
        bytes_done: i64,
        error_code: Option<String>,
        error_message: Option<String>,
        cancel_requested: bool,
        created_by: String,
        created_at: i64,
        updated_at: i64,
        started_at: Option<i64>,
        finished_at: Option<i64>,
        plan: Option<String>,
        preflight: Option<String>,
    }
}

super::row! {
    struct ObjectRow {
        seq: i64,
        source_key: String,
        version_id: Option<String>,
        size: i64,
        etag: String,
        destination_key: String,
        result: String,
        error: Option<String>,
    }
}

impl TryFrom<ObjectRow> for JobObject {
    type Error = StoreError;

    fn try_from(row: ObjectRow) -> Result<JobObject> {
        const T: &str = "job_objects";
        Ok(JobObject {
            seq: u64::try_from(row.seq).map_err(|_| corrupt(T, format!("seq {}", row.seq)))?,
            source_key: row.source_key,
            version_id: row.version_id,
            size: u64::try_from(row.size).map_err(|_| corrupt(T, format!("size {}", row.size)))?,
            etag: row.etag,
            destination_key: row.destination_key,
            result: ObjectResult::parse(&row.result).ok_or_else(|| corrupt(T, format!("result {:?}", row.result)))?,
            error: row.error,
        })
    }
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Job> {
        const T: &str = "jobs";
        let count = |what: &str, n: i64| u64::try_from(n).map_err(|_| corrupt(T, format!("{what} {n}")));
        let spec: JobSpec = serde_json::from_str(&row.spec).map_err(|e| corrupt(T, format!("spec: {e}")))?;
        if spec.kind() != row.kind {
            return Err(corrupt(T, format!("kind {:?} with a spec of {:?}", row.kind, spec.kind())));
        }
        let error = stored_problem(T, row.error_code, row.error_message)?;
        fn json<V: serde::de::DeserializeOwned>(what: &str, text: Option<String>) -> Result<Option<V>> {
            text.map(|text| serde_json::from_str(&text).map_err(|e| corrupt("jobs", format!("{what}: {e}"))))
                .transpose()
        }
        Ok(Job {
            plan: json("plan", row.plan)?,
            preflight: json("preflight", row.preflight)?,
            id: uuid(T, &row.id)?,
            project_id: uuid(T, &row.project_id)?,
            spec,
            status: JobStatus::parse(&row.status).ok_or_else(|| corrupt(T, format!("status {:?}", row.status)))?,
            progress: JobProgress {
                objects_total: row.objects_total.map(|n| count("objects total", n)).transpose()?,
                objects_done: count("objects done", row.objects_done)?,
                objects_skipped: count("objects skipped", row.objects_skipped)?,
                objects_failed: count("objects failed", row.objects_failed)?,
                bytes_total: row.bytes_total.map(|n| count("bytes total", n)).transpose()?,
                bytes_done: count("bytes done", row.bytes_done)?,
            },
            error,
            cancel_requested: row.cancel_requested,
            created_by: uuid(T, &row.created_by)?,
            created_at: from_millis(T, row.created_at)?,
            updated_at: from_millis(T, row.updated_at)?,
            started_at: row.started_at.map(|t| from_millis(T, t)).transpose()?,
            finished_at: row.finished_at.map(|t| from_millis(T, t)).transpose()?,
        })
    }
}

/// Binds a job's progress: `objects_total`, `objects_done`, `objects_skipped`, `objects_failed`,
/// `bytes_total`, `bytes_done`, the order every statement here lists them in.
fn bind_progress<'q, D: Dialect>(
    query: Query<'q, D, D::Arguments<'q>>,
    p: &JobProgress,
) -> Query<'q, D, D::Arguments<'q>>
where
    i64: ColumnType<D>,
    Option<i64>: ColumnType<D>,
{
    query
        .bind(p.objects_total.map(signed))
        .bind(signed(p.objects_done))
        .bind(signed(p.objects_skipped))
        .bind(signed(p.objects_failed))
        .bind(p.bytes_total.map(signed))
        .bind(signed(p.bytes_done))
}

#[async_trait]
impl<D: Dialect> JobStore for SqlStore<D>
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
    async fn insert_job(&self, job: &Job) -> Result<()> {
        let spec = serde_json::to_string(&job.spec).unwrap_or_else(|_| unreachable!("a job's spec always serializes"));
        let sql = format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        let query = sqlx::query(&sql)
            .bind(job.id.to_string())
            .bind(job.spec.kind())
            .bind(job.project_id.to_string())
            .bind(spec)
            .bind(job.status.as_str());
        let inserted = bind_progress(query, &job.progress)
            .bind(job.error.as_ref().map(|e| e.entry().code))
            .bind(job.error.as_ref().map(Problem::message))
            .bind(job.cancel_requested)
            .bind(job.created_by.to_string())
            .bind(millis(job.created_at))
            .bind(millis(job.updated_at))
            .bind(job.started_at.map(millis))
            .bind(job.finished_at.map(millis))
            .bind(job.plan.as_ref().map(to_json))
            .bind(job.preflight.as_ref().map(to_json))
            .execute(&self.writer)
            .await;
        match inserted {
            Ok(_) => Ok(()),
            // The project is gone.
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_job(&self, id: Uuid) -> Result<Job> {
        let row: Option<JobRow> = sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    async fn list_jobs(&self, project: Option<Uuid>, limit: u32) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = match project {
            Some(project) => {
                sqlx::query_as(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(project.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn unfinished_jobs(&self, limit: u32) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn record_job_progress(&self, id: Uuid, progress: &JobProgress, now: OffsetDateTime) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let cancel = self.progress_in(&mut tx, id, None, progress, now).await?;
        tx.commit().await?;
        self.cancel_asked(id, cancel).await
    }

    async fn finish_job(
        &self,
        id: Uuid,
        status: JobStatus,
        progress: &JobProgress,
        error: Option<&Problem>,
        now: OffsetDateTime,
    ) -> Result<()> {
        debug_assert!(status.is_final(), "a job ends {status:?}");
        let query = sqlx::query(
            "UPDATE jobs SET status = $2, updated_at = $3, finished_at = $3, objects_total = $4, objects_done = $5, \
             objects_skipped = $6, objects_failed = $7, bytes_total = $8, bytes_done = $9, error_code = $10, \
             error_message = $11 \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(millis(now));
        let done = bind_progress(query, progress)
            .bind(error.map(|e| e.entry().code))
            .bind(error.map(Problem::message))
            .execute(&self.writer)
            .await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn cancel_job(&self, id: Uuid, now: OffsetDateTime) -> Result<Job> {
        // A queued job has no runner to stop it: it ends here.
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = $2, updated_at = $3, finished_at = $3 \
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(id.to_string())
        .bind(true)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = $2, updated_at = $3 WHERE id = $1 AND status = 'running'")
            .bind(id.to_string())
            .bind(true)
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        self.get_job(id).await
    }

    async fn record_job_preflight(&self, id: Uuid, report: &ValidationReport) -> Result<()> {
        let done = sqlx::query("UPDATE jobs SET preflight = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(to_json(report))
            .execute(&self.writer)
            .await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn plan_job_objects(
        &self,
        id: Uuid,
        objects: &[JobObject],
        plan: &JobPlan,
        progress: &JobProgress,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        for chunk in objects.chunks(OBJECTS_PER_INSERT) {
            let sql =
                format!("INSERT INTO job_objects (job_id, {OBJECT_COLUMNS}) VALUES {}", tuples::<D>(1, chunk.len(), 9));
            let mut query = sqlx::query(&sql);
            for object in chunk {
                query = query
                    .bind(id.to_string())
                    .bind(signed(object.seq))
                    .bind(object.source_key.as_str())
                    .bind(object.version_id.as_deref())
                    .bind(signed(object.size))
                    .bind(object.etag.as_str())
                    .bind(object.destination_key.as_str())
                    .bind(object.result.as_str())
                    .bind(object.error.as_deref());
            }
            query.execute(&mut *tx).await?;
        }
        let cancel = self.progress_in(&mut tx, id, Some(plan), progress, now).await?;
        tx.commit().await?;
        self.cancel_asked(id, cancel).await
    }

    async fn job_objects(&self, id: Uuid, after: Option<u64>, pending: bool, limit: u32) -> Result<Vec<JobObject>> {
        let filter = if pending { "AND result = 'pending'" } else { "" };
        let rows: Vec<ObjectRow> = sqlx::query_as(&format!(
            "SELECT {OBJECT_COLUMNS} FROM job_objects WHERE job_id = $1 AND seq > $2 {filter} ORDER BY seq LIMIT $3"
        ))
        .bind(id.to_string())
        .bind(after.map_or(-1, signed))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(JobObject::try_from).collect()
    }

    async fn record_job_objects(
        &self,
        id: Uuid,
        results: &[(u64, ObjectResult, Option<String>)],
        now: OffsetDateTime,
    ) -> Result<Recorded> {
        let mut tx = self.begin_write().await?;
        // Only pending objects change, and only they count: what each statement changed comes
        // back with its size. One statement per result for the objects without an error (most
        // of them), one per object with one.
        let mut delta = JobProgress::default();
        let mut count = |result: ObjectResult, sizes: &[i64]| {
            let n = sizes.len() as u64;
            match result {
                ObjectResult::Copied | ObjectResult::Moved | ObjectResult::Planned => {
                    delta.objects_done += n;
                    delta.bytes_done += sizes.iter().map(|s| unsigned(*s)).sum::<u64>();
                }
                ObjectResult::Skipped => delta.objects_skipped += n,
                ObjectResult::Failed => delta.objects_failed += n,
                ObjectResult::Pending => {}
            }
        };
        let mut plain: Vec<(ObjectResult, Vec<i64>)> = Vec::new();
        for (seq, result, error) in results {
            match error {
                Some(error) => {
                    let sizes: Vec<i64> = sqlx::query_scalar(
                        "UPDATE job_objects SET result = $3, error = $4 \
                         WHERE job_id = $1 AND seq = $2 AND result = 'pending' RETURNING size",
                    )
                    .bind(id.to_string())
                    .bind(signed(*seq))
                    .bind(result.as_str())
                    .bind(error.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    count(*result, &sizes);
                }
                None => match plain.iter_mut().find(|(r, _)| r == result) {
                    Some((_, seqs)) => seqs.push(signed(*seq)),
                    None => plain.push((*result, vec![signed(*seq)])),
                },
            }
        }
        for (result, seqs) in plain {
            for chunk in seqs.chunks(OBJECTS_PER_INSERT) {
                let sql = format!(
                    "UPDATE job_objects SET result = {}, error = NULL \
                     WHERE job_id = {} AND result = 'pending' AND seq IN ({}) RETURNING size",
                    super::data::parameters::<D>(1, 1),
                    super::data::parameters::<D>(2, 1),
                    super::data::parameters::<D>(3, chunk.len())
                );
                let mut query = sqlx::query_scalar(&sql).bind(result.as_str()).bind(id.to_string());
                for seq in chunk {
                    query = query.bind(*seq);
                }
                let sizes: Vec<i64> = query.fetch_all(&mut *tx).await?;
                count(result, &sizes);
            }
        }
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $2), updated_at = $2, \
             objects_done = objects_done + $3, objects_skipped = objects_skipped + $4, \
             objects_failed = objects_failed + $5, bytes_done = bytes_done + $6 \
             WHERE id = $1 AND status IN ('queued', 'running') \
             RETURNING cancel_requested, objects_total, objects_done, objects_skipped, objects_failed, \
             bytes_total, bytes_done",
        )
        .bind(id.to_string())
        .bind(millis(now))
        .bind(signed(delta.objects_done))
        .bind(signed(delta.objects_skipped))
        .bind(signed(delta.objects_failed))
        .bind(signed(delta.bytes_done))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else {
            // Not running: cancelled while queued, or ended, or gone with its project.
            let job = self.get_job(id).await?;
            let cancel = self.cancel_asked(id, None).await?;
            return Ok(Recorded { progress: job.progress, cancel });
        };
        let optional = |i: usize| -> Result<Option<u64>> { Ok(row.try_get::<Option<i64>, _>(i)?.map(unsigned)) };
        let counter = |i: usize| -> Result<u64> { Ok(unsigned(row.try_get::<i64, _>(i)?)) };
        Ok(Recorded {
            cancel: row.try_get(0)?,
            progress: JobProgress {
                objects_total: optional(1)?,
                objects_done: counter(2)?,
                objects_skipped: counter(3)?,
                objects_failed: counter(4)?,
                bytes_total: optional(5)?,
                bytes_done: counter(6)?,
            },
        })
    }
}

impl<D: Dialect> SqlStore<D>
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
    /// Records that a job runs (its `started_at` the first time), its progress, and where its
    /// plan stands when `plan` is given. `Some(cancel asked)`, or `None` when the job is not
    /// queued or running.
    async fn progress_in(
        &self,
        tx: &mut Transaction<'static, D>,
        id: Uuid,
        plan: Option<&JobPlan>,
        progress: &JobProgress,
        now: OffsetDateTime,
    ) -> Result<Option<bool>> {
        let query = sqlx::query(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $2), updated_at = $2, \
             plan = COALESCE($3, plan), objects_total = $4, objects_done = $5, objects_skipped = $6, \
             objects_failed = $7, bytes_total = $8, bytes_done = $9 \
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING cancel_requested",
        )
        .bind(id.to_string())
        .bind(millis(now))
        .bind(plan.map(to_json));
        let row = bind_progress(query, progress).fetch_optional(&mut **tx).await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    /// What [`SqlStore::progress_in`] found, as the store's answer: a job that was not running
    /// was cancelled while queued, or is gone with its project.
    async fn cancel_asked(&self, id: Uuid, cancel: Option<bool>) -> Result<bool> {
        match cancel {
            Some(cancel) => Ok(cancel),
            None => match self.get_job(id).await?.status {
                JobStatus::Cancelled => Ok(true),
                _ => Err(StoreError::NotFound),
            },
        }
    }
}

/// A counter or size as stored (never negative) back to what it counts.
fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| unreachable!("a job's plan and report always serialize"))
}
