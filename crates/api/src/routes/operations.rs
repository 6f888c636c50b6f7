//! Public operational routes: liveness, readiness, metrics and the OpenAPI document. They need
//! no token, so that load balancers, Prometheus and API clients' generators can reach them.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use byos_domain::{ErrorChain, ErrorCode, Problem};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Status), (status = 503, body = ErrorBody)))]
async fn readyz(state: State<AppState>) -> ApiResult<Json<Status>> {
    state.store().meta.ping().await.map_err(|e| {
        tracing::warn!(error = %ErrorChain(&e), "readiness check failed");
        ApiError::from(Problem::new(ErrorCode::ServiceUnavailable, &[("message", "the database does not answer")]))
    })?;
    Ok(Json(Status { status: "ready" }))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(state: State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics().encode())
}

/// The API's OpenAPI document: every route the server serves, this one included.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi_document() -> impl IntoResponse {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(crate::openapi_json);
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
