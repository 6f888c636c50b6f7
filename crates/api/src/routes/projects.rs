//! `/api/v1/projects`: a folder of a storage configuration's bucket, with the catalog of its
//! data kept in sync. Admins create and delete projects; members see the projects their token
//! names, and nothing of the others (not even that they exist).
//!
//! Creating a project starts its initial import (a reconcile); `POST .../reconcile` starts
//! another, and `GET .../reconcile` shows the latest run with its progress and drift.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use byos_catalog::{Project, ReconcileRun, StoreError};
use byos_domain::{ConfigurationStatus, ErrorCode, Problem, ProjectFolder, ResourceName};
use byos_sync::SyncError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, now, required, rfc3339};
use crate::AppState;
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

const RESOURCE: &str = "Project";

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
            region: p.region.clone(),
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

/// One reconcile of a project: a listing of its folder merged with the catalog.
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
        }
    }
}

/// The project, if the caller may see it; members get "not found" for the others.
pub(crate) async fn visible_project(state: &AppState, principal: &Principal, id: Uuid) -> Result<Project, ApiError> {
    if !principal.is_admin() && !principal.projects.contains(&id) {
        return Err(Problem::not_found(RESOURCE, &id.to_string()).into());
    }
    state.store().projects.get_project(id).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))
}

pub(crate) fn sync_error(e: SyncError, id: Uuid) -> ApiError {
    match e {
        SyncError::NotFound => Problem::not_found(RESOURCE, &id.to_string()).into(),
        e => ApiError::internal(e),
    }
}

/// Checks the parameters, then the configuration: it exists, is ready, and is in the region.
async fn validate(state: &AppState, body: CreateProject) -> Result<Project, ApiError> {
    let invalid = |m: String| ApiError::from(Problem::invalid_request(&m));
    let name = ResourceName::parse(required("name", body.name.as_deref()).map_err(invalid)?)
        .map_err(|e| invalid(format!("name: {e}")))?;
    let region = required("region", body.region.as_deref()).map_err(invalid)?.to_owned();
    if state.regions().get(&region).is_none() {
        return Err(Problem::region_not_supported(&state.regions().aws_region_list()).into());
    }
    let folder = ProjectFolder::parse(required("folder", body.folder.as_deref()).map_err(invalid)?)
        .map_err(|e| invalid(format!("folder: {e}")))?;
    let configuration_text =
        required("storageConfigurationId", body.storage_configuration_id.as_deref()).map_err(invalid)?;
    let configuration_id = Uuid::parse_str(configuration_text.trim()).map_err(|_| {
        invalid(format!("storageConfigurationId: {configuration_text:?} is not a storage configuration id"))
    })?;
    let configuration = match state.store().configurations.get_configuration(configuration_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Err(invalid(format!(
                "storageConfigurationId: no storage configuration has the id {configuration_id}"
            )));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    if configuration.spec.region != region {
        return Err(Problem::bucket_wrong_region(&region).into());
    }
    if configuration.status != ConfigurationStatus::Ready {
        return Err(Problem::new(
            ErrorCode::ConfigurationNotReady,
            &[("name", configuration.spec.name.as_str()), ("status", configuration.status.as_str())],
        )
        .into());
    }
    let now = now();
    Ok(Project {
        id: Uuid::new_v4(),
        name,
        region,
        configuration_id,
        key_prefix: folder.key_prefix(configuration.spec.key_prefix.as_ref()),
        folder,
        bucket: configuration.spec.bucket,
        created_at: now,
        updated_at: now,
    })
}

/// List the projects the caller may see.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    responses((status = 200, body = Items<ProjectView>), (status = "4XX", body = ErrorBody)))]
async fn list_projects(principal: Principal, state: State<AppState>) -> ApiResult<Json<Items<ProjectView>>> {
    let projects = state.store().projects.list_projects().await.map_err(ApiError::internal)?;
    let items = projects
        .iter()
        .filter(|p| principal.is_admin() || principal.projects.contains(&p.id))
        .map(ProjectView::from)
        .collect();
    Ok(Json(Items { items }))
}

/// Create a project on a ready storage configuration of its region. Its folder may not lie
/// inside another project's, nor hold one. The initial import starts at once.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProject,
    responses((status = 201, body = CreatedProject), (status = "4XX", body = ErrorBody)))]
async fn create_project(
    _: Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<impl IntoResponse> {
    let project = validate(&state, body).await?;
    state
        .store()
        .projects
        .insert_project(&project)
        .await
        .map_err(|e| ApiError::from_store(e, RESOURCE, &project.id.to_string()))?;
    tracing::info!(project = %project.id, prefix = %project.key_prefix, "project created");
    let import = state.sync().project_created(&project).await.map_err(|e| sync_error(e, project.id))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedProject { project: ProjectView::from(&project), import: ReconcileView::from(&import) }),
    ))
}

/// Get a project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectView), (status = "4XX", body = ErrorBody)))]
async fn get_project(principal: Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<ProjectView>> {
    let project = visible_project(&state, &principal, id).await?;
    Ok(Json(ProjectView::from(&project)))
}

/// Delete a project and its catalog. The data stays in the bucket.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_project(_: Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.store().projects.delete_project(id).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    state.sync().refresh_routes().await.map_err(|e| sync_error(e, id))?;
    tracing::info!(project = %id, "project deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The project's latest reconcile: its progress while it runs, then the drift it found.
#[utoipa::path(get, path = "/api/v1/projects/{id}/reconcile", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReconcileView), (status = "4XX", body = ErrorBody)))]
async fn latest_reconcile(principal: Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<ReconcileView>> {
    let project = visible_project(&state, &principal, id).await?;
    let run = state.store().sync.latest_reconcile(project.id).await.map_err(ApiError::internal)?;
    let run = run.ok_or_else(|| Problem::not_found("Reconcile of project", &id.to_string()))?;
    Ok(Json(ReconcileView::from(&run)))
}

/// Reconcile the project now: list its folder and heal what events missed. Answers at once with
/// the run (or the one already running); `GET .../reconcile` follows it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/reconcile", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = ReconcileView), (status = "4XX", body = ErrorBody)))]
async fn start_reconcile(principal: Principal, state: State<AppState>, Id(id): Id) -> ApiResult<impl IntoResponse> {
    let project = visible_project(&state, &principal, id).await?;
    let run = match state.sync().request_reconcile(project.id, "requested").await {
        Ok(run) => run,
        // Another replica holds the project's reconcile lease: show its run.
        Err(SyncError::Busy) => state
            .store()
            .sync
            .latest_reconcile(project.id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| Problem::not_found("Reconcile of project", &id.to_string()))?,
        Err(e) => return Err(sync_error(e, id)),
    };
    Ok((StatusCode::ACCEPTED, Json(ReconcileView::from(&run))))
}
