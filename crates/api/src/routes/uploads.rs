//! `/api/v1/projects/{id}/uploads`: uploads straight to the bucket, shaped for Uppy's
//! `@uppy/aws-s3` callbacks (`createMultipartUpload`, `signPart`, `listParts`,
//! `completeMultipartUpload`, `abortMultipartUpload`) and for resuming after a reload. The
//! rules are `byos_service::Uploads`'.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use byos_catalog::Upload;
use byos_service::{Presigned, ReadWrite, UploadRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::data::EntryView;
use super::{Items, NoStore, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::InProject;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_uploads, create_upload))
        .routes(routes!(get_upload, abort_upload))
        .routes(routes!(sign_parts))
        .routes(routes!(complete_upload))
}

/// A new upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateUpload {
    /// The file's path in the project.
    #[schema(example = "/runs/42/sample.bam")]
    path: Option<String>,
    /// The file's size in bytes.
    size: Option<u64>,
    /// Stored with the object, and sent by the client with a single PUT.
    #[schema(example = "application/octet-stream")]
    content_type: Option<String>,
    /// Replace a file that exists at `path` (otherwise a conflict).
    overwrite: Option<bool>,
    /// The client's part size, 5 MiB to 5 GiB: a larger file goes in parts of this size, a
    /// smaller one in one PUT. Without it, the server's threshold and part size decide.
    part_size: Option<u64>,
}

/// An upload in progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadView {
    id: Uuid,
    /// The file's path in the project.
    path: String,
    /// `single` (one presigned PUT) or `multipart`.
    #[schema(example = "multipart")]
    kind: &'static str,
    size: u64,
    part_size: u64,
    part_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    created_at: String,
    /// When the server aborts the upload if nobody completed it.
    expires_at: String,
    /// A single upload's presigned PUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The headers to send with the PUT, as they were signed (encryption, content type).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// With `GET .../uploads/{uploadId}`: the parts S3 already holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<Vec<PartView>>,
}

impl UploadView {
    fn new(upload: &Upload, put: Option<&Presigned>) -> UploadView {
        UploadView {
            id: upload.id,
            path: format!("/{}", upload.path),
            kind: if upload.multipart_id.is_some() { "multipart" } else { "single" },
            size: upload.size,
            part_size: upload.part_size,
            part_count: upload.part_count,
            content_type: upload.content_type.clone(),
            created_at: rfc3339(upload.created_at),
            expires_at: rfc3339(upload.expires_at),
            url: put.map(|p| p.url.clone()),
            headers: put.map(headers),
            parts: None,
        }
    }
}

fn headers(presigned: &Presigned) -> serde_json::Map<String, serde_json::Value> {
    presigned.headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect()
}

/// A part S3 holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartView {
    part_number: u32,
    size: u64,
    e_tag: String,
}

/// Parts to sign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SignParts {
    /// 1 to 1,000 part numbers, each 1 to the upload's `partCount`.
    part_numbers: Option<Vec<u32>>,
}

/// A signed part.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedPart {
    part_number: u32,
    /// A presigned PUT of the part.
    url: String,
    #[schema(value_type = Object)]
    headers: serde_json::Map<String, serde_json::Value>,
}

/// Signed parts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignedParts {
    parts: Vec<SignedPart>,
}

/// The parts of a completed multipart upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CompleteUpload {
    /// Each uploaded part's number and the ETag its PUT answered, in order; none for a single
    /// upload.
    #[serde(default)]
    parts: Vec<CompletedPart>,
}

/// An uploaded part.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CompletedPart {
    part_number: u32,
    e_tag: String,
}

/// The upload id of the path.
fn upload_id(path: Result<Path<(String, String)>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path((_, raw)) = path?;
    Uuid::parse_str(&raw)
        .map_err(|_| byos_domain::Problem::invalid_request(&format!("path: {raw:?} is not an upload id")).into())
}

/// Start an upload. Below `data.multipart_threshold_bytes` (or up to the client's `partSize`)
/// one presigned PUT (`url`, with the `headers` to send); otherwise an S3 multipart upload with
/// `partCount` parts of `partSize`, whose parts `POST .../parts` signs.
#[utoipa::path(post, path = "/api/v1/projects/{id}/uploads", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)), request_body = CreateUpload,
    responses((status = 201, body = UploadView), (status = "4XX", body = ErrorBody)))]
