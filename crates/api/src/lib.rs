//! The byos HTTP API: the axum router, authentication, the OpenAPI document and the metrics,
//! over the rules of `byos-service`.
//!
//! Every route is registered through `utoipa-axum`, so the OpenAPI document lists exactly the
//! routes the router serves; the authorization test walks that document.

mod audit;
mod auth;
mod error;
mod extract;
mod metrics;
mod routes;
mod timeout;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use byos_catalog::Store;
use byos_secrets::MasterKey;
use byos_service::Services;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Admin, InProject, Principal};
// What a server does once on its store, for the binary that starts it.
pub use byos_service::{
    BootstrapError, CopySettings, DataSettings, FirstStart, JobEngine, JobSettings, Parts, Read, UploadSettings,
    check_master_key, ensure_admin_token,
};
pub use error::{ApiError, ErrorBody};
use metrics::Metrics;

/// The largest request body the API reads. Its bodies are small JSON documents.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler can reach: the services, and the metrics. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    services: Services,
    metrics: Metrics,
    /// The Content-Security-Policy of every answer.
    csp: HeaderValue,
}

impl AppState {
    pub fn new(parts: Parts) -> AppState {
        let mut metrics = Metrics::new();
        parts.lifecycle.register_metrics(metrics.registry_mut());
        parts.sync.register_metrics(metrics.registry_mut());
        parts.jobs.register_metrics(metrics.registry_mut());
        parts.buckets.aws().register_metrics(metrics.registry_mut());
        // Presigned URLs point at AWS's S3, or at the endpoint that replaces it: the console
        // uploads there from the browser.
        let mut storage = vec!["https://*.amazonaws.com".to_owned()];
        storage.extend(parts.buckets.aws().endpoint_url().and_then(origin));
        let csp = HeaderValue::from_str(&byos_console::content_security_policy(&storage))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
        let services = Services::new(parts);
        AppState { inner: Arc::new(Inner { services, metrics, csp }) }
    }

    /// The rules the handlers call.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    pub fn store(&self) -> &Store {
        self.inner.services.store()
    }

    pub fn master_key(&self) -> &MasterKey {
        self.inner.services.master_key()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "byos",
        description = "Bring your own storage: connect customers' S3 buckets to a data platform."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "storage-credentials", description = "System Settings > Storage > Credentials"),
        (name = "storage-configurations", description = "System Settings > Storage > Configurations"),
        (name = "tokens", description = "API tokens"),
        (name = "session", description = "The console's sign-in: a session cookie instead of a bearer token"),
        (name = "projects", description = "Projects, their data and its sync with the bucket"),
        (name = "uploads", description = "Uploads straight to the bucket, single or in parts"),
        (name = "jobs", description = "Long operations on a project's data (a folder's delete), as they run"),
        (name = "audit", description = "The audit log: who changed what, and when"),
        (name = "reference", description = "Regions and the error catalogue"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::router())
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    app(state, None)
}

/// The whole HTTP application as the server runs it: a request that takes longer than
/// `request_timeout` is answered with the catalogue's `request-timeout`, and counted.
pub fn router_with_request_timeout(state: AppState, request_timeout: Duration) -> Router {
    app(state, Some(request_timeout))
}

fn app(state: AppState, request_timeout: Option<Duration>) -> Router {
    let (router, openapi) = api_router().split_for_parts();
    let audited = Arc::new(audit::Audited::of(&openapi));
    let mut router = documented_only(router, &openapi)
        .route_layer(axum::middleware::from_fn_with_state((state.clone(), audited), audit::record))
        .fallback(console_or_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    // Inside the metrics layer, so that a request that timed out is counted with its 503.
    if let Some(limit) = request_timeout {
        router = router.layer(axum::middleware::from_fn_with_state(limit, timeout::limit));
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security_headers))
        // Outermost, so that every log line of a request, the metrics' included, has its id.
        .layer(axum::middleware::from_fn(audit::request_id))
        .with_state(state)
}

/// What no route of the API answers: a page or an asset of the console (GET), or the
/// catalogue's `route-not-found`.
async fn console_or_not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if byos_console::is_console_path(path) && matches!(method, Method::GET | Method::HEAD) {
        return byos_console::respond(path, &headers);
    }
    error::route_not_found(uri).await.into_response()
}

/// The headers every answer carries, API and console alike: the Content-Security-Policy, no
/// MIME sniffing, no referrer (console URLs name projects and paths), no framing.
async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, state.inner.csp.clone());
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}"))
}

/// Serves only the routes of the OpenAPI document: a route registered by hand (axum's `route`,
/// even on the `OpenApiRouter`) is answered as an unknown route, and logged as an error. The
/// authorization walk and the bad-input tests derive what they call from the document, so a
/// route outside it would escape them; this way it cannot be served either.
fn documented_only<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    openapi: &utoipa::openapi::OpenApi,
) -> Router<S> {
    let documented: Arc<HashSet<String>> = Arc::new(openapi.paths.paths.keys().cloned().collect());
    router.route_layer(axum::middleware::from_fn(move |matched: MatchedPath, request: Request, next: Next| {
        let documented = documented.clone();
        async move {
            if documented.contains(matched.as_str()) {
                return next.run(request).await;
            }
            tracing::error!(
                route = matched.as_str(),
                "a route outside the OpenAPI document was called; register it with utoipa-axum's routes!"
            );
            error::route_not_found(request.uri().clone()).await.into_response()
        }
    }))
}

/// The OpenAPI document, as served at `/api/v1/openapi.json` (pretty-printed).
pub fn openapi_json() -> String {
    let (_, openapi) = api_router().split_for_parts();
    let mut json = openapi.to_pretty_json().unwrap_or_else(|e| unreachable!("the document serializes: {e}"));
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A documented route.
    #[utoipa::path(get, path = "/api/v1/documented", responses((status = 200)))]
    async fn documented() -> &'static str {
        "documented"
    }

    #[tokio::test]
    async fn a_route_outside_the_openapi_document_is_not_served() {
        let api: OpenApiRouter = OpenApiRouter::new()
            .routes(utoipa_axum::routes!(documented))
            .route("/api/v1/by-hand/{id}", get(|| async { "secret" }));
        let (router, openapi) = api.split_for_parts();
        let router = documented_only(router, &openapi);
        let status = |path: &'static str| {
            let router = router.clone();
            async move {
                let request = axum::http::Request::get(path).body(Body::empty()).unwrap_or_default();
                router.oneshot(request).await.map(|r| r.status()).unwrap_or(StatusCode::IM_A_TEAPOT)
            }
        };
        assert_eq!(status("/api/v1/documented").await, StatusCode::OK);
        assert_eq!(status("/api/v1/by-hand/1").await, StatusCode::NOT_FOUND);
    }
}
