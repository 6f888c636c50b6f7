//! Console sessions. A browser signs in with a token once; from then on it holds a random
//! session secret in an HttpOnly cookie, which no script on the page can read, instead of the
//! token. The store keeps the secret's hash, the token it acts for and a CSRF token, which the
//! console's script must send back with every change (the interface checks it). A session ends
//! at sign-out, after [`SESSION_LIFETIME`] (or when its token expires, if sooner), or when its
//! token is deleted.

use byos_catalog::{NewSession, StoreError, Token};
use byos_domain::Problem;
use byos_secrets::{generate_session_secret, hash_token};
use time::{Duration, OffsetDateTime};

use crate::error::internal;
use crate::{Caller, ServiceError, Services};

/// How long a console session lasts: a working day, after which the console asks for the token
/// again.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);

/// A session just made: the secret for the cookie (it exists nowhere else) and what the console
/// needs to know.
#[derive(Debug)]
pub struct SignedIn {
    pub secret: String,
    pub session: ConsoleSession,
}

/// A console session in force: who it acts for, and the CSRF token its changes must carry.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub token: Token,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

impl ConsoleSession {
    pub fn caller(&self) -> Caller {
        Caller::of_token(&self.token)
    }
}

/// Signing in to the console, and out.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    services: &'a Services,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(services: &'a Services) -> Sessions<'a> {
        Sessions { services }
    }

    /// A new session for the holder of the token `presented`, refused as the token would be.
    pub async fn sign_in(&self, presented: &str) -> Result<SignedIn, ServiceError> {
        let token = self.services.tokens().presented(presented).await?;
        let store = &self.services.store().tokens;
        let created_at = OffsetDateTime::now_utc();
        let expires_at =
            token.expires_at.map_or(created_at + SESSION_LIFETIME, |at| at.min(created_at + SESSION_LIFETIME));
        let secret = generate_session_secret();
        let csrf_token = generate_session_secret();
        let new = NewSession {
            hash: hash_token(&secret),
            token_id: token.id,
            csrf_token: csrf_token.clone(),
            created_at,
            expires_at,
        };
        store.insert_session(&new).await.map_err(internal)?;
        Ok(SignedIn { secret, session: ConsoleSession { token, csrf_token, expires_at } })
    }

    /// The session whose cookie holds `secret`, or why there is none.
    pub async fn authenticate(&self, secret: &str) -> Result<ConsoleSession, ServiceError> {
        let now = OffsetDateTime::now_utc();
        match self.services.store().tokens.session(&hash_token(secret), now).await {
            Ok(session) if session.token.is_expired(now) => Err(crate::tokens::expired(&session.token)),
            Ok(session) => {
                self.services.token_uses().note(&session.token, now);
                Ok(ConsoleSession {
                    token: session.token,
                    csrf_token: session.csrf_token,
                    expires_at: session.expires_at,
                })
            }
            Err(StoreError::NotFound) => Err(Problem::unauthenticated(
                "the console session has ended (signed out, expired, or its token deleted); sign in again",
            )
            .into()),
            Err(e) => Err(internal(e)),
        }
    }

    /// Ends the session whose cookie holds `secret`; ending one that has ended already is no
    /// error.
    pub async fn sign_out(&self, secret: &str) -> Result<(), ServiceError> {
        self.services.store().tokens.delete_session(&hash_token(secret)).await.map_err(internal)
    }

    /// The token a caller acts with, whichever way it came: what the console shows as "signed
    /// in as".
    pub async fn whoami(&self, caller: &Caller) -> Result<Token, ServiceError> {
        self.services.store().tokens.get_token(caller.token()).await.map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::TokenRequest;
    use crate::testing::{Fixture, code};

    #[tokio::test]
    async fn a_session_acts_for_its_token_until_signed_out() {
        let f = Fixture::new().await;
        let request = TokenRequest {
            name: Some("browser".to_owned()),
            role: Some("admin".to_owned()),
            ..TokenRequest::default()
        };
        let created = f.services.tokens().create(&f.admin, request).await.unwrap_or_else(|e| panic!("{e}"));
        let sessions = f.services.sessions();
        assert_eq!(code(sessions.sign_in("byos_not-a-token").await), "unauthenticated");

        let signed_in = sessions.sign_in(created.value.expose()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(signed_in.secret, signed_in.session.csrf_token);
        assert!(!signed_in.secret.contains(created.value.expose()) && signed_in.secret.len() >= 43);
        let lifetime = signed_in.session.expires_at - OffsetDateTime::now_utc();
        assert!(lifetime <= SESSION_LIFETIME && lifetime > Duration::hours(11), "{lifetime}");

        let session = sessions.authenticate(&signed_in.secret).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((session.token.id, &session.csrf_token), (created.token.id, &signed_in.session.csrf_token));
        assert!(session.caller().is_admin());
        assert_eq!(sessions.whoami(&session.caller()).await.map(|t| t.id).ok(), Some(created.token.id));
        assert_eq!(code(sessions.authenticate(created.value.expose()).await), "unauthenticated");

        sessions.sign_out(&signed_in.secret).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code(sessions.authenticate(&signed_in.secret).await), "unauthenticated");
        sessions.sign_out(&signed_in.secret).await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_session_ends_with_its_token() {
        let f = Fixture::new().await;
        let in_an_hour = (OffsetDateTime::now_utc() + Duration::hours(1)).format(&Rfc3339).unwrap_or_default();
        let request = TokenRequest {
            name: Some("short".to_owned()),
            role: Some("member".to_owned()),
            projects: Some(Vec::new()),
            expires_at: Some(in_an_hour),
        };
        let created = f.services.tokens().create(&f.admin, request).await.unwrap_or_else(|e| panic!("{e}"));
        let sessions = f.services.sessions();
        let signed_in = sessions.sign_in(created.value.expose()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(signed_in.session.expires_at), created.token.expires_at, "no longer than its token");

        f.services.tokens().delete(&f.admin, created.token.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code(sessions.authenticate(&signed_in.secret).await), "unauthenticated");
    }
}
