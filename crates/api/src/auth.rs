//! Who is calling: bearer tokens, looked up by their hash, and the two roles.
//!
//! A token past its `expiresAt` is refused with `token-expired`, which says so and how to get
//! a new one, rather than as unknown.
//!
//! Handlers say what they need by their arguments: [`Principal`] for any valid token, [`Admin`]
//! for System Settings. A handler without either is public; the authorization test walks every
//! route of the OpenAPI document to keep that list short and right.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byos_catalog::StoreError;
use byos_domain::{Problem, Role};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated by a bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: Uuid,
    pub role: Role,
    /// The projects a member reaches.
    pub projects: Vec<Uuid>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

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
        let hash = byos_secrets::hash_token(presented);
        let now = OffsetDateTime::now_utc();
        match state.store().tokens.authenticate(&hash, now).await {
            Ok(token) if token.is_expired(now) => {
                let at = token.expires_at.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default();
                Err(Problem::token_expired(&at).into())
            }
            Ok(token) => Ok(Principal { token_id: token.id, role: token.role, projects: token.projects }),
            Err(StoreError::NotFound) => {
                Err(Problem::unauthenticated("the token is not known; it may have been deleted").into())
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}

/// A caller with the admin role: System Settings (credentials, configurations, tokens).
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !principal.is_admin() {
            return Err(Problem::access_forbidden("System Settings need a token with the admin role").into());
        }
        Ok(Admin(principal))
    }
}
