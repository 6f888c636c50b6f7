//! The audit log: who changed what, and when. The API records every state-changing call (with
//! its actor, target, outcome, source address, user agent and request id); admins read it a page
//! at a time, newest first; events older than the retention are pruned in the background.
//!
//! Recording takes no [`Caller`]: the interface that served the call records it, whoever the
//! caller was. Reading is System Settings.

use std::time::Duration;

use byos_catalog::{ActorFilter, AuditCursor, AuditEvent, AuditQuery};
use byos_domain::Problem;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::Internal;
use crate::caller::SYSTEM_SETTINGS;
use crate::error::internal;
use crate::{Caller, ServiceError, Services, pages};

const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 100;
/// Events a prune deletes in one statement.
const PRUNE_CHUNK: u32 = 5_000;

/// Which events to read, as a client asks.
#[derive(Debug, Default)]
pub struct AuditRequest {
    /// A token's id, or its name.
    pub actor: Option<String>,
    /// An operation id of the OpenAPI document (`create_project`).
    pub action: Option<String>,
    /// Events whose target starts with this (`/api/v1/projects/{id}`).
    pub target: Option<String>,
    /// RFC 3339; from this time on.
    pub since: Option<String>,
    /// RFC 3339; before this time.
    pub until: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `nextPageToken` of the previous page.
    pub page_token: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The token of the next page; none on the last one.
    pub next_page_token: Option<String>,
}

/// The audit log's operations.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    services: &'a Services,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(services: &'a Services) -> Audit<'a> {
        Audit { services }
    }

    /// Appends an event.
    pub async fn record(&self, event: &AuditEvent) -> Result<(), ServiceError> {
        self.services.store().audit.record_audit(event).await.map_err(internal)
    }

    /// A page of the events `request` selects, newest first. Admins only.
    pub async fn list(&self, caller: &Caller, request: AuditRequest) -> Result<AuditPage, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let limit = match request.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => return Err(Problem::invalid_request(&format!("limit: {n}; 1 to {MAX_LIMIT}")).into()),
        };
        let mut query = AuditQuery {
            actor: non_empty(request.actor).map(|actor| match Uuid::parse_str(&actor) {
                Ok(token) => ActorFilter::Token(token),
                Err(_) => ActorFilter::Name(actor),
            }),
            action: non_empty(request.action),
            target: non_empty(request.target),
            since: time_field("since", request.since)?,
            until: time_field("until", request.until)?,
            after: None,
        };
        let key = self.services.master_key();
        let listing = audit_listing(&query);
        if let Some(token) = request.page_token.as_deref() {
            query.after = Some(cursor(&pages::open(key, &listing, token)?)?);
        }
        let events = self.services.store().audit.audit_events(&query, limit).await.map_err(internal)?;
        let next_page_token = (events.len() == limit as usize)
            .then(|| events.last().map(|e| pages::seal(key, &listing, &position(AuditCursor { at: e.at, id: e.id }))))
            .flatten();
        Ok(AuditPage { events, next_page_token })
    }

    /// Deletes the events older than `retention`; returns how many.
    pub async fn prune(&self, retention: Duration) -> Result<u64, ServiceError> {
        let before = OffsetDateTime::now_utc() - retention;
        let mut pruned = 0;
        loop {
            let done = self.services.store().audit.prune_audit(before, PRUNE_CHUNK).await.map_err(internal)?;
            pruned += done;
            if done < u64::from(PRUNE_CHUNK) {
                return Ok(pruned);
            }
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn time_field(field: &str, value: Option<String>) -> Result<Option<OffsetDateTime>, ServiceError> {
    let Some(value) = non_empty(value) else { return Ok(None) };
    OffsetDateTime::parse(&value, &Rfc3339).map(Some).map_err(|_| {
        Problem::invalid_request(&format!("{field}: {value:?} is not an RFC 3339 time (2026-12-01T09:30:00Z)")).into()
    })
}

/// What an audit page token is sealed for: the query's filters.
fn audit_listing(query: &AuditQuery) -> Vec<u8> {
    let actor = match &query.actor {
        Some(ActorFilter::Token(token)) => format!("token:{token}"),
        Some(ActorFilter::Name(name)) => format!("name:{name}"),
        None => String::new(),
    };
    let ms =
        |t: Option<OffsetDateTime>| t.map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string()).unwrap_or_default();
    let (since, until) = (ms(query.since), ms(query.until));
    let (action, target) = (query.action.as_deref().unwrap_or(""), query.target.as_deref().unwrap_or(""));
    pages::listing("audit", &[&actor, action, target, &since, &until])
}

/// A page's last event as a position: its time in milliseconds and its id.
fn position(cursor: AuditCursor) -> Vec<u8> {
    let ms = cursor.at.unix_timestamp_nanos() / 1_000_000;
    format!("{ms}:{}", cursor.id).into_bytes()
}

fn cursor(position: &[u8]) -> Result<AuditCursor, ServiceError> {
    let corrupt = || {
        ServiceError::from(Internal::Inconsistent(format!("an audit page token this server sealed holds {position:?}")))
    };
    let text = std::str::from_utf8(position).map_err(|_| corrupt())?;
    let (ms, id) = text.split_once(':').ok_or_else(corrupt)?;
    let ms: i64 = ms.parse().map_err(|_| corrupt())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| corrupt())?;
    let id = Uuid::parse_str(id).map_err(|_| corrupt())?;
    Ok(AuditCursor { at, id })
}

