//! Who is calling: the bearer token of the `Authorization` header, or the console's session
//! cookie, which the services turn into a [`Caller`] (or refuse: unknown, ended, or expired with
//! `token-expired`).
//!
//! The console never holds a token in reach of its scripts: it signs in once (`POST
//! /api/v1/session`) and then sends an HttpOnly, SameSite=Strict cookie. A request made with
//! the cookie that changes anything (any method but GET and HEAD) must also carry the session's
//! CSRF token in `X-CSRF-Token`, and must not come from another site (`Sec-Fetch-Site`), or it
//! is refused with `csrf-check-failed`. A request with an `Authorization` header is judged by
//! that header alone.
//!
//! Handlers say what they need by their arguments: [`Principal`] for any valid caller, [`Admin`]
//! for System Settings, [`InProject`] for a project's routes (`/api/v1/projects/{id}/...`), with
//! the access they need (`read` or `read-write`). A handler without any is public; the
//! authorization test walks every route of the OpenAPI document to keep that list short and
//! right. The services check the role again and decide what each caller may see; a project's
//! operations take the [`ProjectScope`] that only the check makes.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use byos_domain::Problem;
use byos_service::{Access, Caller, ConsoleSession, ProjectScope};
use uuid::Uuid;

use crate::AppState;
use crate::audit::ActorSlot;
use crate::error::ApiError;

/// The name of the console's session cookie.
pub(crate) const SESSION_COOKIE: &str = "byos_session";

/// The header that carries a console session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How a caller proved who it is.
#[derive(Debug, Clone)]
pub(crate) enum Authenticated {
    Bearer(Caller),
    /// The console's cookie: the session's secret, and the session.
    Session {
        secret: String,
        session: ConsoleSession,
    },
}

impl Authenticated {
    pub(crate) fn caller(&self) -> Caller {
        match self {
            Authenticated::Bearer(caller) => caller.clone(),
            Authenticated::Session { session, .. } => session.caller(),
        }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Authenticated, ApiError> {
        let authenticated = authenticate(parts, state).await?;
        // A change is recorded in the audit log with its caller.
        if let Some(slot) = parts.extensions.get::<ActorSlot>() {
            slot.fill(&authenticated.caller());
        }
        Ok(authenticated)
    }
}

/// The caller of a request, by its bearer token or its session cookie.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .map(|(_, token)| token.trim())
            .ok_or_else(|| Problem::unauthenticated("the Authorization header is not 'Bearer <token>'"))?;
        return Ok(Authenticated::Bearer(state.services().tokens().authenticate(presented).await?));
    }
    let Some(secret) = session_cookie(&parts.headers) else {
        return Err(Problem::unauthenticated("the request has no Authorization header").into());
    };
    let session = state.services().sessions().authenticate(&secret).await?;
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        check_csrf(&parts.headers, &session.csrf_token)?;
    }
    Ok(Authenticated::Session { secret, session })
}

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Refuses a request that a browser says another site made. Browsers send `Sec-Fetch-Site` on
/// every request; a client that is not a browser sends none, and cannot be made to send one by
/// a page on another site.
pub(crate) fn refuse_cross_site(headers: &HeaderMap) -> Result<(), Problem> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site @ ("cross-site" | "same-site")) => Err(Problem::csrf_check_failed(&format!(
            "it came from another site (Sec-Fetch-Site: {site}); only the console's own pages may use its session"
        ))),
        _ => Ok(()),
    }
}

/// The CSRF token a change must carry: the session's, compared in constant time.
fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<(), Problem> {
    refuse_cross_site(headers)?;
    let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if sent.is_empty() {
        return Err(Problem::csrf_check_failed("it has no X-CSRF-Token header, which every change must carry"));
    }
    let expected = expected.as_bytes();
    let differ = sent.len() != expected.len() || sent.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0;
    if differ {
        return Err(Problem::csrf_check_failed("its X-CSRF-Token does not match the one given at sign-in"));
    }
    Ok(())
}

/// The caller, authenticated by a bearer token or the console's session.
#[derive(Debug, Clone)]
pub struct Principal(pub Caller);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
        Ok(Principal(Authenticated::from_request_parts(parts, state).await?.caller()))
    }
}

/// A caller with the admin role: System Settings (credentials, configurations, tokens).
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let Principal(caller) = Principal::from_request_parts(parts, state).await?;
        caller.require_admin("System Settings")?;
        Ok(Admin(caller))
    }
}

/// A caller acting on the project of the path's `{id}` with access `A` (`Read` or `ReadWrite`):
/// a project the caller may not see is "not found", one it may only read is forbidden to
/// `ReadWrite` routes. The OpenAPI document names the same access as the route's security scope
/// (`project:read`, `project:read-write`), and the authorization walk checks that they agree.
#[derive(Debug, Clone)]
pub struct InProject<A: Access>(pub ProjectScope<A>);

impl<A: Access> FromRequestParts<AppState> for InProject<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<InProject<A>, ApiError> {
        let Principal(caller) = Principal::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::invalid_request(&format!("path: {}", e.body_text())))?;
        let raw = params
            .iter()
            .find_map(|(name, value)| (name == "id").then_some(value))
            .ok_or_else(|| ApiError::internal("a project route without an {id} in its path"))?;
        let id = Uuid::parse_str(raw)
            .map_err(|_| Problem::invalid_request(&format!("path: {raw:?} is not an id; ids are UUIDs")))?;
        Ok(InProject(caller.project::<A>(id)?))
    }
}
