//! The byos HTTP API: the axum router, authentication, the OpenAPI document and the metrics,
//! over the rules of `byos-service`.
//!
//! Every route is registered through `utoipa-axum`, so the OpenAPI document lists exactly the
//! routes the router serves; the authorization test walks that document.

mod auth;
mod error;
mod extract;
mod metrics;
mod routes;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use byos_catalog::Store;
use byos_domain::RegionTable;
use byos_lifecycle::Lifecycle;
use byos_secrets::MasterKey;
use byos_service::Services;
use byos_sync::SyncEngine;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Admin, Principal};
// What a server does once on its store, for the binary that starts it.
pub use byos_service::{BootstrapError, FirstStart, check_master_key, ensure_admin_token};
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
}

impl AppState {
    pub fn new(
        store: Store,
        master_key: MasterKey,
        regions: RegionTable,
        lifecycle: Lifecycle,
        sync: SyncEngine,
    ) -> AppState {
        let mut metrics = Metrics::new();
        lifecycle.register_metrics(metrics.registry_mut());
        sync.register_metrics(metrics.registry_mut());
        let services = Services::new(store, master_key, regions, lifecycle, sync);
        AppState { inner: Arc::new(Inner { services, metrics }) }
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
        (name = "projects", description = "Projects, their data and its sync with the bucket"),
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
    let (router, _) = api_router().split_for_parts();
    let mut router = router
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    // Inside the metrics layer, so that a request that timed out is counted with its 503.
    if let Some(limit) = request_timeout {
        router = router.layer(axum::middleware::from_fn_with_state(limit, timeout::limit));
    }
    router.layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track)).with_state(state)
}

/// The OpenAPI document, as served at `/api/v1/openapi.json` (pretty-printed).
pub fn openapi_json() -> String {
    let (_, openapi) = api_router().split_for_parts();
    let mut json = openapi.to_pretty_json().unwrap_or_else(|e| unreachable!("the document serializes: {e}"));
    json.push('\n');
    json
}
