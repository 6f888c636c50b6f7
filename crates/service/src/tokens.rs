//! API tokens, and the caller a presented token makes.
//!
//! A token's value exists only in the answer that creates it; the store keeps its hash. A token
//! past its expiry is refused with `token-expired`, which says so and how to get a new one,
//! rather than as unknown. The last admin token that does not expire cannot be deleted.

use byos_catalog::{NewToken, ProjectGrant, StoreError, Token};
use byos_domain::{Problem, ProjectAccess, Role, TokenName};
use byos_secrets::ApiToken;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::caller::SYSTEM_SETTINGS;
use crate::error::{internal, store_error};
use crate::{Caller, ServiceError, Services, now, required};

const RESOURCE: &str = "Token";

/// A new token, as a client sends it: `admin`, or `member` of the listed projects.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub name: Option<String>,
    /// `admin` or `member`.
    pub role: Option<String>,
    /// The projects of a member, each with its access.
    pub projects: Option<Vec<GrantRequest>>,
    /// An RFC 3339 time in the future; without it, the token works until it is deleted.
    pub expires_at: Option<String>,
}

/// A project a member token reaches, as a client names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantRequest {
    /// A bare id: `read-write`, as tokens were before access levels.
    Id(String),
    /// An id and `read` or `read-write`.
    Grant { id: String, access: String },
}

/// Token uses not written yet: each token's latest. Checking a token is a read only; its use is
/// written in a batch by [`Services::flush_token_uses`] (every few seconds in `byos serve`), so
/// that no request waits behind the store's writer for it (on SQLite, behind the sync engine's
/// batches). A token's use is noted at most once a minute, as `lastUsedAt` is shown.
#[derive(Debug, Default)]
pub(crate) struct TokenUses(std::sync::Mutex<std::collections::HashMap<Uuid, OffsetDateTime>>);

impl TokenUses {
    /// Notes that `token` was used at `now`.
    pub(crate) fn note(&self, token: &Token, now: OffsetDateTime) {
        if token.last_used_at.is_some_and(|t| now - t < time::Duration::MINUTE) {
            return;
        }
        self.lock().insert(token.id, now);
    }

    /// The uses noted since the last call.
    pub(crate) fn take(&self) -> Vec<(Uuid, OffsetDateTime)> {
        self.lock().drain().collect()
    }

    /// Puts back uses that could not be written, unless a later one was noted meanwhile.
    pub(crate) fn restore(&self, uses: Vec<(Uuid, OffsetDateTime)>) {
        let mut pending = self.lock();
        for (id, at) in uses {
            let latest = pending.entry(id).or_insert(at);
            *latest = (*latest).max(at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, OffsetDateTime>> {
        // A panic while holding the map cannot leave it half-written: take it as it is.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new token and its value: the only time the value exists outside its holder.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: Token,
    pub value: ApiToken,
}

/// The operations on API tokens. Managing them is System Settings, for admins; anyone may
/// present one.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    services: &'a Services,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(services: &'a Services) -> Tokens<'a> {
        Tokens { services }
    }

    /// The caller whose token is `presented`, or why there is none. Notes the token's use.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, ServiceError> {
        Ok(Caller::of_token(&self.presented(presented).await?))
    }

    /// The token whose value is `presented`, unless it is unknown or expired. Notes its use.
    pub(crate) async fn presented(&self, presented: &str) -> Result<Token, ServiceError> {
        let hash = byos_secrets::hash_token(presented);
        let now = OffsetDateTime::now_utc();
        match self.services.store().tokens.authenticate(&hash).await {
            Ok(token) if token.is_expired(now) => Err(expired(&token)),
            Ok(token) => {
                self.services.token_uses().note(&token, now);
                Ok(token)
            }
            Err(StoreError::NotFound) => {
                Err(Problem::unauthenticated("the token is not known; it may have been deleted").into())
            }
            Err(e) => Err(internal(e)),
        }
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<Token>, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().tokens.list_tokens().await.map_err(internal)
    }

    /// A token, without its value.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Token, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().tokens.get_token(id).await.map_err(|e| store_error(e, RESOURCE, id))
    }

    pub async fn create(&self, caller: &Caller, request: TokenRequest) -> Result<CreatedToken, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let created_at = now();
        let Valid { name, role, projects, expires_at } =
            validate(request, created_at).map_err(|m| ServiceError::from(Problem::invalid_request(&m)))?;
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
        self.services
            .store()
            .tokens
            .insert_token(&NewToken { token: token.clone(), hash: value.hash() })
            .await
            .map_err(internal)?;
        tracing::info!(token = %token.id, role = role.as_str(), created_by = %caller.token(), "token created");
        Ok(CreatedToken { token, value })
    }

    /// Deletes a token; it stops working at once.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().tokens.delete_token(id).await.map_err(|e| store_error(e, RESOURCE, id))?;
        tracing::info!(token = %id, deleted_by = %caller.token(), "token deleted");
        Ok(())
    }
}

/// What a valid request asks for.
struct Valid {
    name: TokenName,
    role: Role,
    projects: Vec<ProjectGrant>,
    expires_at: Option<OffsetDateTime>,
}