#[cfg(test)]
mod tests {
    use byos_catalog::AuditActor;

    use super::*;
    use crate::testing::{Fixture, code, member};

    fn event(at: OffsetDateTime, action: &str) -> AuditEvent {
        AuditEvent {
            id: Uuid::new_v4(),
            at,
            actor: AuditActor { token: Uuid::new_v4(), name: "ada".to_owned() },
            action: action.to_owned(),
            target: "/api/v1/tokens".to_owned(),
            status: 201,
            source_ip: None,
            user_agent: None,
            request_id: "r".to_owned(),
            detail: None,
        }
    }

    #[test]
    fn positions_round_trip() {
        let at = crate::now();
        let cursor_at = AuditCursor { at, id: Uuid::new_v4() };
        assert_eq!(cursor(&position(cursor_at)).ok(), Some(cursor_at));
    }

    #[tokio::test]
    async fn admins_page_through_the_log_and_members_may_not() {
        let fixture = Fixture::new().await;
        let audit = fixture.services.audit();
        let start = crate::now();
        for n in 0..5 {
            let action = if n % 2 == 0 { "create_token" } else { "delete_token" };
            audit.record(&event(start + time::Duration::seconds(n), action)).await.unwrap();
        }
        let request = |page_token: Option<String>| AuditRequest { limit: Some(2), page_token, ..Default::default() };
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = audit.list(&fixture.admin, request(token)).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.at));
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let expected: Vec<_> = (0..5).rev().map(|n| start + time::Duration::seconds(n)).collect();
        assert_eq!(seen, expected);

        let since = AuditRequest {
            action: Some("create_token".to_owned()),
            since: Some((start + time::Duration::seconds(1)).format(&Rfc3339).unwrap()),
            ..Default::default()
        };
        assert_eq!(audit.list(&fixture.admin, since).await.unwrap().events.len(), 2);

        // A page token holds to its filters.
        let first = audit.list(&fixture.admin, request(None)).await.unwrap().next_page_token;
        let other_filter =
            AuditRequest { action: Some("create_token".to_owned()), page_token: first, ..Default::default() };
        assert_eq!(code(audit.list(&fixture.admin, other_filter).await), "invalid-request");

        let bad_time = AuditRequest { until: Some("yesterday".to_owned()), ..Default::default() };
        assert_eq!(code(audit.list(&fixture.admin, bad_time).await), "invalid-request");
        let bad_limit = AuditRequest { limit: Some(0), ..Default::default() };
        assert_eq!(code(audit.list(&fixture.admin, bad_limit).await), "invalid-request");
        assert_eq!(code(audit.list(&member(&[]), AuditRequest::default()).await), "access-forbidden");

        // Only what is older than the retention goes.
        assert_eq!(audit.prune(Duration::from_secs(3600)).await.unwrap(), 0);
        let old = event(start - time::Duration::days(2), "delete_token");
        audit.record(&old).await.unwrap();
        assert_eq!(audit.prune(Duration::from_secs(86_400)).await.unwrap(), 1);
        assert_eq!(audit.list(&fixture.admin, AuditRequest::default()).await.unwrap().events.len(), 5);
    }
}
