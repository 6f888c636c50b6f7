//! Regions, the error catalogue, operations routes, unknown routes and methods.

use axum::http::Method;
use byos_domain::{ErrorCode, Region, RegionTable};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn regions_are_the_table() {
    let app = TestApp::new().await;
    let reply = app.get("/api/v1/regions").await;
    let items = reply.ok(200)["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 12);
    assert_eq!(
        items[2],
        json!({"code": "EU", "name": "Germany", "awsRegion": "eu-central-1",
               "crossAccountRoleArn": "arn:aws:iam::079623148045:role/ica_euc1_crossacct"})
    );
    assert!(items[8]["note"].as_str().is_some_and(|n| n.contains("BSSH")), "South Korea's note");
}

#[tokio::test]
async fn a_configured_region_table_replaces_the_builtin_one() {
    let table = RegionTable::new(vec![Region {
        code: "IE".to_owned(),
        name: "Ireland".to_owned(),
        aws_region: "eu-west-1".to_owned(),
        cross_account_role_arn: "arn:aws:iam::123456789012:role/copy".to_owned(),
        note: None,
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::with_regions(table).await;
    assert_eq!(app.count("/api/v1/regions").await, 1);
    let credential = app.user_credential("cred", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").await;
    let mut body = crate::support::configuration("frankfurt", &credential);
    let message = app.post("/api/v1/storage-configurations", body.clone()).await.error(400, "region-not-supported");
    assert_eq!(message, "Storage container must be located in one of the following regions: eu-west-1");
    body["region"] = json!("eu-west-1");
    app.post("/api/v1/storage-configurations", body).await.ok(201);
}

#[tokio::test]
async fn the_catalogue_is_served_whole() {
    let app = TestApp::new().await;
    let reply = app.get("/api/v1/errors").await;
    let items = reply.ok(200)["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), ErrorCode::ALL.len());
    let conflict = items.iter().find(|e| e["code"] == json!("customer-notification-exists")).cloned();
    assert_eq!(
        conflict.map(|e| e["message"].clone()),
        Some(json!(
            "Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification"
        ))
    );
    for entry in &items {
        for field in ["type", "code", "message", "fix"] {
            assert!(entry[field].as_str().is_some_and(|s| !s.is_empty()), "{entry}");
        }
        assert!(entry["status"].as_u64().is_some_and(|s| (400..600).contains(&s)), "{entry}");
    }
}

#[tokio::test]
async fn operations_routes_answer() {
    let app = TestApp::new().await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.ok(200), &json!({"status": "ok"}));
    assert_eq!(app.call(Method::GET, "/readyz", None, None).await.ok(200), &json!({"status": "ready"}));
    app.get("/api/v1/regions").await.ok(200);
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status.as_u16(), 200);
    assert!(
        metrics.text.contains(r#"byos_http_requests_total{method="GET",route="/api/v1/regions",status="200"} 1"#),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("byos_http_request_duration_seconds_bucket"), "{}", metrics.text);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_catalogue_errors() {
    let app = TestApp::new().await;
    let message = app.get("/api/v1/nothing-here").await.error(404, "route-not-found");
    assert_eq!(message, "No API route at /api/v1/nothing-here");
    let message =
        app.call(Method::PUT, "/api/v1/regions", Some(&app.admin), None).await.error(405, "method-not-allowed");
    assert_eq!(message, "PUT is not allowed on /api/v1/regions");
}

#[tokio::test]
async fn internal_errors_show_an_id_and_log_the_cause() {
    let app = TestApp::new().await;
    app.state.store().close().await;
    let reply = app.get("/api/v1/storage-credentials").await;
    let message = reply.error(500, "internal");
    let id = message.strip_prefix("Internal error ").unwrap_or_else(|| panic!("{message}"));
    assert_eq!(id.len(), 32, "{message}");
    assert!(!reply.text.to_lowercase().contains("pool"), "no internals in the body: {}", reply.text);
    let log = crate::support::captured_log();
    let line = log.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("the id {id} is not in the log"));
    assert!(line.contains("database error"), "the cause is logged: {line}");
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    ready.error(503, "service-unavailable");
}
