//! `/api/v1/session`: the console's sign-in. The console posts a token once and gets an
//! HttpOnly, SameSite=Strict cookie for a session (12 hours, or less if the token expires
//! sooner) and a CSRF token for its changes; sign-out ends the session on the server. API
//! clients need none of it: they send their bearer token with every request.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use byos_catalog::{AuditActor, Token};
use byos_domain::{Problem, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::tokens::GrantView;
use super::{NoStore, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::{Authenticated, SESSION_COOKIE, refuse_cross_site};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in, get_session, sign_out))
}

/// A token, to sign in to the console with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// An API token (`byos_...`).
    token: Option<String>,
}

/// Who a request acts for, and for a console session what its changes must carry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionView {
    /// The id of the token the caller acts with.
    token_id: Uuid,
    /// The token's name.
    name: String,
    /// `admin` or `member`.
    #[schema(value_type = String, example = "member")]
    role: Role,
    /// The projects a member reaches, each with its access.
    projects: Vec<GrantView>,
    /// When the session ends (for a bearer token: when the token expires, `null` if never).
    expires_at: Option<String>,
    /// For a console session: the token to send in `X-CSRF-Token` with every change. `null` for
    /// a bearer token, which needs none.
    csrf_token: Option<String>,
}

impl SessionView {
    fn new(token: &Token, expires_at: Option<OffsetDateTime>, csrf_token: Option<String>) -> SessionView {
        SessionView {
            token_id: token.id,
            name: token.name.as_str().to_owned(),
            role: token.role,
            projects: token.projects.iter().map(GrantView::from).collect(),
            expires_at: expires_at.map(rfc3339),
            csrf_token,
        }
    }
}

/// Sign in to the console with a token: sets the session cookie (HttpOnly, SameSite=Strict,
/// Secure behind https) and answers with the session's CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn,
    responses(
        (status = 201, body = SessionView, headers(
            ("Set-Cookie" = String, description = "`byos_session`: the session's secret, HttpOnly, SameSite=Strict"),
            ("Cache-Control" = String, description = "`no-store`"))),
        (status = "4XX", body = ErrorBody)))]
async fn sign_in(
    state: State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<impl IntoResponse> {
    refuse_cross_site(&headers)?;
    let token = body.token.filter(|t| !t.trim().is_empty());
    let token = token.ok_or_else(|| Problem::invalid_request("token: required, an API token (byos_...)"))?;
    let signed_in = state.services().sessions().sign_in(token.trim()).await?;
    let session = &signed_in.session;
    let max_age = (session.expires_at - OffsetDateTime::now_utc()).whole_seconds().max(0);
    let cookie = session_cookie(&headers, &signed_in.secret, max_age);
    let view = SessionView::new(&session.token, Some(session.expires_at), Some(session.csrf_token.clone()));
    // The caller authenticated here, not in an extractor: the audit log learns it from the note.
    let actor = AuditActor { token: session.token.id, name: session.token.name.as_str().to_owned() };
    let note = AuditNote { actor: Some(actor), ..AuditNote::default() };
    Ok(NoStore(([(SET_COOKIE, cookie)], Extension(note), (StatusCode::CREATED, Json(view)))))
}

/// Who the caller is: the token it acts with, and for a console session the CSRF token. The
/// console asks this when a page loads.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 200, body = SessionView), (status = "4XX", body = ErrorBody)))]
async fn get_session(who: Authenticated, state: State<AppState>) -> ApiResult<impl IntoResponse> {
    let view = match who {
        Authenticated::Bearer(caller) => {
            let token = state.services().sessions().whoami(&caller).await?;
            SessionView::new(&token, token.expires_at, None)
        }
        Authenticated::Session { session, .. } => {
            SessionView::new(&session.token, Some(session.expires_at), Some(session.csrf_token))
        }
    };
    Ok(NoStore(Json(view)))
}

/// Sign out of the console: ends the session on the server and clears its cookie. With a
/// bearer token there is no session to end, and nothing happens.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn sign_out(who: Authenticated, state: State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    let mut clear = None;
    if let Authenticated::Session { secret, .. } = who {
        state.services().sessions().sign_out(&secret).await?;
        clear = Some(session_cookie(&headers, "", 0));
    }
    Ok((clear.map(|cookie| [(SET_COOKIE, cookie)]), StatusCode::NO_CONTENT))
}

/// The session cookie: for the whole site, out of scripts' reach, never sent by another site's
/// page, and over https only when the console is served over https (as a proxy in front says
/// with `X-Forwarded-Proto`).
fn session_cookie(headers: &HeaderMap, secret: &str, max_age: i64) -> HeaderValue {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={secret}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("byos_session=; Max-Age=0"))
}
