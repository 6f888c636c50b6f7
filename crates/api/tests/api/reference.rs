//! Regions, the error catalogue, operations routes, unknown routes and methods.

use axum::http::Method;
use byos_domain::{ErrorCode, Problem, Region, RegionTable};
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
    .unwrap();
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

/// The seed's troubleshooting table (ICA's guide), as PRODUCT.md quotes it: type and message,
/// with the seed's "Invalid Paramater" spelled right. Messages with `{...}` are templates.
const SEED_TABLE: [(&str, &str); 20] = [
    ("Access Forbidden", "Access forbidden: {message}"),
    ("Conflict", "System topic is not in a valid state"),
    ("Conflict", "Found conflicting storage container notifications with overlapping prefixes"),
    ("Conflict", "Found conflicting storage container notifications for {prefix}{eventTypeMsg}"),
    (
        "Conflict",
        "Found conflicting storage container notifications with overlapping prefixes{prefixMsg}{eventTypeMsg}",
    ),
    (
        "Customer Container Notification Exists",
        "Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification",
    ),
    (
        "Invalid Access Key ID",
        "Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records.",
    ),
    ("Invalid Parameter", "Missing credentials for storage container"),
    ("Invalid Parameter", "Missing bucket name for storage container"),
    ("Invalid Parameter", "The storage container name has invalid characters"),
    ("Invalid Parameter", "Storage Container '{storageContainer}' does not exist"),
    ("Invalid Parameter", "Invalid parameters for volume configuration: {message}"),
    ("Invalid Storage Container Location", "Storage container must be located in the {region} region"),
    (
        "Invalid Storage Container Location",
        "Storage container must be located in one of the following regions: {regions}",
    ),
    ("Missing Configuration", "Missing queue name for storage container notification"),
    ("Missing Configuration", "Missing system topic name for storage container notification"),
    ("Missing Configuration", "Missing lambda ARN for storage container notification"),
    ("Missing Configuration", "Missing subscription name for storage container notification"),
    (
        "Missing Storage Account Settings",
        "The storage account '{storageAccountName}' needs HNS (Hierarchical Namespace) enabled.",
    ),
    ("Missing Storage Container Settings", "Missing settings for storage container"),
];

/// A user who searches `GET /api/v1/errors` for the exact text they saw finds it: every row of
/// the seed's table is an entry of its type with that message, verbatim.
#[tokio::test]
async fn every_seed_message_is_served_verbatim() {
    let app = TestApp::new().await;
    let reply = app.get("/api/v1/errors").await;
    let items = reply.ok(200)["items"].as_array().cloned().unwrap_or_default();
    let served: Vec<(&str, &str)> = items
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default()))
        .collect();
    for (error_type, message) in SEED_TABLE {
        assert!(
            served.contains(&(error_type, message)),
            "GET /api/v1/errors has no entry `{error_type} | {message}`; of type {error_type} it has {:?}",
            served.iter().filter(|(t, _)| *t == error_type).map(|(_, m)| m).collect::<Vec<_>>()
        );
    }
    // The seed's troubleshooting text shows two rendered messages. The conflict the platform
    // finds itself is named by the table's entries for it; S3's refusal of the write keeps S3's
    // words in `notification-rejected` (byos-lifecycle's `problems` tests render it).
    let rendered =
        Problem::invalid_parameters("found conflicting storage container notifications with overlapping prefixes");
    assert_eq!(
        rendered.message(),
        "Invalid parameters for volume configuration: found conflicting storage container notifications with overlapping prefixes"
    );
    let rejected = Problem::new(
        ErrorCode::NotificationRejected,
        &[("message", "Configurations overlap. Configurations on the same bucket cannot share a common event type")],
    );
    assert_eq!(
        rejected.message(),
        "Failed to update bucket policy: Configurations overlap. Configurations on the same bucket cannot share a common event type"
    );
    let search = "found conflicting storage container notifications with overlapping prefixes";
    let found: Vec<&str> = items
        .iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.to_lowercase().contains(search)))
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert_eq!(found, ["notification-prefix-overlap", "notification-overlap"], "a search for the seed's words");
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
