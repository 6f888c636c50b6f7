//! `/api/v1/storage-configurations`: a bucket (and key prefix) in a region, reached with a
//! storage credential.
//!
//! Creating one checks every parameter and answers with the catalogue's exact messages; the
//! configuration is stored as `initializing` for the provisioning worker to validate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use byos_catalog::{Configuration, ConfigurationSpec, StoreError};
use byos_domain::{
    BucketName, CheckResult, ConfigurationStatus, ErrorCode, KeyPrefix, KmsKeyArn, Problem, ResourceName,
    ServerSideEncryption, SseAlgorithm, VersioningState,
};
use byos_lifecycle::LifecycleError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, now, rfc3339};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

const RESOURCE: &str = "Storage configuration";

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
            region: spec.region.clone(),
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

/// Checks a request's parameters in the order that gives the catalogue's most specific message
/// first: credential, bucket, region, then everything else.
fn validate(state: &AppState, body: CreateConfiguration) -> Result<ConfigurationSpec, Problem> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !present(&body.credential_id) {
        return Err(ErrorCode::MissingCredentials.into());
    }
    if !present(&body.bucket) {
        return Err(ErrorCode::MissingBucketName.into());
    }
    let bucket = BucketName::parse(body.bucket.as_deref().unwrap_or_default())
        .map_err(|_| Problem::from(ErrorCode::InvalidBucketName))?;
    let invalid = |m: String| Problem::invalid_parameters(&m);
    let region = match body.region.as_deref() {
        Some(r) if !r.trim().is_empty() => r,
        _ => {
            return Err(invalid("region: required; one of the AWS region ids of GET /api/v1/regions".to_owned()));
        }
    };
    if state.regions().get(region).is_none() {
        return Err(Problem::region_not_supported(&state.regions().aws_region_list()));
    }
    let name = body.name.as_deref().ok_or_else(|| invalid("name: required, 3 to 63 characters".to_owned()))?;
    let name = ResourceName::parse(name).map_err(|e| invalid(format!("name: {e}")))?;
    let key_prefix =
        body.key_prefix.as_deref().map(KeyPrefix::parse).transpose().map_err(|e| invalid(format!("keyPrefix: {e}")))?;
    let credential_text = body.credential_id.as_deref().unwrap_or_default();
    let credential_id = Uuid::parse_str(credential_text.trim())
        .map_err(|_| invalid(format!("credentialId: {credential_text:?} is not a storage credential id")))?;
    let server_side_encryption = match body.server_side_encryption {
        None => None,
        Some(sse) => Some(encryption(region, sse).map_err(invalid)?),
    };
    Ok(ConfigurationSpec {
        name,
        region: region.to_owned(),
        bucket,
        key_prefix,
        credential_id,
        server_side_encryption,
        default_for_region: body.default_for_region.unwrap_or(false),
    })
}

fn encryption(region: &str, sse: SseBody) -> Result<ServerSideEncryption, String> {
    let algorithm = sse.algorithm.as_deref().unwrap_or_default();
    match (SseAlgorithm::parse(algorithm), sse.key_name.as_deref()) {
        (None, _) => Err(format!("serverSideEncryption.algorithm: {algorithm:?} is not AES256 or aws:kms")),
        (Some(SseAlgorithm::Aes256), None) => Ok(ServerSideEncryption::Aes256),
        (Some(SseAlgorithm::Aes256), Some(_)) => {
            Err("serverSideEncryption.keyName: only aws:kms takes a key; leave it out for AES256".to_owned())
        }
        (Some(SseAlgorithm::AwsKms), None) => {
            Err("serverSideEncryption.keyName: required for aws:kms, the KMS key's ARN".to_owned())
        }
        (Some(SseAlgorithm::AwsKms), Some(key)) => {
            let key = KmsKeyArn::parse(key).map_err(|e| format!("serverSideEncryption.keyName: {e}"))?;
            if key.region() != region {
                return Err(format!(
                    "serverSideEncryption.keyName: the KMS key is in {} but the configuration is in {region}; \
                     the key must be in the bucket's region",
                    key.region()
                ));
            }
            Ok(ServerSideEncryption::Kms(key))
        }
    }
}

