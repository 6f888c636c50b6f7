//! The request id, and the audit log's recorder.
//!
//! Every request gets an id: the caller's `x-request-id` when it is a short token of safe
//! characters (so a proxy's id carries through), otherwise a new UUID. It is answered in
//! `x-request-id`, and every log line of the request is inside the span `request{id=...}`, so a
//! user's report can be matched to the server's log.
//!
//! Every state-changing call (any method but GET, HEAD and OPTIONS, on a route of the OpenAPI
//! document; signing URLs to read or to send an upload's parts is not a change) is recorded in
//! the audit log once it is answered, refusals and failures included: the operation's id is the
//! action, the request's path and query the target (a handler that creates a resource names it
//! instead, with [`AuditNote`]), the answer's status the outcome. The actor is the token the
//! authentication extractors found ([`ActorSlot`]); a call that no token authenticated is not
//! recorded, so an anonymous client cannot grow the log (the metrics count such answers).
//! Bodies are never recorded, so no secret is: what a handler adds ([`AuditNote`]'s detail) is
//! chosen field by field.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use byos_catalog::{AuditActor, AuditEvent};
use byos_domain::ErrorChain;
use byos_service::Caller;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;

/// The header that carries a request's id, both ways.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a caller.
const MAX_REQUEST_ID: usize = 64;

/// The longest user agent kept.
const MAX_USER_AGENT: usize = 256;

/// Operations that are not changes though their method says so: they sign URLs.
const NOT_CHANGES: [&str; 3] = ["sign_parts", "download_url", "download_urls"];

/// The id of a request.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) Arc<str>);

