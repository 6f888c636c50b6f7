//! Who is calling: the bearer token of the `Authorization` header, which the services turn into
//! a [`Caller`] (or refuse: unknown, or expired with `token-expired`).
//!
//! Handlers say what they need by their arguments: [`Principal`] for any valid token, [`Admin`]
//! for System Settings, [`InProject`] for a project's routes (`/api/v1/projects/{id}/...`), with
//! the access they need (`read` or `read-write`). A handler without any is public; the
//! authorization test walks every route of the OpenAPI document to keep that list short and
//! right. The services check the role again and decide what each caller may see; a project's
//! operations take the [`ProjectScope`] that only the check makes.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byos_domain::Problem;
use byos_service::{Access, Caller, ProjectScope};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated by a bearer token.
#[derive(Debug, Clone)]
pub struct Principal(pub Caller);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| Problem::unauthenticated("the request has no Authorization header"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .map(|(_, token)| token.trim())
            .ok_or_else(|| Problem::unauthenticated("the Authorization header is not 'Bearer <token>'"))?;
        Ok(Principal(state.services().tokens().authenticate(presented).await?))
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
