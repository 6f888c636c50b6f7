//! `/api/v1/storage-configurations`: a bucket (and key prefix) in a region, reached with a
//! storage credential (the rules are `byos_service::Configurations`').
//!
//! A configuration is shown with its health: status, versioning, the named checks of its last
//! validation and, while it is in error, the catalogue entry of the failure.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use byos_catalog::Configuration;
use byos_domain::{Check, CheckResult, ConfigurationStatus, VersioningState};
use byos_service::{ConfigurationRequest, EncryptionRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_configurations, create_configuration))
        .routes(routes!(get_configuration, delete_configuration))
        .routes(routes!(validate_configuration))
}

/// Server-side encryption: `AES256` (SSE-S3) or `aws:kms` with the KMS key's ARN in `keyName`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SseBody {
    #[schema(example = "aws:kms")]
    algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_name: Option<String>,
}

/// A new storage configuration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateConfiguration {
    /// 3 to 63 characters.
    name: Option<String>,
    /// The AWS region id, one of `GET /api/v1/regions`.
    #[schema(example = "eu-central-1")]
    region: Option<String>,
    bucket: Option<String>,
    /// Ends with `/`; leave it out for the whole bucket (not recommended: the bucket is then
    /// not available to other configurations).
    key_prefix: Option<String>,
    credential_id: Option<String>,
    server_side_encryption: Option<SseBody>,
    /// At most one configuration is the default of a region.
    default_for_region: Option<bool>,
}

/// One check of a validation report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckView {
    #[schema(example = "bucket-exists")]
    name: String,
    /// `passed`, `failed` or `skipped`.
    #[schema(value_type = String, example = "passed")]
    result: CheckResult,
    detail: String,
    /// For a failed check: what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'static str>,
}

/// The named checks of the last validation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidationView {
    checked_at: String,
    checks: Vec<CheckView>,
}

/// A storage configuration and its health.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigurationView {
    id: Uuid,
    name: String,
    region: String,
    bucket: String,
    key_prefix: Option<String>,
    credential_id: Uuid,
    server_side_encryption: Option<SseBody>,
    default_for_region: bool,
    /// `initializing`, `ready` or `error`.
    #[schema(value_type = String, example = "initializing")]
    status: ConfigurationStatus,
    /// `unversioned`, `enabled` or `suspended`, once validated.
    #[schema(value_type = Option<String>)]
    versioning: Option<VersioningState>,
    validation: Option<ValidationView>,
    /// The catalogue entry of the last failure, while the status is `error`.
    error: Option<ErrorBody>,
    last_verified_at: Option<String>,
    last_used_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Configuration> for ConfigurationView {
    fn from(c: &Configuration) -> ConfigurationView {
        let spec = &c.spec;
        ConfigurationView {
            id: c.id,
            name: spec.name.to_string(),
            region: spec.region.to_string(),
            bucket: spec.bucket.to_string(),
            key_prefix: spec.key_prefix.as_ref().map(ToString::to_string),
            credential_id: spec.credential_id,
            server_side_encryption: spec.server_side_encryption.as_ref().map(|sse| SseBody {
                algorithm: Some(sse.algorithm().as_str().to_owned()),
                key_name: sse.kms_key().map(ToString::to_string),
            }),
            default_for_region: spec.default_for_region,
            status: c.status,
            versioning: c.versioning,
            validation: c.validation.as_ref().map(|report| ValidationView {
                checked_at: report.checked_at.clone(),
                checks: report
                    .checks
                    .iter()
                    .map(|check| CheckView {
                        name: check.name.clone(),
                        result: check.result,
                        detail: check.detail.clone(),
                        fix: (check.result == CheckResult::Failed)
                            .then(|| Check::from_name(&check.name).map(Check::fix))
                            .flatten(),
                    })
                    .collect(),
            }),
            error: c.error.as_ref().map(|p| ErrorBody {
                error_type: p.entry().error_type,
                code: p.entry().code,
                message: p.message().to_owned(),
                fix: p.entry().fix,
            }),
            last_verified_at: c.last_verified_at.map(rfc3339),
            last_used_at: c.last_used_at.map(rfc3339),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

impl From<CreateConfiguration> for ConfigurationRequest {
    fn from(body: CreateConfiguration) -> ConfigurationRequest {
        ConfigurationRequest {
            name: body.name,
            region: body.region,
            bucket: body.bucket,
            key_prefix: body.key_prefix,
            credential_id: body.credential_id,
            server_side_encryption: body
                .server_side_encryption
                .map(|sse| EncryptionRequest { algorithm: sse.algorithm, key_name: sse.key_name }),
            default_for_region: body.default_for_region,
        }
    }
}

/// List storage configurations.
#[utoipa::path(get, path = "/api/v1/storage-configurations", tag = "storage-configurations",
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Items<ConfigurationView>), (status = "4XX", body = ErrorBody)))]
async fn list_configurations(
    Admin(caller): Admin,
    state: State<AppState>,
) -> ApiResult<Json<Items<ConfigurationView>>> {
    let configurations = state.services().configurations().list(&caller).await?;
    Ok(Json(Items { items: configurations.iter().map(ConfigurationView::from).collect() }))
}

/// Create a storage configuration. It starts `initializing`; validation and provisioning
/// follow in the background.
#[utoipa::path(post, path = "/api/v1/storage-configurations", tag = "storage-configurations",
    security(("bearer" = ["admin"])), request_body = CreateConfiguration,
    responses((status = 201, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn create_configuration(
    Admin(caller): Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateConfiguration>,
) -> ApiResult<impl IntoResponse> {
    let configuration = state.services().configurations().create(&caller, body.into()).await?;
    let note = AuditNote::target(format!("/api/v1/storage-configurations/{}", configuration.id));
    Ok((StatusCode::CREATED, Extension(note), Json(ConfigurationView::from(&configuration))))
}

/// Get a storage configuration, with its status and validation report.
#[utoipa::path(get, path = "/api/v1/storage-configurations/{id}", tag = "storage-configurations",
    security(("bearer" = ["admin"])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn get_configuration(
    Admin(caller): Admin,
    state: State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<ConfigurationView>> {
    let configuration = state.services().configurations().get(&caller, id).await?;
    Ok(Json(ConfigurationView::from(&configuration)))
}

/// Validate a storage configuration now: run every check, provision the bucket's
/// notifications, and record the report. Synchronous: the answer is the configuration with the
/// new report (a few seconds against AWS). The background worker does the same periodically.
#[utoipa::path(post, path = "/api/v1/storage-configurations/{id}/validate", tag = "storage-configurations",
    security(("bearer" = ["admin"])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn validate_configuration(
    Admin(caller): Admin,
    state: State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<ConfigurationView>> {
    let configuration = state.services().configurations().validate(&caller, id).await?;
    Ok(Json(ConfigurationView::from(&configuration)))
}

/// Delete a storage configuration, and the platform's notification rules on its bucket.
#[utoipa::path(delete, path = "/api/v1/storage-configurations/{id}", tag = "storage-configurations",
    security(("bearer" = ["admin"])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_configuration(Admin(caller): Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.services().configurations().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
