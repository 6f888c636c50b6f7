//! Bad input on every endpoint that takes a body: malformed, oversized, wrong-typed, unknown
//! fields, no content type. Each gets a typed 4xx, never a 5xx, and nothing is written.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::support::{TestApp, configuration, id_of};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// What the store holds, as the list routes show it.
async fn snapshot(app: &TestApp) -> String {
    let mut state = String::new();
    for path in ["/api/v1/storage-credentials", "/api/v1/storage-configurations", "/api/v1/tokens"] {
        state.push_str(&app.get(path).await.text);
    }
    state
}

fn raw(app: &TestApp, path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap_or_else(|e| panic!("{e}"))
}

/// What is sent (a name, the content type, the body) and what must come back (status, code, and
/// a part of the message).
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, Option<&'a str>);

#[tokio::test]
async fn every_body_endpoint_refuses_bad_input_cleanly() {
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let configuration_id =
        id_of(app.post("/api/v1/storage-configurations", configuration("genomics", &credential)).await.ok(201));
    // Each endpoint, and a string field of its body.
    let endpoints = [
        ("/api/v1/storage-credentials".to_owned(), "name"),
        (format!("/api/v1/storage-credentials/{credential}/rotate"), "externalId"),
        ("/api/v1/storage-configurations".to_owned(), "bucket"),
        ("/api/v1/tokens".to_owned(), "role"),
    ];
    let before = snapshot(&app).await;
    let json = Some("application/json");
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(byos_api::BODY_LIMIT_BYTES));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<Case<'_>> = vec![
        ("truncated JSON", json, b"{\"name\": ".to_vec(), 400, "invalid-request", Some("body: ")),
        ("not JSON", json, b"name=x".to_vec(), 400, "invalid-request", None),
        ("an array", json, b"[1, 2]".to_vec(), 400, "invalid-request", None),
        ("an unknown field", json, br#"{"nmae": "x"}"#.to_vec(), 400, "invalid-request", Some("unknown field `nmae`")),
        ("empty", json, Vec::new(), 400, "invalid-request", None),
        ("not UTF-8", json, vec![b'{', 0xff, 0xfe, b'}'], 400, "invalid-request", None),
        ("deeply nested", json, deep.into_bytes(), 400, "invalid-request", None),
        ("no content type", None, br#"{"name": "x"}"#.to_vec(), 415, "unsupported-media-type", None),
        ("a text content type", Some("text/plain"), br#"{"name": "x"}"#.to_vec(), 415, "unsupported-media-type", None),
        ("oversized", json, oversized.into_bytes(), 413, "payload-too-large", Some("65536 bytes")),
    ];
    for (endpoint, field) in &endpoints {
        let wrong_type = app.send(raw(&app, endpoint, json, format!("{{\"{field}\": 5}}"))).await;
        let message = wrong_type.error(400, "invalid-request");
        assert!(
            message.contains(&format!("{field}: invalid type: integer `5`, expected a string")),
            "{endpoint}: {message}"
        );
        for (what, content_type, body, status, code, contains) in &cases {
            let reply = app.send(raw(&app, endpoint, *content_type, body.clone())).await;
            let message = reply.error(*status, code);
            if let Some(part) = contains {
                assert!(message.contains(part), "{endpoint} with {what}: {message}");
            }
        }
    }
    // Wrong types in nested and optional fields are caught too.
    let nested = json!({"name": "nested", "region": "eu-central-1", "bucket": "b-b-b", "credentialId": credential,
                        "serverSideEncryption": {"algorithm": 1}});
    let message = app.post("/api/v1/storage-configurations", nested).await.error(400, "invalid-request");
    assert!(message.contains("serverSideEncryption.algorithm"), "{message}");
    let message = app
        .post("/api/v1/storage-configurations", json!({"name": "flag", "defaultForRegion": "yes"}))
        .await
        .error(400, "invalid-request");
    assert!(message.contains("defaultForRegion"), "{message}");
    let message = app
        .post("/api/v1/tokens", json!({"name": "t", "role": "member", "projects": "all"}))
        .await
        .error(400, "invalid-request");
    assert!(message.contains("projects"), "{message}");

    assert_eq!(snapshot(&app).await, before, "bad input wrote nothing");
    app.get(&format!("/api/v1/storage-configurations/{configuration_id}")).await.ok(200);
}

#[tokio::test]
async fn bad_ids_in_paths_are_refused() {
    let app = TestApp::new().await;
    for path in ["/api/v1/storage-credentials/not-a-uuid", "/api/v1/storage-configurations/%00", "/api/v1/tokens/123"] {
        app.get(path).await.error(400, "invalid-request");
        app.delete(path).await.error(400, "invalid-request");
    }
    app.post("/api/v1/storage-credentials/x/rotate", json!({})).await.error(400, "invalid-request");
}
