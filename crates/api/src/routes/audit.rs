//! `/api/v1/audit-events`: the audit log, newest first, for admins (see `crate::audit` for what
//! is recorded).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use byos_catalog::AuditEvent;
use byos_service::AuditRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::rfc3339;
use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// A token's id, or its name.
    actor: Option<String>,
    /// An operation id of this document (`create_project`, `temporary_credentials`, ...).
    action: Option<String>,
    /// Events whose target starts with this: `/api/v1/projects/{id}` for all of a project's.
    target: Option<String>,
    /// RFC 3339: events from this time on.
    since: Option<String>,
    /// RFC 3339: events before this time.
    until: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// The token that made a call, named as it was then.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActorView {
    token_id: Uuid,
    name: String,
}

/// One state-changing call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEventView {
    id: Uuid,
    /// When it was answered (RFC 3339).
    at: String,
    actor: ActorView,
    /// The operation's id in this document.
    #[schema(example = "create_project")]
    action: String,
    /// What it acted on: a path of this API, with its query.
    #[schema(example = "/api/v1/projects/0b6f3a52-7c1e-4a8e-9a0e-3f4c2d1b5e6a")]
    target: String,
    /// `succeeded` (2xx), `refused` (4xx) or `failed` (5xx).
    #[schema(example = "succeeded")]
    outcome: &'static str,
    /// The HTTP status of the answer.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// The `x-request-id` of the call, as in the server's log.
    request_id: String,
    /// What the call adds about itself (a vended credential's access, expiry and access key id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    detail: Option<serde_json::Value>,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> AuditEventView {
        let outcome = match e.status {
            200..=399 => "succeeded",
            400..=499 => "refused",
            _ => "failed",
        };
        AuditEventView {
            id: e.id,
            at: rfc3339(e.at),
            actor: ActorView { token_id: e.actor.token, name: e.actor.name.clone() },
            action: e.action.clone(),
            target: e.target.clone(),
            outcome,
            status: e.status,
            source_ip: e.source_ip.clone(),
            user_agent: e.user_agent.clone(),
            request_id: e.request_id.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPage {
    items: Vec<AuditEventView>,
    /// Pass as `pageToken` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// The audit log, newest first: every state-changing call an authenticated caller made (its
/// actor, action, target, outcome, source address, user agent and request id), kept for
/// `audit.retention_days`.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", security(("bearer" = ["admin"])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = "4XX", body = ErrorBody)))]
async fn list_audit_events(
    Admin(caller): Admin,
    state: State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(q) = query.map_err(ApiError::from)?;
    let request = AuditRequest {
        actor: q.actor,
        action: q.action,
        target: q.target,
        since: q.since,
        until: q.until,
        limit: q.limit,
        page_token: q.page_token,
    };
    let page = state.services().audit().list(&caller, request).await?;
    Ok(Json(AuditPage {
        items: page.events.iter().map(AuditEventView::from).collect(),
        next_page_token: page.next_page_token,
    }))
}
