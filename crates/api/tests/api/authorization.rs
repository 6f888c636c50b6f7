//! Walks every route of the OpenAPI document with no token, a bad token, a member token and an
//! admin token. The document is generated from the same registrations as the router, so a new
//! route is walked as soon as it exists.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

/// The tags of System Settings: admins only.
const SYSTEM_SETTINGS: [&str; 3] = ["storage-credentials", "storage-configurations", "tokens"];

/// Admin-only operations outside System Settings.
const ADMIN_OPERATIONS: [(&str, &str); 2] = [("post", "/api/v1/projects"), ("delete", "/api/v1/projects/{id}")];

struct Operation {
    method: Method,
    path: String,
    public: bool,
    admin_only: bool,
    /// A project's own route: a member outside the project is told it does not exist.
    of_a_project: bool,
}

async fn operations(app: &TestApp) -> Vec<Operation> {
    let doc = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let doc = doc.ok(200);
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap_or_else(|| panic!("no paths")) {
        for (method, op) in item.as_object().unwrap_or_else(|| panic!("bad path item")) {
            let tags: Vec<&str> =
                op["tags"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            ops.push(Operation {
                method: method.to_uppercase().parse().unwrap_or_else(|e| panic!("{method}: {e}")),
                // Any id: the walk is about who gets in, not what exists.
                path: path.replace("{id}", "6f1c2b1e-0000-4000-8000-000000000000"),
                public: op.get("security").is_none(),
                admin_only: tags.iter().any(|t| SYSTEM_SETTINGS.contains(t))
                    || ADMIN_OPERATIONS.contains(&(method.as_str(), path.as_str())),
                of_a_project: path.starts_with("/api/v1/projects/{id}"),
            });
        }
    }
    ops
}

#[tokio::test]
async fn every_route_checks_its_caller() {
    let app = TestApp::new().await;
    let member = app.member(&[]).await;
    let ops = operations(&app).await;
    assert!(ops.len() >= 17, "the walk found only {} operations", ops.len());
    let public: Vec<&str> = ops.iter().filter(|o| o.public).map(|o| o.path.as_str()).collect();
    assert_eq!(public, ["/api/v1/openapi.json", "/healthz", "/metrics", "/readyz"], "the public routes");

    for op in &ops {
        let body = (op.method == Method::POST).then(|| json!({}));
        let what = format!("{} {}", op.method, op.path);

        let none = app.call(op.method.clone(), &op.path, None, body.clone()).await;
        let bad = app.call(op.method.clone(), &op.path, Some("byos_not-a-real-token"), body.clone()).await;
        if op.public {
            assert!(none.status.is_success(), "{what} without a token: {}", none.text);
            continue;
        }
        none.error(401, "unauthenticated");
        bad.error(401, "unauthenticated");

        let as_member = app.call(op.method.clone(), &op.path, Some(&member), body.clone()).await;
        if op.admin_only {
            let message = as_member.error(403, "access-forbidden");
            assert!(message.starts_with("Access forbidden: "), "{what}: {message}");
        } else if op.of_a_project {
            as_member.error(404, "not-found");
        } else {
            assert!(as_member.status.is_success(), "{what} as a member: {}", as_member.text);
        }

        let as_admin = app.call(op.method.clone(), &op.path, Some(&app.admin), body).await;
        assert!(
            ![401, 403].contains(&as_admin.status.as_u16()) && as_admin.status.as_u16() < 500,
            "{what} as admin: {}",
            as_admin.text
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let app = TestApp::new().await;
    for header in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", &app.admin, &format!("Token {}", app.admin)] {
        let request = axum::http::Request::get("/api/v1/regions")
            .header("authorization", header)
            .body(axum::body::Body::empty())
            .unwrap();
        app.send(request).await.error(401, "unauthenticated");
    }
    // The scheme is case-insensitive, as HTTP says.
    let request = axum::http::Request::get("/api/v1/regions")
        .header("authorization", format!("bearer {}", app.admin))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(request).await.ok(200);
}

#[tokio::test]
async fn a_deleted_token_stops_working_at_once() {
    let app = TestApp::new().await;
    let reply = app.post("/api/v1/tokens", json!({"name": "short-lived", "role": "admin"})).await;
    let body = reply.ok(201);
    let (id, value) =
        (body["id"].as_str().unwrap_or_default().to_owned(), body["value"].as_str().unwrap_or_default().to_owned());
    app.call(Method::GET, "/api/v1/tokens", Some(&value), None).await.ok(200);
    app.delete(&format!("/api/v1/tokens/{id}")).await.ok(204);
    app.call(Method::GET, "/api/v1/tokens", Some(&value), None).await.error(401, "unauthenticated");
}