fn validate(request: TokenRequest, now: OffsetDateTime) -> Result<Valid, String> {
    let name = required("name", request.name.as_deref())?;
    let name = TokenName::parse(name).map_err(|e| format!("name: {e}"))?;
    let role_text = required("role", request.role.as_deref())?;
    let role = Role::parse(role_text).ok_or_else(|| format!("role: {role_text:?} is not admin or member"))?;
    let projects = request.projects.unwrap_or_default().iter().map(grant).collect::<Result<Vec<_>, _>>()?;
    if let Some(twice) = projects.iter().enumerate().find(|(i, g)| projects[..*i].iter().any(|h| h.id == g.id)) {
        return Err(format!("projects: {} is listed twice; list each project once, with its access", twice.1.id));
    }
    if role == Role::Admin && !projects.is_empty() {
        return Err("projects: an admin token reaches every project; list projects for member tokens only".to_owned());
    }
    let expires_at = request.expires_at.as_deref().map(|t| expiry(t, now)).transpose()?;
    Ok(Valid { name, role, projects, expires_at })
}

fn grant(request: &GrantRequest) -> Result<ProjectGrant, String> {
    let (id, access) = match request {
        GrantRequest::Id(id) => (id, ProjectAccess::ReadWrite),
        GrantRequest::Grant { id, access: text } => {
            let access = ProjectAccess::parse(text)
                .ok_or_else(|| format!("projects: access {text:?} is not read or read-write"))?;
            (id, access)
        }
    };
    let id = Uuid::parse_str(id).map_err(|_| format!("projects: {id:?} is not a project id"))?;
    Ok(ProjectGrant { id, access })
}

/// An expiry time: RFC 3339, in the future, kept in UTC at the store's resolution
/// (milliseconds) so that the answer to the create equals every later read.
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

/// `token-expired`, with the time the token stopped working.
pub(crate) fn expired(token: &Token) -> ServiceError {
    let at = token.expires_at.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default();
    Problem::token_expired(&at).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, code, member};

    #[tokio::test]
    async fn a_created_token_authenticates_as_its_caller() {
        let fixture = Fixture::new().await;
        let tokens = fixture.services.tokens();
        let project = Uuid::new_v4();
        let request = TokenRequest {
            name: Some("reader".to_owned()),
            role: Some("member".to_owned()),
            projects: Some(vec![GrantRequest::Grant { id: project.to_string(), access: "read".to_owned() }]),
            expires_at: None,
        };
        let created = tokens.create(&fixture.admin, request).await.unwrap();
        let caller = tokens.authenticate(created.value.expose()).await.unwrap();
        let grant = ProjectGrant { id: project, access: ProjectAccess::Read };
        assert_eq!(caller, Caller::new(created.token.id, "reader", Role::Member, vec![grant]));
        // The use is written by the next flush, not by the check itself.
        let last_used =
            || async { fixture.services.store().tokens.get_token(created.token.id).await.unwrap().last_used_at };
        assert_eq!(last_used().await, None);
        assert_eq!(fixture.services.flush_token_uses().await.unwrap(), 1);
        assert!(last_used().await.is_some());
        tokens.authenticate(created.value.expose()).await.unwrap();
        assert_eq!(fixture.services.flush_token_uses().await.unwrap(), 0, "noted at most once a minute");

        assert_eq!(code(tokens.authenticate("byos_not-a-real-token").await), "unauthenticated");
        assert_eq!(code(tokens.list(&caller).await), "access-forbidden");
        assert_eq!(code(tokens.delete(&member(&[]), created.token.id).await), "access-forbidden");
        tokens.delete(&fixture.admin, created.token.id).await.unwrap();
        assert_eq!(code(tokens.authenticate(created.value.expose()).await), "unauthenticated");
    }

    #[test]
    fn grants_name_each_project_once_with_a_known_access() {
        let id = Uuid::new_v4().to_string();
        let request = |projects: Vec<GrantRequest>| TokenRequest {
            name: Some("t".to_owned()),
            role: Some("member".to_owned()),
            projects: Some(projects),
            expires_at: None,
        };
        let bare = validate(request(vec![GrantRequest::Id(id.clone())]), OffsetDateTime::now_utc()).ok();
        assert_eq!(bare.map(|v| v.projects[0].access), Some(ProjectAccess::ReadWrite), "a bare id is read-write");
        let write = |access: &str| GrantRequest::Grant { id: id.clone(), access: access.to_owned() };
        for (projects, refusal) in [
            (vec![write("write")], r#"projects: access "write" is not read or read-write"#.to_owned()),
            (vec![GrantRequest::Id("p1".to_owned())], r#"projects: "p1" is not a project id"#.to_owned()),
            (
                vec![write("read"), GrantRequest::Id(id.clone())],
                format!("projects: {id} is listed twice; list each project once, with its access"),
            ),
        ] {
            assert_eq!(validate(request(projects), OffsetDateTime::now_utc()).err(), Some(refusal));
        }
    }

    #[test]
    fn expiries_are_in_the_future_at_millisecond_resolution() {
        let now = OffsetDateTime::parse("2026-01-01T00:00:00Z", &Rfc3339).unwrap();
        let at = expiry("2030-01-31T12:00:00.123456Z", now).unwrap();
        assert_eq!(at.nanosecond(), 123_000_000);
        assert_eq!(
            expiry("2025-01-01T00:00:00Z", now),
            Err("expiresAt: 2025-01-01T00:00:00Z is not in the future".to_owned())
        );
        assert!(expiry("tomorrow", now).is_err_and(|m| m.contains("is not an RFC 3339 time")));
    }
}
