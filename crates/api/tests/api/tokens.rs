//! `/api/v1/tokens`.

use serde_json::json;

use crate::support::{TestApp, id_of};

#[tokio::test]
async fn a_token_value_is_shown_once() {
    let app = TestApp::new().await;
    let project = "0b6b3c1e-1111-4222-8333-444455556666";
    let reply = app.post("/api/v1/tokens", json!({"name": "ci", "role": "member", "projects": [project]})).await;
    let created = reply.ok(201);
    let value = created["value"].as_str().unwrap_or_default();
    assert!(value.starts_with("byos_") && value.len() > 40, "{created}");
    assert_eq!(created["role"], json!("member"));
    assert_eq!(created["projects"], json!([project]));
    assert!(value.starts_with(created["hint"].as_str().unwrap_or("-")));

    let id = id_of(created);
    let fetched = app.get(&format!("/api/v1/tokens/{id}")).await;
    assert!(fetched.ok(200).get("value").is_none(), "{}", fetched.text);
    assert!(!fetched.text.contains(value));
    let listed = app.get("/api/v1/tokens").await;
    assert!(!listed.text.contains(value));
    assert_eq!(listed.ok(200)["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn token_requests_are_checked() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"role": "admin"}), "Invalid request: name: required"),
        (json!({"name": "x"}), "Invalid request: role: required"),
        (json!({"name": "x", "role": "root"}), "Invalid request: role: \"root\" is not admin or member"),
        (
            json!({"name": "x", "role": "member", "projects": ["p1"]}),
            "Invalid request: projects: \"p1\" is not a project id",
        ),
        (
            json!({"name": "x", "role": "admin", "projects": ["0b6b3c1e-1111-4222-8333-444455556666"]}),
            "Invalid request: projects: an admin token reaches every project; list projects for member tokens only",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(app.post("/api/v1/tokens", body).await.error(400, "invalid-request"), message);
    }
    assert_eq!(app.count("/api/v1/tokens").await, 1);
}

#[tokio::test]
async fn the_last_admin_token_cannot_be_deleted() {
    let app = TestApp::new().await;
    let tokens = app.get("/api/v1/tokens").await;
    let first = id_of(&tokens.ok(200)["items"][0]);
    let message = app.delete(&format!("/api/v1/tokens/{first}")).await.error(409, "last-admin-token");
    assert_eq!(message, "Token 'first admin' is the last admin token and cannot be deleted");
    let missing = app.delete("/api/v1/tokens/6f1c2b1e-0000-4000-8000-000000000000").await.error(404, "not-found");
    assert_eq!(missing, "Token '6f1c2b1e-0000-4000-8000-000000000000' does not exist");
}
