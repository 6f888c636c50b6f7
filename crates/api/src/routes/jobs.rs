//! `/api/v1/jobs`: long operations on a project's data (a folder's delete or move), as they run. A job
//! belongs to its project: its routes need the access to it that the project's own routes would
//! (`project:read` to follow, `project:read-write` to cancel), and to anyone else it does not
//! exist. The rules are `byos_service::Jobs`'.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use byos_catalog::{Job, JobSpec};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, rfc3339};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Id;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_jobs)).routes(routes!(get_job)).routes(routes!(cancel_job))
}

/// A job, as it runs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobView {
    id: Uuid,
    /// `delete-folder` or `move-folder`.
    #[schema(example = "delete-folder")]
    r#type: &'static str,
    project_id: Uuid,
    /// What it works on: the folder a delete empties, or a move moves.
    #[schema(example = "/runs/42/")]
    path: String,
    /// Where a move puts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "/archive/run-42/")]
    to: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "running")]
    status: &'static str,
    progress: ProgressView,
    /// Why it failed: a catalogue entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<JobErrorView>,
    /// A cancel was asked for; the job stops at its next step.
    cancel_requested: bool,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

/// How far a job has got. A total is absent until the job knows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProgressView {
    objects_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects_total: Option<u64>,
    objects_skipped: u64,
    objects_failed: u64,
    bytes_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_total: Option<u64>,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobErrorView {
    /// The catalogue entry's stable code.
    #[schema(example = "objects-not-deleted")]
    code: &'static str,
    message: String,
    /// What to do about it.
    fix: &'static str,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> JobView {
        let (path, to) = match &job.spec {
            JobSpec::DeleteFolder { folder } => (format!("/{folder}"), None),
            JobSpec::MoveFolder { from, to, .. } => (format!("/{from}"), Some(format!("/{to}"))),
        };
        let p = &job.progress;
        JobView {
            id: job.id,
            r#type: job.spec.kind(),
            project_id: job.project_id,
            path,
            to,
            status: job.status.as_str(),
            progress: ProgressView {
                objects_done: p.objects_done,
                objects_total: p.objects_total,
                objects_skipped: p.objects_skipped,
                objects_failed: p.objects_failed,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            },
            error: job.error.as_ref().map(|e| JobErrorView {
                code: e.entry().code,
                message: e.message().to_owned(),
                fix: e.entry().fix,
            }),
            cancel_requested: job.cancel_requested,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only this project's jobs.
    project_id: Option<String>,
}

/// The newest jobs (up to 100) of the projects the caller may see, or of one of them.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), params(JobsQuery),
    responses((status = 200, body = Items<JobView>), (status = "4XX", body = ErrorBody)))]
async fn list_jobs(
    Principal(caller): Principal,
    state: State<AppState>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> ApiResult<Json<Items<JobView>>> {
    let Query(query) = query.map_err(ApiError::from)?;
    let jobs = state.services().jobs().list(&caller, query.project_id.as_deref()).await?;
    Ok(Json(Items { items: jobs.iter().map(JobView::from).collect() }))
}

/// A job, with its progress; its project's readers may follow it.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = ["project:read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn get_job(Principal(caller): Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<JobView>> {
    let job = state.services().jobs().get(&caller, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// Cancel a job: a queued one ends at once, a running one at its next step (what it deleted
/// stays deleted). An ended job stays as it is.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = ["project:read-write"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn cancel_job(Principal(caller): Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<JobView>> {
    let job = state.services().jobs().cancel(&caller, id).await?;
    Ok(Json(JobView::from(&job)))
}
