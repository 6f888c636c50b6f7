//! `/api/v1/projects/{id}/data`: browsing a project's catalog. A `path` ending in `/` lists that
//! folder's direct children, files and folders, by name, a page at a time; any other path gives
//! that one entry. Paths are relative to the project and start with `/`. The rules, paging
//! among them, are `byos_service::Data`'s.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use byos_catalog::{Entry, EntryKind};
use byos_domain::objects::RestoreState;
use byos_service::{BrowseRequest, CredentialsRequest, Deleted, DownloadRequest, Moved, Read, ReadWrite};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::JobView;
use super::{Items, NoStore, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::InProject;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(browse, delete_data))
        .routes(routes!(create_folder))
        .routes(routes!(move_data))
        .routes(routes!(archive_restore))
        .routes(routes!(versions))
        .routes(routes!(restore_version))
        .routes(routes!(undelete))
        .routes(routes!(download_url))
        .routes(routes!(download_urls))
        .routes(routes!(temporary_credentials))
}

/// The one path a route acts on.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PathQuery {
    /// From the project's root: `/a/b/c.txt`.
    path: Option<String>,
}

/// A new folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FolderBody {
    /// The folder's path, ending in `/`.
    #[schema(example = "/runs/42/")]
    path: Option<String>,
}

/// A move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MoveBody {
    /// A file's path, or a folder's (ending in `/`).
    #[schema(example = "/runs/42/")]
    from: Option<String>,
    /// The file's new path (ending in `/`: into that folder, with its name), or the folder's new
    /// path: `/a/` to `/b/` puts `/a/x` at `/b/x`.
    #[schema(example = "/archive/run-42/")]
    to: Option<String>,
    /// Replace what exists at the destination (otherwise `file-exists`, or for a folder's
    /// files, skipped).
    overwrite: Option<bool>,
}

/// A restore of an archived file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ArchiveRestoreBody {
    /// The file's path.
    #[schema(example = "/runs/2019/sample.bam")]
    path: Option<String>,
    /// How long the restored copy stays readable: 1 to 365 days.
    #[schema(example = 7)]
    days: Option<u64>,
    /// `Standard` (the default; hours), `Bulk` (cheapest; up to two days) or `Expedited`
    /// (minutes; not for DEEP_ARCHIVE).
    #[schema(example = "Standard")]
    tier: Option<String>,
}

/// A version to make current again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RestoreVersionBody {
    /// The file's path.
    path: Option<String>,
    /// The version to make current, as `versions` lists it.
    version_id: Option<String>,
}

/// A deleted file to bring back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UndeleteBody {
    /// The file's path.
    path: Option<String>,
}

/// One version of a file, or a delete marker.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionView {
    version_id: String,
    /// 0 for a delete marker.
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    e_tag: Option<String>,
    last_modified: Option<String>,
    is_latest: bool,
    is_delete_marker: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
}

/// A file to download.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DownloadBody {
    /// The file's path in the project.
    #[schema(example = "/runs/42/sample.bam")]
    path: Option<String>,
    /// One version of the file (versioned buckets); the current one without it.
    version_id: Option<String>,
}

/// A URL that downloads the file straight from the bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DownloadView {
    /// A presigned GET; S3 answers it with the file, saved under its name.
    url: String,
    /// When S3 stops taking the URL (RFC 3339).
    expires_at: String,
    /// The file's size in bytes.
    size: u64,
}

/// Files to download.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DownloadsBody {
    /// 1 to 1000 paths of files in the project (their current versions).
    #[schema(example = json!(["/runs/42/a.csv", "/runs/42/b.csv"]))]
    paths: Option<Vec<String>>,
}

/// One file's URL, or why it has none.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DownloadItem {
    /// The path as it was asked for.
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// Why this file has no URL: a catalogue entry (a folder, nothing there).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BrowseQuery {
    /// `/` or `/a/b/` for a folder's children; `/a/b/c.txt` for one entry. Defaults to `/`.
    path: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `nextPageToken` of the previous page.
    page_token: Option<String>,
    /// Only the entries whose names start with this (no `/`); pages keep the same filter.
    prefix: Option<String>,
}