async fn create_upload(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateUpload>,
) -> ApiResult<impl IntoResponse> {
    let request = UploadRequest {
        path: body.path,
        size: body.size,
        content_type: body.content_type,
        overwrite: body.overwrite,
        part_size: body.part_size,
    };
    let started = state.services().uploads().create(&scope, request).await?;
    let upload = &started.upload;
    let note = AuditNote {
        target: Some(format!("/api/v1/projects/{}/uploads/{}", upload.project_id, upload.id)),
        detail: Some(serde_json::json!({"path": format!("/{}", upload.path), "size": upload.size})),
        actor: None,
    };
    Ok(NoStore((StatusCode::CREATED, Extension(note), Json(UploadView::new(upload, started.put.as_ref())))))
}

/// The project's open uploads, oldest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/uploads", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Items<UploadView>), (status = "4XX", body = ErrorBody)))]
async fn list_uploads(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
) -> ApiResult<Json<Items<UploadView>>> {
    let uploads = state.services().uploads().list(&scope).await?;
    Ok(Json(Items { items: uploads.iter().map(|u| UploadView::new(u, None)).collect() }))
}

/// An upload with the parts S3 already holds, to resume it after a reload (Uppy's `listParts`).
#[utoipa::path(get, path = "/api/v1/projects/{id}/uploads/{uploadId}", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path), ("uploadId" = Uuid, Path)),
    responses((status = 200, body = UploadView), (status = "4XX", body = ErrorBody)))]
async fn get_upload(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<UploadView>> {
    let got = state.services().uploads().get(&scope, upload_id(path)?).await?;
    let mut view = UploadView::new(&got.upload, None);
    view.parts = Some(
        got.parts
            .iter()
            .map(|p| PartView { part_number: p.part_number, size: p.size, e_tag: p.e_tag.clone() })
            .collect(),
    );
    Ok(Json(view))
}

/// Presigned PUTs of parts, many at once (Uppy's `signPart`), and again when a URL expired.
#[utoipa::path(post, path = "/api/v1/projects/{id}/uploads/{uploadId}/parts", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path), ("uploadId" = Uuid, Path)),
    request_body = SignParts,
    responses((status = 200, body = SignedParts), (status = "4XX", body = ErrorBody)))]
async fn sign_parts(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(body): ApiJson<SignParts>,
) -> ApiResult<NoStore<Json<SignedParts>>> {
    let numbers = body.part_numbers.unwrap_or_default();
    let signed = state.services().uploads().sign_parts(&scope, upload_id(path)?, &numbers).await?;
    let parts = signed
        .iter()
        .map(|(number, presigned)| SignedPart {
            part_number: *number,
            url: presigned.url.clone(),
            headers: headers(presigned),
        })
        .collect();
    Ok(NoStore(Json(SignedParts { parts })))
}

/// Complete an upload (Uppy's `completeMultipartUpload`): the file's entry, as browse shows it
/// at once.
#[utoipa::path(post, path = "/api/v1/projects/{id}/uploads/{uploadId}/complete", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path), ("uploadId" = Uuid, Path)),
    request_body = CompleteUpload,
    responses((status = 200, body = EntryView), (status = "4XX", body = ErrorBody)))]
async fn complete_upload(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(body): ApiJson<CompleteUpload>,
) -> ApiResult<Json<EntryView>> {
    let parts: Vec<(u32, String)> = body.parts.into_iter().map(|p| (p.part_number, p.e_tag)).collect();
    let entry = state.services().uploads().complete(&scope, upload_id(path)?, &parts).await?;
    Ok(Json(EntryView::from(&entry)))
}

/// Abort an upload (Uppy's `abortMultipartUpload`): S3 drops its parts.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/uploads/{uploadId}", tag = "uploads",
    security(("bearer" = ["project:read-write"])), params(("id" = Uuid, Path), ("uploadId" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn abort_upload(
    InProject(scope): InProject<ReadWrite>,
    state: State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    state.services().uploads().abort(&scope, upload_id(path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