/// Gives the request its id, answers it in `x-request-id`, and runs the request in its span.
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id: Arc<str> = match request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()) {
        Some(id) if acceptable_request_id(id) => id.into(),
        _ => Uuid::new_v4().to_string().into(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Whether a caller's request id may stand as ours: 1 to 64 of `A-Z a-z 0-9 - _ . :`, so that
/// it cannot break a log line or a header.
fn acceptable_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The operations the audit log records, by route pattern and method, with their operation ids.
#[derive(Debug, Default)]
pub(crate) struct Audited {
    actions: HashMap<String, Vec<(Method, String)>>,
}

impl Audited {
    /// The changes among the OpenAPI document's operations.
    pub(crate) fn of(openapi: &utoipa::openapi::OpenApi) -> Audited {
        let mut actions: HashMap<String, Vec<(Method, String)>> = HashMap::new();
        for (path, item) in &openapi.paths.paths {
            let operations = [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(id) = operation.as_ref().and_then(|o| o.operation_id.as_deref()) else { continue };
                if !NOT_CHANGES.contains(&id) {
                    actions.entry(path.clone()).or_default().push((method, id.to_owned()));
                }
            }
        }
        Audited { actions }
    }

    /// The operation id of a change; `None` for a read. Runs on every request: no allocation.
    fn action(&self, method: &Method, route: &str) -> Option<&str> {
        let operations = self.actions.get(route)?;
        operations.iter().find(|(m, _)| m == method).map(|(_, id)| id.as_str())
    }

    /// Every recorded operation's id, for the tests.
    #[cfg(test)]
    fn ids(&self) -> std::collections::BTreeSet<&str> {
        self.actions.values().flatten().map(|(_, id)| id.as_str()).collect()
    }
}

/// Where the authentication extractors put the caller of a recorded call.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActorSlot(Arc<OnceLock<AuditActor>>);

impl ActorSlot {
    pub(crate) fn fill(&self, caller: &Caller) {
        let _ = self.0.set(AuditActor { token: caller.token(), name: caller.name().to_owned() });
    }
}

/// What a handler adds to its call's audit event, as an extension of its response: the resource
/// it created, and details (a JSON object without secrets).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditNote {
    pub(crate) target: Option<String>,
    pub(crate) detail: Option<serde_json::Value>,
    /// The caller, for an operation that authenticates in its handler (signing in).
    pub(crate) actor: Option<AuditActor>,
}

impl AuditNote {
    pub(crate) fn target(target: String) -> AuditNote {
        AuditNote { target: Some(target), ..AuditNote::default() }
    }

    pub(crate) fn detail(detail: serde_json::Value) -> AuditNote {
        AuditNote { detail: Some(detail), ..AuditNote::default() }
    }
}

/// Records a change once it is answered (see the module's documentation).
pub(crate) async fn record(
    State((state, audited)): State<(AppState, Arc<Audited>)>,
    matched: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(action) = audited.action(request.method(), matched.as_str()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let target = normalized(request.uri().path_and_query().map_or(request.uri().path(), |pq| pq.as_str()));
    let source_ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let user_agent = user_agent(request.headers());
    let request_id = request.extensions().get::<RequestId>().map_or_else(String::new, |id| id.0.to_string());

    let response = next.run(request).await;
    let note = response.extensions().get::<AuditNote>().cloned().unwrap_or_default();
    let Some(actor) = note.actor.or_else(|| slot.0.get().cloned()) else {
        return response;
    };
    let event = AuditEvent {
        id: event_id(),
        at: now(),
        actor,
        action,
        target: note.target.unwrap_or(target),
        status: response.status().as_u16(),
        source_ip,
        user_agent,
        request_id,
        detail: note.detail,
    };
    let recorded = state.services().audit().record(&event).await;
    if let Err(e) = &recorded {
        tracing::error!(error = %ErrorChain(e), action = event.action, "cannot record a change in the audit log");
    }
    state.metrics().audit_recorded(recorded.is_ok());
    response
}

/// A new event's id. Events are listed by time in milliseconds, then by id: ids that grow in the
/// order they are made keep the events of one millisecond in the order they were recorded.
fn event_id() -> Uuid {
    Uuid::now_v7()
}

/// A request's path and query with the escapes of unreserved characters undone (RFC 3986's
/// normalisation: `%2D` is `-`), so that one resource has one target however a client wrote
/// it. Every other escape stays, `%00` among them.
fn normalized(target: &str) -> String {
    let bytes = target.as_bytes();
    let mut out = String::with_capacity(target.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| target.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                // `target` came from a URI: it is ASCII.
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let agent = String::from_utf8_lossy(headers.get(USER_AGENT)?.as_bytes()).into_owned();
    Some(match agent.char_indices().nth(MAX_USER_AGENT) {
        Some((end, _)) => agent[..end].to_owned(),
        None => agent,
    })
}

/// The time at the store's resolution (milliseconds).
fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers_are_short_and_plain() {
        assert!(acceptable_request_id("0b6f3a52-7c1e-4a8e-9a0e-3f4c2d1b5e6a"));
        assert!(acceptable_request_id("Root:1-67891233-abcdef012345678912345678"));
        for refused in ["", "a b", "line\nbreak", "é", &"x".repeat(65), "a\"b"] {
            assert!(!acceptable_request_id(refused), "{refused:?}");
        }
    }

    #[test]
    fn targets_undo_only_the_escapes_of_unreserved_characters() {
        assert_eq!(normalized("/api/v1/projects/0b6f%2d3a%2E%5F%7e/folders"), "/api/v1/projects/0b6f-3a._~/folders");
        assert_eq!(normalized("/api/v1/tokens/%00?path=/a%20b%2Fc%"), "/api/v1/tokens/%00?path=/a%20b%2Fc%");
        assert_eq!(normalized("/x%4"), "/x%4");
    }

    #[test]
    fn event_ids_grow_in_the_order_they_are_made() {
        // Thousands are made within one millisecond; random ids would be out of order at once.
        let ids: Vec<Uuid> = (0..10_000).map(|_| event_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0].to_string() < pair[1].to_string()));
    }

    #[test]
    fn every_change_of_the_document_is_recorded_and_reads_are_not() {
        let audited = Audited::of(&crate::api_router().split_for_parts().1);
        let ids = audited.ids();
        for change in ["create_project", "delete_data", "temporary_credentials", "sign_in", "start_copy"] {
            assert!(ids.contains(change), "{change} is not recorded: {ids:?}");
        }
        for read in ["browse", "list_projects", "sign_parts", "download_urls", "list_audit_events"] {
            assert!(!ids.contains(read), "{read} is recorded");
        }
        assert_eq!(audited.action(&Method::DELETE, "/api/v1/projects/{id}"), Some("delete_project"));
        assert_eq!(audited.action(&Method::GET, "/api/v1/projects/{id}"), None);
    }
}
