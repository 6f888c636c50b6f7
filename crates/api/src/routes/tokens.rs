//! `/api/v1/tokens`: API tokens. A token's value is shown once, in the answer that creates it
//! (never cached: `Cache-Control: no-store`); the store keeps only its hash. A token may expire.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use byos_catalog::{ProjectGrant, Token};
use byos_domain::{ProjectAccess, Role};
use byos_service::{GrantRequest, TokenRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, NoStore, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tokens, create_token)).routes(routes!(get_token, delete_token))
}

/// An API token, without its value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenView {
    id: Uuid,
    name: String,
    /// `admin` or `member`.
    #[schema(value_type = String, example = "member")]
    role: Role,
    /// The projects a member token reaches, each with its access.
    projects: Vec<GrantView>,
    /// The token's first characters, to tell tokens apart.
    hint: String,
    created_at: String,
    last_used_at: Option<String>,
    /// When the token stops working (RFC 3339); `null` for a token that does not expire.
    expires_at: Option<String>,
}

impl From<&Token> for TokenView {
    fn from(t: &Token) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name.as_str().to_owned(),
            role: t.role,
            projects: t.projects.iter().map(GrantView::from).collect(),
            hint: t.hint.clone(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
        }
    }
}

/// A project a member token reaches, and what it may do there.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GrantView {
    id: Uuid,
    /// `read` (browse, download, versions, read credentials) or `read-write` (everything).
    #[schema(value_type = String, example = "read")]
    access: ProjectAccess,
}

impl From<&ProjectGrant> for GrantView {
    fn from(grant: &ProjectGrant) -> GrantView {
        GrantView { id: grant.id, access: grant.access }
    }
}

/// A project of a new member token: its id (`read-write`), or its id and access.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged, expecting = "a project id, or {\"id\": a project id, \"access\": \"read\" or \"read-write\"}")]
pub(crate) enum GrantInput {
    Id(String),
    Grant(GrantBody),
}

/// A project id and the access to it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantBody {
    id: String,
    /// `read` or `read-write`.
    #[schema(example = "read")]
    access: String,
}

impl From<GrantInput> for GrantRequest {
    fn from(input: GrantInput) -> GrantRequest {
        match input {
            GrantInput::Id(id) => GrantRequest::Id(id),
            GrantInput::Grant(GrantBody { id, access }) => GrantRequest::Grant { id, access },
        }
    }
}

/// A new token, with its value: the only time the value is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    token: TokenView,
    /// The bearer token. Store it now: it cannot be shown again.
    value: String,
}

/// A new token: `admin`, or `member` of the listed projects.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: Option<String>,
    #[schema(example = "member")]
    role: Option<String>,
    /// For a member: its projects, each an id (`read-write`) or `{"id", "access"}` with
    /// `access` `read` or `read-write`.
    projects: Option<Vec<GrantInput>>,
    /// When the token stops working: an RFC 3339 time in the future. Without it, the token
    /// works until it is deleted.
    #[schema(example = "2030-01-31T12:00:00Z", format = DateTime)]
    expires_at: Option<String>,
}

impl From<CreateToken> for TokenRequest {
    fn from(body: CreateToken) -> TokenRequest {
        TokenRequest {
            name: body.name,
            role: body.role,
            projects: body.projects.map(|grants| grants.into_iter().map(GrantRequest::from).collect()),
            expires_at: body.expires_at,
        }
    }
}

/// List API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = ["admin"])),
    responses((status = 200, body = Items<TokenView>), (status = "4XX", body = ErrorBody)))]
async fn list_tokens(Admin(caller): Admin, state: State<AppState>) -> ApiResult<Json<Items<TokenView>>> {
    let tokens = state.services().tokens().list(&caller).await?;
    Ok(Json(Items { items: tokens.iter().map(TokenView::from).collect() }))
}

/// Create an API token. The answer holds its value, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = ["admin"])),
    request_body = CreateToken,
    responses(
        (status = 201, body = CreatedToken,
            headers(("Cache-Control" = String, description = "`no-store`: the body holds the token's value"))),
        (status = "4XX", body = ErrorBody)))]
async fn create_token(
    Admin(caller): Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<impl IntoResponse> {
    let created = state.services().tokens().create(&caller, body.into()).await?;
    let token = TokenView::from(&created.token);
    let note = AuditNote {
        target: Some(format!("/api/v1/tokens/{}", token.id)),
        detail: Some(serde_json::json!({
            "name": token.name, "role": token.role, "projects": token.projects, "expiresAt": token.expires_at,
        })),
        actor: None,
    };
    let body = CreatedToken { token, value: created.value.expose().to_owned() };
    Ok(NoStore((StatusCode::CREATED, Extension(note), Json(body))))
}

/// Get an API token (without its value).
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TokenView), (status = "4XX", body = ErrorBody)))]
async fn get_token(Admin(caller): Admin, state: State<AppState>, Id(id): Id) -> ApiResult<Json<TokenView>> {
    let token = state.services().tokens().get(&caller, id).await?;
    Ok(Json(TokenView::from(&token)))
}

/// Delete an API token; it stops working at once. The last admin token that does not expire
/// cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_token(Admin(caller): Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.services().tokens().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