/// List storage configurations.
#[utoipa::path(get, path = "/api/v1/storage-configurations", tag = "storage-configurations",
    security(("bearer" = [])),
    responses((status = 200, body = Items<ConfigurationView>), (status = "4XX", body = ErrorBody)))]
async fn list_configurations(_: Admin, state: State<AppState>) -> ApiResult<Json<Items<ConfigurationView>>> {
    let configurations = state.store().configurations.list_configurations().await.map_err(ApiError::internal)?;
    Ok(Json(Items { items: configurations.iter().map(ConfigurationView::from).collect() }))
}

/// Create a storage configuration. It starts `initializing`; validation and provisioning
/// follow in the background.
#[utoipa::path(post, path = "/api/v1/storage-configurations", tag = "storage-configurations",
    security(("bearer" = [])), request_body = CreateConfiguration,
    responses((status = 201, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn create_configuration(
    _: Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateConfiguration>,
) -> ApiResult<impl IntoResponse> {
    let spec = validate(&state, body)?;
    let now = now();
    let configuration = Configuration::new(Uuid::new_v4(), spec, now);
    match state.store().configurations.insert_configuration(&configuration).await {
        Ok(()) => {}
        // The store answers NotFound when the credential does not exist.
        Err(StoreError::NotFound) => {
            return Err(Problem::invalid_parameters(&format!(
                "credentialId: no storage credential has the id {}",
                configuration.spec.credential_id
            ))
            .into());
        }
        Err(e) => {
            return Err(ApiError::from_store(e, RESOURCE, &configuration.id.to_string()));
        }
    }
    tracing::info!(configuration = %configuration.id, bucket = %configuration.spec.bucket, "storage configuration created");
    state.lifecycle().wake();
    Ok((StatusCode::CREATED, Json(ConfigurationView::from(&configuration))))
}

/// Get a storage configuration, with its status and validation report.
#[utoipa::path(get, path = "/api/v1/storage-configurations/{id}", tag = "storage-configurations",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn get_configuration(_: Admin, state: State<AppState>, Id(id): Id) -> ApiResult<Json<ConfigurationView>> {
    let configuration = state
        .store()
        .configurations
        .get_configuration(id)
        .await
        .map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    Ok(Json(ConfigurationView::from(&configuration)))
}

fn lifecycle_error(e: LifecycleError, id: Uuid) -> ApiError {
    match e {
        LifecycleError::NotFound => Problem::not_found(RESOURCE, &id.to_string()).into(),
        LifecycleError::Busy => Problem::new(ErrorCode::ValidationRunning, &[("id", &id.to_string())]).into(),
        LifecycleError::Store(e @ StoreError::Conflict(_)) => ApiError::from_store(e, RESOURCE, &id.to_string()),
        e => ApiError::internal(e),
    }
}

/// Validate a storage configuration now: run every check, provision the bucket's
/// notifications, and record the report. Synchronous: the answer is the configuration with the
/// new report (a few seconds against AWS). The background worker does the same periodically.
#[utoipa::path(post, path = "/api/v1/storage-configurations/{id}/validate", tag = "storage-configurations",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ConfigurationView), (status = "4XX", body = ErrorBody)))]
async fn validate_configuration(_: Admin, state: State<AppState>, Id(id): Id) -> ApiResult<Json<ConfigurationView>> {
    let configuration = state.lifecycle().validate_now(id).await.map_err(|e| lifecycle_error(e, id))?;
    Ok(Json(ConfigurationView::from(&configuration)))
}

/// Delete a storage configuration, and the platform's notification rules on its bucket.
#[utoipa::path(delete, path = "/api/v1/storage-configurations/{id}", tag = "storage-configurations",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_configuration(_: Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.lifecycle().delete(id).await.map_err(|e| lifecycle_error(e, id))?;
    tracing::info!(configuration = %id, "storage configuration deleted");
    Ok(StatusCode::NO_CONTENT)
}