/// A file or a folder.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryView {
    /// The file's name, or the folder's (without `/`).
    name: String,
    /// From the project's root: `/a/b/c.txt`, `/a/b/` for a folder.
    path: String,
    /// `file` or `folder`.
    #[serde(rename = "type")]
    #[schema(example = "file")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// As S3 lists it; unknown until a listing has shown the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    /// On versioned buckets, the current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
    /// `archived`, `restoring` or `restored`, for objects in an archive storage class or being
    /// restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_expires_at: Option<String>,
    /// For folders: whether a folder marker object keeps it while it is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_marker: Option<bool>,
    /// For folders: how many direct children it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<u64>,
}

/// A page of a folder, or one entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    items: Vec<EntryView>,
    /// Pass as `pageToken` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

impl From<BrowseQuery> for BrowseRequest {
    fn from(query: BrowseQuery) -> BrowseRequest {
        BrowseRequest { path: query.path, limit: query.limit, page_token: query.page_token, prefix: query.prefix }
    }
}

impl From<&Entry> for EntryView {
    fn from(entry: &Entry) -> EntryView {
        let path = format!("/{}", entry.path());
        let name = entry.name.trim_end_matches('/').to_owned();
        match &entry.kind {
            EntryKind::File(file) => EntryView {
                name,
                path,
                kind: "file",
                size: Some(file.size),
                e_tag: Some(file.etag.clone()),
                last_modified: OffsetDateTime::from_unix_timestamp_nanos(i128::from(file.last_modified_ms) * 1_000_000)
                    .ok()
                    .map(rfc3339),
                storage_class: file.storage_class.clone(),
                version_id: file.version_id.clone(),
                archive_state: byos_service::archive_state(file).map(|s| s.as_str()),
                restore_expires_at: match &file.restore {
                    Some(RestoreState::Restored { expires }) => expires.clone(),
                    _ => None,
                },
                folder_marker: None,
                children: None,
            },
            EntryKind::Folder { marker, children } => EntryView {
                name,
                path,
                kind: "folder",
                size: None,
                e_tag: None,
                last_modified: None,
                storage_class: None,
                version_id: None,
                archive_state: None,
                restore_expires_at: None,
                folder_marker: Some(*marker),
                children: Some(*children),
            },
        }
    }
}

/// A URL that downloads a file (or one version of it) straight from the bucket, valid for
/// `data.url_expiry_seconds` (at most what the credential's session allows). The URL is a
/// bearer credential for that file: the answer is never cached.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/download-url", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path)), request_body = DownloadBody,
    responses((status = 200, body = DownloadView), (status = "4XX", body = ErrorBody)))]
async fn download_url(
    InProject(scope): InProject<Read>,
    state: State<AppState>,
    ApiJson(body): ApiJson<DownloadBody>,
) -> ApiResult<NoStore<Json<DownloadView>>> {
    let request = DownloadRequest { path: body.path, version_id: body.version_id };
    let download = state.services().transfers().download_url(&scope, request).await?;
    Ok(NoStore(Json(DownloadView { url: download.url, expires_at: rfc3339(download.expires_at), size: download.size })))
}

/// URLs for many files at once, in the order asked: each file's presigned GET, or the
/// catalogue entry that says why it has none. A client downloading a folder of small files
/// signs a page of them with one call. Never cached.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/download-urls", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path)), request_body = DownloadsBody,
    responses((status = 200, body = Items<DownloadItem>), (status = "4XX", body = ErrorBody)))]
async fn download_urls(
    InProject(scope): InProject<Read>,
    state: State<AppState>,
    ApiJson(body): ApiJson<DownloadsBody>,
) -> ApiResult<NoStore<Json<Items<DownloadItem>>>> {
    let signed = state.services().transfers().download_urls(&scope, body.paths.as_deref()).await?;
    let items = signed
        .into_iter()
        .map(|(path, signed)| match signed {
            Ok(download) => DownloadItem {
                path,
                url: Some(download.url),
                expires_at: Some(rfc3339(download.expires_at)),
                size: Some(download.size),
                error: None,
            },
            Err(problem) => {
                DownloadItem { path, url: None, expires_at: None, size: None, error: Some(ErrorBody::from(&problem)) }
            }
        })
        .collect();
    Ok(NoStore(Json(Items { items })))
}

/// Create a folder: a marker object that keeps it while it is empty, with the configuration's
/// encryption. The catalog shows it at once.
#[utoipa::path(post, path = "/api/v1/projects/{id}/folders", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = FolderBody,
    responses((status = 201, body = EntryView), (status = "4XX", body = ErrorBody)))]
