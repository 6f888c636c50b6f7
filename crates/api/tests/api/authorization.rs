//! Walks every route of the OpenAPI document with no token, a bad token, member tokens (of
//! another project, with read access, with read-write access) and an admin token, on a real
//! project. The document is generated from the same registrations as the router, so a new route
//! is walked as soon as it exists; a route outside the document is not served at all (the API
//! crate's `a_route_outside_the_openapi_document_is_not_served`).

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, project, ready_configuration};

/// What a route needs, as its security scope in the OpenAPI document says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// No token at all.
    Nothing,
    /// Any valid token.
    AnyToken,
    /// An admin token (scope `admin`).
    Admin,
    /// Read access to the project of the path (scope `project:read`).
    ProjectRead,
    /// Read-write access to the project of the path (scope `project:read-write`).
    ProjectWrite,
}

struct Operation {
    method: Method,
    /// As the document writes it, `{id}` and all.
    template: String,
    needs: Needs,
}

impl Operation {
    /// The path with `project` as its `{id}` (or `job` on a job's route, which belongs to the
    /// project), and any other parameter a made-up value.
    fn path(&self, project: &str, job: &str) -> String {
        let id = if self.is_job() { job } else { project };
        let mut path = self.template.replace("{id}", id);
        while let Some(start) = path.find('{') {
            let end = path[start..].find('}').map_or(path.len(), |e| start + e + 1);
            path.replace_range(start..end, "6f1c2b1e-0000-4000-8000-000000000000");
        }
        path
    }

