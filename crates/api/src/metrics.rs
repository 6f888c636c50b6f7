//! Prometheus metrics: requests and latency per route, served as text at `/metrics`.
//!
//! Every label value comes from a closed set (a known method or `other`; a route pattern,
//! `console` or `unmatched`; a status the server itself answered), so that no request,
//! authenticated or not, can add series without bound.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    audit: Family<AuditLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    /// `recorded`, or `failed` when the store refused the event.
    result: &'static str,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("byos");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        // 1 ms to about 16 s.
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 15)));
        registry.register("http_request_duration_seconds", "HTTP request latency, by route", latency.clone());
        let audit = Family::<AuditLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Changes recorded in the audit log, and those the store refused",
            audit.clone(),
        );
        Metrics { registry, requests, latency, audit }
    }

    /// The registry, for the other parts of the server to add their metrics to at start-up.
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an audit event recorded, or one the store refused.
    pub(crate) fn audit_recorded(&self, recorded: bool) {
        let result = if recorded { "recorded" } else { "failed" };
        self.audit.get_or_create(&AuditLabels { result }).inc();
    }

    fn observe(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let route = route.to_owned();
        self.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        self.latency.get_or_create(&RouteLabels { method, route }).observe(seconds);
    }
}

/// The method as a label: HTTP's standard methods by name, any other as `other`. A client may
/// send any token as a method (`curl -X Z1`), and each distinct value would otherwise be a new
/// counter and histogram kept for the life of the process.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts and times every request under its route pattern (never its concrete path, so ids do
/// not multiply the series), and logs one line for it. Headers are never logged.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None if byos_console::is_console_path(request.uri().path()) => "console".to_owned(),
        None => "unmatched".to_owned(),
    };
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.metrics().observe(&method, &route, status, elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        route,
        status,
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}
