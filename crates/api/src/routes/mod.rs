//! The API's routes, one module per resource. Each module holds its request and response
//! bodies (from which the OpenAPI document is generated) and its handlers, which only extract
//! (the caller and the input), call `byos-service`, and map the answer to a body. The rules,
//! who may see what among them, live in the services, for every interface.

mod audit;
mod configurations;
mod credentials;
mod data;
mod jobs;
mod operations;
mod projects;
mod reference;
mod session;
mod tokens;
mod uploads;

use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(credentials::router())
        .merge(configurations::router())
        .merge(tokens::router())
        .merge(session::router())
        .merge(projects::router())
        .merge(data::router())
        .merge(uploads::router())
        .merge(jobs::router())
        .merge(reference::router())
        .merge(audit::router())
        .merge(operations::router())
}

/// A time as the API shows it: RFC 3339 in UTC.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A response whose body carries a secret (a new token's value, vended credentials): sent with
/// `Cache-Control: no-store`, so that no browser, proxy or client cache keeps a copy of it.
#[derive(Debug)]
pub(crate) struct NoStore<T>(pub(crate) T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A list response: `{"items": [...]}`, so that paging can be added without breaking clients.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Items<T> {
    items: Vec<T>,
}
