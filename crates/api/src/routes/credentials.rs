//! `/api/v1/storage-credentials`: the keys and roles the platform reaches buckets with.
//!
//! Secrets (secret access keys, external ids) are sealed under the master key with the
//! credential's id as context, and never returned; access key ids are shown masked.

use axum::http::StatusCode;
use axum::{Json, response::IntoResponse};
use byos_catalog::{Credential, CredentialIdentity};
use byos_domain::{
    AccessKeyId, CredentialKind, ErrorCode, ExternalId, NameError, Problem, ResourceName, RoleArn, SecretAccessKey,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, now, required, rfc3339};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

const RESOURCE: &str = "Storage credential";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(get_credential, delete_credential))
        .routes(routes!(rotate_credential))
}

/// A storage credential as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CredentialView {
    id: Uuid,
    name: String,
    /// `aws-user` or `aws-role`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "aws-user")]
    kind: CredentialKind,
    /// The access key id, masked (`AKIA…WXYZ`); `aws-user` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    /// `aws-role` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Credential> for CredentialView {
    fn from(c: &Credential) -> CredentialView {
        let (kind, access_key_id, role_arn) = match &c.identity {
            CredentialIdentity::AwsUser { access_key_id } => {
                (CredentialKind::AwsUser, Some(access_key_id.masked()), None)
            }
            CredentialIdentity::AwsRole { role_arn } => (CredentialKind::AwsRole, None, Some(role_arn.to_string())),
        };
        CredentialView {
            id: c.id,
            name: c.name.to_string(),
            kind,
            access_key_id,
            role_arn,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A new storage credential: `aws-user` takes `accessKeyId` and `secretAccessKey`; `aws-role`
/// takes `roleArn` and `externalId`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateCredential {
    name: Option<String>,
    #[serde(rename = "type")]
    #[schema(example = "aws-user")]
    kind: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

/// New secret material for a credential, of the credential's own type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateCredential {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

/// The identity and the secret of a credential, validated.
enum Material {
    User { access_key_id: AccessKeyId, secret: SecretAccessKey },
    Role { role_arn: RoleArn, external_id: ExternalId },
}

impl Material {
    fn kind(&self) -> CredentialKind {
        match self {
            Material::User { .. } => CredentialKind::AwsUser,
            Material::Role { .. } => CredentialKind::AwsRole,
        }
    }
}

fn field<T>(name: &str, value: Option<&str>, parse: fn(&str) -> Result<T, NameError>) -> Result<T, String> {
    parse(required(name, value)?).map_err(|e| format!("{name}: {e}"))
}

/// Validates the fields of one kind, refusing those of the other.
fn material(
    kind: CredentialKind,
    access_key_id: Option<&str>,
    secret_access_key: Option<&str>,
    role_arn: Option<&str>,
    external_id: Option<&str>,
) -> Result<Material, String> {
    let refuse = |name: &str, present: bool| {
        if present { Err(format!("{name}: not a field of a {} credential", kind.as_str())) } else { Ok(()) }
    };
    match kind {
        CredentialKind::AwsUser => {
            refuse("roleArn", role_arn.is_some())?;
            refuse("externalId", external_id.is_some())?;
            Ok(Material::User {
                access_key_id: field("accessKeyId", access_key_id, AccessKeyId::parse)?,
                secret: field("secretAccessKey", secret_access_key, SecretAccessKey::parse)?,
            })
        }
        CredentialKind::AwsRole => {
            refuse("accessKeyId", access_key_id.is_some())?;
            refuse("secretAccessKey", secret_access_key.is_some())?;
            Ok(Material::Role {
                role_arn: field("roleArn", role_arn, RoleArn::parse)?,
                external_id: field("externalId", external_id, ExternalId::parse)?,
            })
        }
    }
}

/// Seals the secret for the credential `id` and returns the stored identity with it.
fn seal(state: &AppState, id: Uuid, material: Material) -> (CredentialIdentity, Vec<u8>) {
    let key = state.master_key();
    match material {
        Material::User { access_key_id, secret } => {
            (CredentialIdentity::AwsUser { access_key_id }, key.seal(secret.expose().as_bytes(), id.as_bytes()))
        }
        Material::Role { role_arn, external_id } => {
            (CredentialIdentity::AwsRole { role_arn }, key.seal(external_id.expose().as_bytes(), id.as_bytes()))
        }
    }
}

/// List storage credentials.
#[utoipa::path(get, path = "/api/v1/storage-credentials", tag = "storage-credentials",
    security(("bearer" = [])),
    responses((status = 200, body = Items<CredentialView>), (status = "4XX", body = ErrorBody)))]
async fn list_credentials(_: Admin, state: axum::extract::State<AppState>) -> ApiResult<Json<Items<CredentialView>>> {
    let credentials = state.store().credentials.list_credentials().await.map_err(ApiError::internal)?;
    Ok(Json(Items { items: credentials.iter().map(CredentialView::from).collect() }))
}

