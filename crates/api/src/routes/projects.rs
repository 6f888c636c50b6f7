//! `/api/v1/projects`: a folder of a storage configuration's bucket, with the catalog of its
//! data kept in sync (the rules, who sees which project among them, are
//! `byos_service::Projects`').
//!
//! Creating a project starts its initial import (a reconcile); `POST .../reconcile` starts
//! another, and `GET .../reconcile` shows the latest run with its progress and drift.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use byos_catalog::{Project, ReconcileRun};
use byos_service::{ProjectRequest, Read, ReadWrite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::{Admin, InProject, Principal};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, delete_project))
        .routes(routes!(latest_reconcile, start_reconcile))
}

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateProject {
    /// 3 to 63 characters.
    name: Option<String>,
    /// The AWS region id: the storage configuration's.
    #[schema(example = "eu-central-1")]
    region: Option<String>,
    storage_configuration_id: Option<String>,
    /// A relative key inside the configuration's prefix, without a leading or trailing `/`;
    /// the project's data lives under `{keyPrefix}{folder}/`.
    #[schema(example = "studies/2026")]
    folder: Option<String>,
}

/// A project.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectView {
    id: Uuid,
    name: String,
    region: String,
    storage_configuration_id: Uuid,
    folder: String,
    bucket: String,
    /// Where the project's data lives in the bucket.
    key_prefix: String,
    created_at: String,
    updated_at: String,
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> ProjectView {
        ProjectView {
            id: p.id,
            name: p.name.to_string(),
            region: p.region.to_string(),
            storage_configuration_id: p.configuration_id,
            folder: p.folder.to_string(),
            bucket: p.bucket.to_string(),
            key_prefix: p.key_prefix.to_string(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A new project and its initial import.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedProject {
    #[serde(flatten)]
    project: ProjectView,
    /// The initial import, running.
    import: ReconcileView,
}

/// What a reconcile found the catalog had missed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DriftView {
    added: u64,
    removed: u64,
    changed: u64,
    /// The first keys of each kind, relative to the project.
    added_samples: Vec<String>,
    removed_samples: Vec<String>,
    changed_samples: Vec<String>,
    /// Keys the catalog cannot keep (they contain NUL), left out with a dead letter each.
    skipped: u64,
    skipped_samples: Vec<String>,
}

/// One reconcile of a project: a listing of its folder (or the bucket's S3 Inventory report) merged
/// with the catalog.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReconcileView {
    id: Uuid,
    project_id: Uuid,
    /// `initial-import`, `periodic` or `requested`.
    reason: String,
    /// `running`, `finished`, `failed`, or `interrupted` (stopped by a shutdown, a lost lease
    /// or a crash; a later run starts again).
    status: String,
    /// Keys listed so far.
    listed: u64,
    drift: DriftView,
    error: Option<String>,
    started_at: String,
    updated_at: String,
    finished_at: Option<String>,
    /// The S3 Inventory report the run started from (its `manifest.json`'s key in the report's
    /// bucket) instead of listing the folder; absent for a run that listed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<String>,
}

impl From<&ReconcileRun> for ReconcileView {
    fn from(run: &ReconcileRun) -> ReconcileView {
        ReconcileView {
            id: run.id,
            project_id: run.project_id,
            reason: run.reason.clone(),
            status: run.status.as_str().to_owned(),
            listed: run.listed,
            drift: DriftView {
                added: run.drift.added,
                removed: run.drift.removed,
                changed: run.drift.changed,
                added_samples: run.drift.added_samples.clone(),
                removed_samples: run.drift.removed_samples.clone(),
                changed_samples: run.drift.changed_samples.clone(),
                skipped: run.drift.skipped,
                skipped_samples: run.drift.skipped_samples.clone(),
            },
            error: run.error.clone(),
            started_at: rfc3339(run.started_at),
            updated_at: rfc3339(run.updated_at),
            finished_at: run.finished_at.map(rfc3339),
            baseline: run.baseline.clone(),
        }
    }
}

impl From<CreateProject> for ProjectRequest {
    fn from(body: CreateProject) -> ProjectRequest {
        ProjectRequest {
            name: body.name,
            region: body.region,
            storage_configuration_id: body.storage_configuration_id,
            folder: body.folder,
        }
    }
}

/// List the projects the caller may see.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    responses((status = 200, body = Items<ProjectView>), (status = "4XX", body = ErrorBody)))]
async fn list_projects(Principal(caller): Principal, state: State<AppState>) -> ApiResult<Json<Items<ProjectView>>> {
    let projects = state.services().projects().list(&caller).await?;
    Ok(Json(Items { items: projects.iter().map(ProjectView::from).collect() }))
}

/// Create a project on a ready storage configuration of its region. Its folder may not lie
/// inside another project's, nor hold one. The initial import starts at once.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = ["admin"])),
    request_body = CreateProject,
    responses((status = 201, body = CreatedProject), (status = "4XX", body = ErrorBody)))]
async fn create_project(
    Admin(caller): Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<impl IntoResponse> {
    let created = state.services().projects().create(&caller, body.into()).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditNote::target(format!("/api/v1/projects/{}", created.project.id))),
        Json(CreatedProject {
            project: ProjectView::from(&created.project),
            import: ReconcileView::from(&created.import),
        }),
    ))
}

/// Get a project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = ["project:read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectView), (status = "4XX", body = ErrorBody)))]
async fn get_project(InProject(scope): InProject<Read>, state: State<AppState>) -> ApiResult<Json<ProjectView>> {
    let project = state.services().projects().get(&scope).await?;
    Ok(Json(ProjectView::from(&project)))
}

/// Delete a project and its catalog. The data stays in the bucket.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_project(Admin(caller): Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.services().projects().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The project's latest reconcile: its progress while it runs, then the drift it found.
#[utoipa::path(get, path = "/api/v1/projects/{id}/reconcile", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ReconcileView), (status = "4XX", body = ErrorBody)))]
async fn latest_reconcile(InProject(scope): InProject<Read>, state: State<AppState>) -> ApiResult<Json<ReconcileView>> {
    let run = state.services().projects().latest_reconcile(&scope).await?;
    Ok(Json(ReconcileView::from(&run)))
}

/// Reconcile the project now: list its folder and heal what events missed. Answers at once with
/// the run (or the one already running); `GET .../reconcile` follows it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/reconcile", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)),
    responses((status = 202, body = ReconcileView), (status = "4XX", body = ErrorBody)))]
async fn start_reconcile(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
) -> ApiResult<impl IntoResponse> {
    let run = state.services().projects().reconcile(&scope).await?;
    Ok((StatusCode::ACCEPTED, Json(ReconcileView::from(&run))))
}
