//! The request timeout: a request whose handler has not answered within the limit gets the
//! catalogue's `request-timeout` (503) instead of holding its connection forever.
//!
//! The limit covers the handler up to its response's head; every route answers with a body
//! that is complete by then (no streaming route exists). Cancelling a handler is safe: a store
//! transaction that is dropped rolls back, and a lease that is not released expires by itself.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use byos_domain::{ErrorCode, Problem};

use crate::ApiError;

pub(crate) async fn limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%method, path, seconds = limit.as_secs_f64(), "a request did not finish in time");
            let shown = format!("{} s", limit.as_secs_f64());
            ApiError::from(Problem::new(ErrorCode::RequestTimeout, &[("limit", &shown)])).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/never", axum::routing::get(std::future::pending::<&'static str>))
            .route("/at-once", axum::routing::get(|| async { "done" }))
            .layer(axum::middleware::from_fn_with_state(Duration::from_secs(1), super::limit))
    }

    async fn get(path: &str) -> (u16, Vec<u8>) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn a_request_that_never_finishes_gets_the_catalogue_entry() {
        let (status, body) = get("/never").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 503);
        assert_eq!(body["code"], json!("request-timeout"));
        assert_eq!(body["type"], json!("Service Unavailable"));
        assert_eq!(body["message"], json!("The request did not finish within the server's limit of 1 s"));
        assert!(body["fix"].as_str().is_some_and(|f| f.contains("server.request_timeout_seconds")), "{body}");
        assert_eq!(get("/at-once").await, (200, b"done".to_vec()));
    }
}