async fn create_folder(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<FolderBody>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    let entry = state.services().changes().create_folder(&scope, body.path.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(EntryView::from(&entry))))
}

/// Move a file (200 with its new entry; the copy is verified before the source is deleted) or
/// a folder with everything in it (202 with the job that moves it). Metadata and content type go
/// with the copy; it is encrypted as the configuration asks.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/move", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = MoveBody,
    responses((status = 200, body = EntryView), (status = 202, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn move_data(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult<Response> {
    let moved = state
        .services()
        .changes()
        .move_path(&scope, body.from.as_deref(), body.to.as_deref(), body.overwrite.unwrap_or(false))
        .await?;
    let note = AuditNote::detail(serde_json::json!({"from": body.from, "to": body.to}));
    Ok(match moved {
        Moved::File(entry) => (Extension(note), Json(EntryView::from(entry.as_ref()))).into_response(),
        Moved::Folder(job) => {
            (StatusCode::ACCEPTED, Extension(note), Json(JobView::from(job.as_ref()))).into_response()
        }
    })
}

/// Restore an archived file (GLACIER, DEEP_ARCHIVE) for a number of days: 202 with its entry,
/// whose `archiveState` goes `restoring`, then `restored` (with `restoreExpiresAt`), as S3's
/// restore events come.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/archive-restore", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = ArchiveRestoreBody,
    responses((status = 202, body = EntryView), (status = "4XX", body = ErrorBody)))]
async fn archive_restore(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<ArchiveRestoreBody>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    let entry = state
        .services()
        .changes()
        .archive_restore(&scope, body.path.as_deref(), body.days, body.tier.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(EntryView::from(&entry))))
}

/// Delete a file (204; the catalog shows the change at once), or a folder with everything in it
/// (`path` ending with `/`: 202 with the job that deletes it, 1,000 objects a request). On a
/// versioned bucket the versions stay behind delete markers (see `versions`).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/data", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path), PathQuery),
    responses((status = 204), (status = 202, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn delete_data(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(ApiError::from)?;
    Ok(match state.services().changes().delete(&scope, query.path.as_deref()).await? {
        Deleted::File => StatusCode::NO_CONTENT.into_response(),
        Deleted::Folder(job) => (StatusCode::ACCEPTED, Json(JobView::from(job.as_ref()))).into_response(),
    })
}

/// A file's versions and delete markers, newest first, as S3 keeps them (versioned and
/// suspended buckets).
#[utoipa::path(get, path = "/api/v1/projects/{id}/data/versions", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path), PathQuery),
    responses((status = 200, body = Items<VersionView>), (status = "4XX", body = ErrorBody)))]
async fn versions(
    InProject(scope): InProject<Read>,
    state: State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> ApiResult<Json<Items<VersionView>>> {
    let Query(query) = query.map_err(ApiError::from)?;
    let versions = state.services().changes().versions(&scope, query.path.as_deref()).await?;
    let items = versions
        .into_iter()
        .map(|v| VersionView {
            version_id: v.version_id.unwrap_or_else(|| "null".to_owned()),
            size: v.size,
            e_tag: Some(v.etag).filter(|e| !e.is_empty() && !v.delete_marker),
            last_modified: OffsetDateTime::from_unix_timestamp_nanos(i128::from(v.last_modified_ms) * 1_000_000)
                .ok()
                .map(rfc3339),
            is_latest: v.is_latest,
            is_delete_marker: v.delete_marker,
            storage_class: v.storage_class,
        })
        .collect();
    Ok(Json(Items { items }))
}

/// Make an older version of a file current again: a copy of it onto the file (with the
/// configuration's encryption), so the history is kept. Answers the file's entry.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/restore-version", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = RestoreVersionBody,
    responses((status = 200, body = EntryView), (status = "4XX", body = ErrorBody)))]
async fn restore_version(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<RestoreVersionBody>,
) -> ApiResult<Json<EntryView>> {
    let changes = state.services().changes();
    let entry = changes.restore_version(&scope, body.path.as_deref(), body.version_id.as_deref()).await?;
    Ok(Json(EntryView::from(&entry)))
}

/// Bring a deleted file back: remove the delete marker that hides it. Answers the file's entry.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/undelete", tag = "projects",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = UndeleteBody,
    responses((status = 200, body = EntryView), (status = "4XX", body = ErrorBody)))]
async fn undelete(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<UndeleteBody>,
) -> ApiResult<Json<EntryView>> {
    let entry = state.services().changes().undelete(&scope, body.path.as_deref()).await?;
    Ok(Json(EntryView::from(&entry)))
}