/// Create a storage credential.
#[utoipa::path(post, path = "/api/v1/storage-credentials", tag = "storage-credentials",
    security(("bearer" = [])), request_body = CreateCredential,
    responses((status = 201, body = CredentialView), (status = "4XX", body = ErrorBody)))]
async fn create_credential(
    _: Admin,
    state: axum::extract::State<AppState>,
    ApiJson(body): ApiJson<CreateCredential>,
) -> ApiResult<impl IntoResponse> {
    let invalid = |m: String| ApiError::from(Problem::invalid_request(&m));
    let name = field("name", body.name.as_deref(), ResourceName::parse).map_err(invalid)?;
    let kind_text = required("type", body.kind.as_deref()).map_err(invalid)?;
    let kind = CredentialKind::parse(kind_text)
        .ok_or_else(|| invalid(format!("type: {kind_text:?} is not aws-user or aws-role")))?;
    let material = material(
        kind,
        body.access_key_id.as_deref(),
        body.secret_access_key.as_deref(),
        body.role_arn.as_deref(),
        body.external_id.as_deref(),
    )
    .map_err(invalid)?;
    let id = Uuid::new_v4();
    let now = now();
    let (identity, sealed_secret) = seal(&state, id, material);
    let credential = Credential { id, name, identity, sealed_secret, created_at: now, updated_at: now };
    state
        .store()
        .credentials
        .insert_credential(&credential)
        .await
        .map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    tracing::info!(credential = %id, kind = kind.as_str(), "storage credential created");
    Ok((StatusCode::CREATED, Json(CredentialView::from(&credential))))
}

/// Get a storage credential.
#[utoipa::path(get, path = "/api/v1/storage-credentials/{id}", tag = "storage-credentials",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = CredentialView), (status = "4XX", body = ErrorBody)))]
async fn get_credential(
    _: Admin,
    state: axum::extract::State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<CredentialView>> {
    let credential = state
        .store()
        .credentials
        .get_credential(id)
        .await
        .map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    Ok(Json(CredentialView::from(&credential)))
}

/// Replace a credential's secret (and for `aws-user` its key id): configurations that use it
/// switch to the new secret at once.
#[utoipa::path(post, path = "/api/v1/storage-credentials/{id}/rotate", tag = "storage-credentials",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RotateCredential,
    responses((status = 200, body = CredentialView), (status = "4XX", body = ErrorBody)))]
async fn rotate_credential(
    _: Admin,
    state: axum::extract::State<AppState>,
    Id(id): Id,
    ApiJson(body): ApiJson<RotateCredential>,
) -> ApiResult<Json<CredentialView>> {
    let store = &state.store().credentials;
    let mut credential =
        store.get_credential(id).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    let kind = match credential.identity {
        CredentialIdentity::AwsUser { .. } => CredentialKind::AwsUser,
        CredentialIdentity::AwsRole { .. } => CredentialKind::AwsRole,
    };
    // For a role, the ARN may stay as it is: only the external id is secret.
    let role_arn = match (&credential.identity, body.role_arn.as_deref()) {
        (CredentialIdentity::AwsRole { role_arn }, None) => Some(role_arn.to_string()),
        (_, given) => given.map(str::to_owned),
    };
    let requested = if body.access_key_id.is_some() || body.secret_access_key.is_some() {
        CredentialKind::AwsUser
    } else if body.external_id.is_some() || body.role_arn.is_some() {
        CredentialKind::AwsRole
    } else {
        kind
    };
    if requested != kind {
        return Err(Problem::new(
            ErrorCode::CredentialKindMismatch,
            &[("name", credential.name.as_str()), ("actual", kind.as_str()), ("requested", requested.as_str())],
        )
        .into());
    }
    let material = material(
        kind,
        body.access_key_id.as_deref(),
        body.secret_access_key.as_deref(),
        role_arn.as_deref(),
        body.external_id.as_deref(),
    )
    .map_err(|m| ApiError::from(Problem::invalid_request(&m)))?;
    debug_assert_eq!(material.kind(), kind);
    let (identity, sealed_secret) = seal(&state, id, material);
    credential.identity = identity;
    credential.sealed_secret = sealed_secret;
    credential.updated_at = now();
    store.rotate_credential(&credential).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    tracing::info!(credential = %id, "storage credential rotated");
    Ok(Json(CredentialView::from(&credential)))
}

/// Delete a storage credential that no configuration uses.
#[utoipa::path(delete, path = "/api/v1/storage-credentials/{id}", tag = "storage-credentials",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_credential(_: Admin, state: axum::extract::State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state
        .store()
        .credentials
        .delete_credential(id)
        .await
        .map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    tracing::info!(credential = %id, "storage credential deleted");
    Ok(StatusCode::NO_CONTENT)
}
