//! Who is calling: the bearer token of the `Authorization` header, which the services turn into
//! a [`Caller`] (or refuse: unknown, or expired with `token-expired`).
//!
//! Handlers say what they need by their arguments: [`Principal`] for any valid token, [`Admin`]
//! for System Settings. A handler without either is public; the authorization test walks every
//! route of the OpenAPI document to keep that list short and right. The services check the role
//! again and decide what each caller may see.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byos_domain::Problem;
use byos_service::Caller;

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