/// Temporary credentials, as a client asks for them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CredentialsBody {
    /// `read` or `read-write` (which needs read-write access to the project).
    #[schema(example = "read")]
    access: Option<String>,
    /// 900 s up to 36 h for an `aws-user` credential, up to the role's maximum for `aws-role`;
    /// an hour by default.
    duration_seconds: Option<u64>,
    /// A folder below the project (`/a/b/`), which need not exist yet; the whole project
    /// without it.
    path: Option<String>,
}

/// AWS credentials for the project's prefix (or a folder below it), for any S3 tool.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CredentialsView {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// When the credentials stop working (RFC 3339).
    expires_at: String,
    /// `read` or `read-write`.
    access: &'static str,
    region: String,
    bucket: String,
    /// The key prefix the credentials reach.
    prefix: String,
    /// `s3://{bucket}/{prefix}`, for `aws s3 ls` and friends.
    s3_uri: String,
    /// The session policy that limits the credentials, as STS got it.
    #[schema(value_type = Object)]
    session_policy: serde_json::Value,
    /// Ready lines for a shell: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, and a comment with the S3 URI.
    env: Vec<String>,
}

/// Temporary AWS credentials limited to the project's prefix (or a folder below it), read or
/// read-write, for the AWS CLI, s5cmd or any S3 tool. The answer holds a secret: never cached.
#[utoipa::path(post, path = "/api/v1/projects/{id}/temporary-credentials", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path)), request_body = CredentialsBody,
    responses((status = 201, body = CredentialsView), (status = "4XX", body = ErrorBody)))]
async fn temporary_credentials(
    InProject(scope): InProject<Read>,
    state: State<AppState>,
    ApiJson(body): ApiJson<CredentialsBody>,
) -> ApiResult<impl IntoResponse> {
    let request = CredentialsRequest { access: body.access, duration_seconds: body.duration_seconds, path: body.path };
    let vended = state.services().transfers().temporary_credentials(&scope, request).await?;
    let credentials = &vended.credentials;
    let s3_uri = format!("s3://{}/{}", vended.bucket, vended.prefix);
    let env = vec![
        format!("export AWS_ACCESS_KEY_ID={}", credentials.access_key_id),
        format!("export AWS_SECRET_ACCESS_KEY={}", credentials.expose_secret_access_key()),
        format!("export AWS_SESSION_TOKEN={}", credentials.expose_session_token()),
        format!("export AWS_REGION={}", vended.region),
        format!("# aws s3 ls {s3_uri}"),
    ];
    let view = CredentialsView {
        access_key_id: credentials.access_key_id.clone(),
        secret_access_key: credentials.expose_secret_access_key().to_owned(),
        session_token: credentials.expose_session_token().to_owned(),
        expires_at: rfc3339(OffsetDateTime::from(credentials.expires_at)),
        access: vended.access.as_str(),
        region: vended.region.to_string(),
        bucket: vended.bucket.to_string(),
        prefix: vended.prefix.clone(),
        s3_uri,
        session_policy: vended.session_policy.clone(),
        env,
    };
    // Who holds which session, until when: the access key id matches AWS's CloudTrail.
    let note = AuditNote::detail(serde_json::json!({
        "access": view.access, "expiresAt": view.expires_at, "accessKeyId": view.access_key_id,
        "bucket": view.bucket, "prefix": view.prefix,
    }));
    Ok(NoStore((StatusCode::CREATED, Extension(note), Json(view))))
}

/// Browse a project's data: a folder's children (a path ending in `/`), or one entry.
#[utoipa::path(get, path = "/api/v1/projects/{id}/data", tag = "projects",
    security(("bearer" = ["project:read"])), params(("id" = Uuid, Path), BrowseQuery),
    responses((status = 200, body = Page), (status = "4XX", body = ErrorBody)))]
async fn browse(
    InProject(scope): InProject<Read>,
    state: State<AppState>,
    query: Result<Query<BrowseQuery>, QueryRejection>,
) -> ApiResult<Json<Page>> {
    let Query(query) = query.map_err(ApiError::from)?;
    let listing = state.services().data().browse(&scope, query.into()).await?;
    Ok(Json(Page {
        items: listing.entries.iter().map(EntryView::from).collect(),
        next_page_token: listing.next_page_token,
    }))
}