    fn what(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn is_job(&self) -> bool {
        self.template.starts_with("/api/v1/jobs/{id}")
    }
}

async fn operations(app: &TestApp) -> Vec<Operation> {
    let doc = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let doc = doc.ok(200);
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap_or_else(|| panic!("no paths")) {
        for (method, op) in item.as_object().unwrap_or_else(|| panic!("bad path item")) {
            let what = format!("{method} {path}");
            let scopes: Option<Vec<&str>> = op.get("security").map(|security| {
                let bearer = security.as_array().and_then(|s| s.first()).map(|s| &s["bearer"]);
                let scopes = bearer.and_then(Value::as_array).unwrap_or_else(|| panic!("{what}: no bearer scheme"));
                scopes.iter().filter_map(Value::as_str).collect()
            });
            let needs = match scopes.as_deref() {
                None => Needs::Nothing,
                Some([]) => Needs::AnyToken,
                Some(["admin"]) => Needs::Admin,
                Some(["project:read"]) => Needs::ProjectRead,
                Some(["project:read-write"]) => Needs::ProjectWrite,
                Some(other) => panic!("{what}: unknown scopes {other:?}"),
            };
            // A project's routes (and its jobs') say what access they need; the walk checks
            // they enforce it.
            if path.starts_with("/api/v1/projects/{id}") || path.starts_with("/api/v1/jobs/{id}") {
                assert!(
                    matches!(needs, Needs::Admin | Needs::ProjectRead | Needs::ProjectWrite),
                    "{what}: a project's route declares project:read, project:read-write or admin, not {needs:?}"
                );
            }
            ops.push(Operation {
                method: method.to_uppercase().parse().unwrap_or_else(|e| panic!("{method}: {e}")),
                template: path.clone(),
                needs,
            });
        }
    }
    ops
}

/// `true` when a reply says the caller got in: neither 401 nor 403, and not a project that
/// does not exist.
fn let_in(reply: &crate::support::Reply) -> bool {
    let status = reply.status.as_u16();
    let no_project = status == 404 && reply.body["message"].as_str().is_some_and(|m| m.starts_with("Project '"));
    ![401, 403].contains(&status) && !no_project && status < 500
}

#[tokio::test]
async fn every_route_checks_its_caller() {
    let app = TestApp::new().await;
    let configuration = ready_configuration(&app, "walk").await;
    // Project B holds data the walk must never see from project A.
    let (a, b) =
        (project(&app, "project a", &configuration, "a").await, project(&app, "project b", &configuration, "b").await);
    // A job of project B: the delete of a folder the catalog holds. No worker runs here, so it
    // stays queued until the walk cancels it.
    let b_id: uuid::Uuid = b.parse().unwrap_or_default();
    let folder = byos_catalog::KeyUpdate::Observed {
        key: "old-runs/".to_owned(),
        observation: byos_domain::objects::Observation {
            as_of_ms: 1,
            versions: vec![byos_domain::objects::ObservedVersion {
                version_id: byos_domain::objects::NULL_VERSION.to_owned(),
                kind: byos_domain::objects::VersionKind::Object { size: 0, etag: "e".to_owned(), storage_class: None },
                last_modified_ms: 1,
                restore: None,
            }],
        },
        fence: None,
    };
    app.state.store().data.apply(b_id, &[folder]).await.unwrap_or_else(|e| panic!("{e}"));
    let reply = app.delete(&format!("/api/v1/projects/{b}/data?path=/old-runs/")).await;
    let job = reply.ok(202)["id"].as_str().unwrap_or_default().to_owned();
    let outsider = app.member(&[&a]).await;
    let reader = app.member_with(json!([{"id": b, "access": "read"}])).await;
    let writer = app.member_with(json!([{"id": b, "access": "read-write"}])).await;
    let ops = operations(&app).await;
    assert!(ops.len() >= 17, "the walk found only {} operations", ops.len());
    let public: Vec<&str> = ops.iter().filter(|o| o.needs == Needs::Nothing).map(|o| o.template.as_str()).collect();
    assert_eq!(
        public,
        ["/api/v1/openapi.json", "/api/v1/session", "/healthz", "/metrics", "/readyz"],
        "the public routes"
    );
    for needs in [Needs::ProjectRead, Needs::ProjectWrite, Needs::Admin] {
        assert!(ops.iter().any(|o| o.needs == needs), "no route needs {needs:?}");
    }

    for op in &ops {
        let body = (op.method != Method::GET && op.method != Method::DELETE).then(|| json!({}));
        let what = op.what();
        let path = op.path(&b, &job);
        let app = &app;
        let call = |token: Option<&String>| {
            let (method, path, body, token) = (op.method.clone(), path.clone(), body.clone(), token.cloned());
            async move { app.call(method, &path, token.as_deref(), body).await }
        };

        let (none, bad) = (call(None).await, call(Some(&"byos_not-a-real-token".to_owned())).await);
        if op.needs == Needs::Nothing && op.method == Method::POST && op.template == "/api/v1/session" {
            // Signing in takes a token in its body, and refuses what a bearer token would.
            none.error(400, "invalid-request");
            continue;
        }
        if op.needs == Needs::Nothing {
            assert!(none.status.is_success(), "{what} without a token: {}", none.text);
            continue;
        }
        none.error(401, "unauthenticated");
        bad.error(401, "unauthenticated");

        let as_outsider = call(Some(&outsider)).await;
        let (as_reader, as_writer) = (call(Some(&reader)).await, call(Some(&writer)).await);
        match op.needs {
            Needs::Nothing => unreachable!(),
            // A route for any token whose body names the projects (a copy job) checks them
            // itself: the walk's empty body is refused as such, not as a token's lack of access.
            Needs::AnyToken if body.is_some() => {
                as_outsider.error(400, "invalid-request");
            }
            Needs::AnyToken => {
                assert!(as_outsider.status.is_success(), "{what} as a member: {}", as_outsider.text);
            }
            Needs::Admin => {
                for reply in [&as_outsider, &as_reader, &as_writer] {
                    let message = reply.error(403, "access-forbidden");
                    assert!(message.starts_with("Access forbidden: "), "{what}: {message}");
                }
            }
            Needs::ProjectRead | Needs::ProjectWrite => {
                // A member of project A learns nothing of project B, not even that it exists.
                let message = as_outsider.error(404, "not-found");
                let missing = if op.is_job() { format!("Job '{job}'") } else { format!("Project '{b}'") };
                assert_eq!(message, format!("{missing} does not exist"), "{what}");
                assert!(let_in(&as_writer), "{what} with read-write access: {}", as_writer.text);
                if op.needs == Needs::ProjectWrite {
                    let message = as_reader.error(403, "access-forbidden");
                    assert!(message.contains("needs read-write access"), "{what}: {message}");
                } else {
                    assert!(let_in(&as_reader), "{what} with read access: {}", as_reader.text);
                }
            }
        }
    }

    // Admins get in everywhere. Deletes go last, the project's own last of all, so that project
    // B exists for every other call.
    let mut by_admin: Vec<&Operation> = ops.iter().filter(|o| o.needs != Needs::Nothing).collect();
    by_admin.sort_by_key(|o| (o.method == Method::DELETE, std::cmp::Reverse(o.template.len())));
    for op in by_admin {
        let body = (op.method != Method::GET && op.method != Method::DELETE).then(|| json!({}));
        let as_admin = app.call(op.method.clone(), &op.path(&b, &job), Some(&app.admin), body).await;
        assert!(let_in(&as_admin), "{} as admin: {}", op.what(), as_admin.text);
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
