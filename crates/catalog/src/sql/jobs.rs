//! Jobs: the SQL of [`JobStore`].

use async_trait::async_trait;
use byos_domain::Problem;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt, is_foreign_key_violation, signed, stored_problem, uuid};
use crate::model::{Job, JobProgress, JobSpec, JobStatus};
use crate::{JobStore, Result, StoreError, from_millis, millis};

const JOB_COLUMNS: &str = "id, kind, project_id, spec, status, objects_total, objects_done, objects_skipped, \
    objects_failed, bytes_total, bytes_done, error_code, error_message, cancel_requested, created_by, created_at, \
    updated_at, started_at, finished_at";

#[derive(sqlx::FromRow)]
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
        Ok(Job {
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
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
        let query = sqlx::query(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $2), updated_at = $2, \
             objects_total = $3, objects_done = $4, objects_skipped = $5, objects_failed = $6, bytes_total = $7, \
             bytes_done = $8 \
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING cancel_requested",
        )
        .bind(id.to_string())
        .bind(millis(now));
        let row = bind_progress(query, progress).fetch_optional(&self.writer).await?;
        let cancel: Option<bool> = row.map(|row| row.try_get(0)).transpose()?;
        match cancel {
            Some(cancel) => Ok(cancel),
            // Gone with its project, or cancelled while it was still queued.
            None => match self.get_job(id).await?.status {
                JobStatus::Cancelled => Ok(true),
                _ => Err(StoreError::NotFound),
            },
        }
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
}
