//! `/api/v1/tokens`: API tokens. A token's value is shown once, in the answer that creates it
//! (never cached: `Cache-Control: no-store`); the store keeps only its hash. A token may expire.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use byos_catalog::{NewToken, Token};
use byos_domain::{Problem, Role, TokenName};
use byos_secrets::ApiToken;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, NoStore, now, required, rfc3339};
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

const RESOURCE: &str = "Token";

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
    /// The projects a member token reaches.
    projects: Vec<Uuid>,
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
            projects: t.projects.clone(),
            hint: t.hint.clone(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
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
    projects: Option<Vec<String>>,
    /// When the token stops working: an RFC 3339 time in the future. Without it, the token
    /// works until it is deleted.
    #[schema(example = "2030-01-31T12:00:00Z", format = DateTime)]
    expires_at: Option<String>,
}

/// What a valid request asks for.
struct NewTokenRequest {
    name: TokenName,
    role: Role,
    projects: Vec<Uuid>,
    expires_at: Option<OffsetDateTime>,
}

fn validate(body: CreateToken, now: OffsetDateTime) -> Result<NewTokenRequest, String> {
    let name = required("name", body.name.as_deref())?;
    let name = TokenName::parse(name).map_err(|e| format!("name: {e}"))?;
    let role_text = required("role", body.role.as_deref())?;
    let role = Role::parse(role_text).ok_or_else(|| format!("role: {role_text:?} is not admin or member"))?;
    let projects = body
        .projects
        .unwrap_or_default()
        .iter()
        .map(|p| Uuid::parse_str(p).map_err(|_| format!("projects: {p:?} is not a project id")))
        .collect::<Result<Vec<_>, _>>()?;
    if role == Role::Admin && !projects.is_empty() {
        return Err("projects: an admin token reaches every project; list projects for member tokens only".to_owned());
    }
    let expires_at = body.expires_at.as_deref().map(|t| expiry(t, now)).transpose()?;
    Ok(NewTokenRequest { name, role, projects, expires_at })
}

/// An expiry time: RFC 3339, in the future, kept in UTC at the store's resolution (milliseconds)
/// so that the answer to the create equals every later read.
fn expiry(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("expiresAt: {text:?} is not an RFC 3339 time such as 2030-01-31T12:00:00Z"))?;
    let millis = parsed.unix_timestamp_nanos() / 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .map_err(|_| format!("expiresAt: {text:?} is out of range"))?;
    if at <= now {
        return Err(format!("expiresAt: {text} is not in the future"));
    }
    Ok(at)
}

/// List API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Items<TokenView>), (status = "4XX", body = ErrorBody)))]
async fn list_tokens(_: Admin, state: State<AppState>) -> ApiResult<Json<Items<TokenView>>> {
    let tokens = state.store().tokens.list_tokens().await.map_err(ApiError::internal)?;
    Ok(Json(Items { items: tokens.iter().map(TokenView::from).collect() }))
}

/// Create an API token. The answer holds its value, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, body = CreatedToken,
            headers(("Cache-Control" = String, description = "`no-store`: the body holds the token's value"))),
        (status = "4XX", body = ErrorBody)))]
async fn create_token(
    Admin(creator): Admin,
    state: State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<impl IntoResponse> {
    let created_at = now();
    let NewTokenRequest { name, role, projects, expires_at } =
        validate(body, created_at).map_err(|m| ApiError::from(Problem::invalid_request(&m)))?;
    let value = ApiToken::generate();
    let token = Token {
        id: Uuid::new_v4(),
        name,
        role,
        projects,
        hint: value.hint(),
        created_at,
        last_used_at: None,
        expires_at,
    };
    state
        .store()
        .tokens
        .insert_token(&NewToken { token: token.clone(), hash: value.hash() })
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(token = %token.id, role = role.as_str(), created_by = %creator.token_id, "token created");
    let created = CreatedToken { token: TokenView::from(&token), value: value.expose().to_owned() };
    Ok(NoStore((StatusCode::CREATED, Json(created))))
}

/// Get an API token (without its value).
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TokenView), (status = "4XX", body = ErrorBody)))]
async fn get_token(_: Admin, state: State<AppState>, Id(id): Id) -> ApiResult<Json<TokenView>> {
    let token =
        state.store().tokens.get_token(id).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    Ok(Json(TokenView::from(&token)))
}

/// Delete an API token; it stops working at once. The last admin token that does not expire
/// cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_token(Admin(deleter): Admin, state: State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    state.store().tokens.delete_token(id).await.map_err(|e| ApiError::from_store(e, RESOURCE, &id.to_string()))?;
    tracing::info!(token = %id, deleted_by = %deleter.token_id, "token deleted");
    Ok(StatusCode::NO_CONTENT)
}
