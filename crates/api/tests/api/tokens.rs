//! `/api/v1/tokens`.

use axum::http::Method;
use axum::http::header::CACHE_CONTROL;
use byos_catalog::{NewToken, Token};
use byos_domain::{Role, TokenName};
use byos_secrets::ApiToken;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{TestApp, empty_store, id_of};

#[tokio::test]
async fn a_token_value_is_shown_once() {
    let app = TestApp::new().await;
    let project = "0b6b3c1e-1111-4222-8333-444455556666";
    let reader = "1c7d4d2f-2222-4333-8444-555566667777";
    let grants = json!([project, {"id": reader, "access": "read"}]);
    let reply = app.post("/api/v1/tokens", json!({"name": "ci", "role": "member", "projects": grants})).await;
    let created = reply.ok(201);
    let value = created["value"].as_str().unwrap_or_default();
    assert!(value.starts_with("byos_") && value.len() > 40, "{created}");
    assert_eq!(created["role"], json!("member"));
    // A bare id is read-write, as tokens were before access levels.
    assert_eq!(created["projects"], json!([{"id": project, "access": "read-write"}, {"id": reader, "access": "read"}]));
    assert!(value.starts_with(created["hint"].as_str().unwrap_or("-")));
    assert_eq!(created["expiresAt"], json!(null), "{created}");
    // The answer holds a secret: no cache may keep it.
    assert_eq!(reply.headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));

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
            json!({"name": "x", "role": "member", "projects": [{"id": "0b6b3c1e-1111-4222-8333-444455556666", "access": "write"}]}),
            "Invalid request: projects: access \"write\" is not read or read-write",
        ),
        (
            json!({"name": "x", "role": "member", "projects": [{"id": "0b6b3c1e-1111-4222-8333-444455556666"}]}),
            "Invalid request: body: projects[0]: a project id, or {\"id\": a project id, \"access\": \"read\" or \"read-write\"} at line 1 column 70",
        ),
        (
            json!({"name": "x", "role": "admin", "projects": ["0b6b3c1e-1111-4222-8333-444455556666"]}),
            "Invalid request: projects: an admin token reaches every project; list projects for member tokens only",
        ),
        (
            json!({"name": "x", "role": "admin", "expiresAt": "tomorrow"}),
            "Invalid request: expiresAt: \"tomorrow\" is not an RFC 3339 time such as 2030-01-31T12:00:00Z",
        ),
        (
            json!({"name": "x", "role": "admin", "expiresAt": "2030-01-31"}),
            "Invalid request: expiresAt: \"2030-01-31\" is not an RFC 3339 time such as 2030-01-31T12:00:00Z",
        ),
        (
            json!({"name": "x", "role": "admin", "expiresAt": "2020-01-31T12:00:00Z"}),
            "Invalid request: expiresAt: 2020-01-31T12:00:00Z is not in the future",
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
    assert_eq!(message, "Token 'first admin' is the last admin token that does not expire, and cannot be deleted");
    let missing = app.delete("/api/v1/tokens/6f1c2b1e-0000-4000-8000-000000000000").await.error(404, "not-found");
    assert_eq!(missing, "Token '6f1c2b1e-0000-4000-8000-000000000000' does not exist");
}

#[tokio::test]
async fn tokens_expire_when_asked() {
    let app = TestApp::new().await;
    // Another offset and sub-millisecond digits: shown in UTC, at the store's resolution.
    let body = json!({"name": "ci", "role": "admin", "expiresAt": "2999-01-01T01:30:00.123456+02:00"});
    let reply = app.post("/api/v1/tokens", body).await;
    let created = reply.ok(201);
    assert_eq!(created["expiresAt"], json!("2998-12-31T23:30:00.123Z"), "{created}");
    let value = created["value"].as_str().unwrap_or_default().to_owned();
    let id = id_of(created);
    let fetched = app.get(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(fetched.ok(200)["expiresAt"], json!("2998-12-31T23:30:00.123Z"));
    // Until then it works.
    app.call(Method::GET, "/api/v1/tokens", Some(&value), None).await.ok(200);
}

#[tokio::test]
async fn an_expired_token_is_refused_and_says_so() {
    let app = TestApp::new().await;
    // A token whose time has come, written as the store keeps it: a create refuses a past time.
    let value = ApiToken::generate();
    let expired_at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let token = Token {
        id: Uuid::new_v4(),
        name: TokenName::parse("nightly").unwrap(),
        role: Role::Admin,
        projects: vec![],
        hint: value.hint(),
        created_at: expired_at - time::Duration::days(1),
        last_used_at: None,
        expires_at: Some(expired_at),
    };
    let store = app.state.store();
    store.tokens.insert_token(&NewToken { token: token.clone(), hash: value.hash() }).await.unwrap();

    let reply = app.call(Method::GET, "/api/v1/regions", Some(value.expose()), None).await;
    assert_eq!(
        reply.error(401, "token-expired"),
        "A valid bearer token is required: the token expired at 2023-11-14T22:13:20Z; ask an admin for a new one \
         (POST /api/v1/tokens)"
    );
    assert!(reply.body["fix"].as_str().is_some_and(|f| f.contains("POST /api/v1/tokens")), "{}", reply.text);
    assert_eq!(reply.body["type"], json!("Unauthenticated"));
    // Presenting it is not a use.
    assert_eq!(store.tokens.get_token(token.id).await.ok().and_then(|t| t.last_used_at), None);
    // An unknown token is still told apart.
    let unknown = app.call(Method::GET, "/api/v1/regions", Some("byos_unknown"), None).await;
    assert_eq!(
        unknown.error(401, "unauthenticated"),
        "A valid bearer token is required: the token is not known; it may have been deleted"
    );
}

#[tokio::test]
async fn a_preset_admin_token_carries_128_bits() {
    let (store, _dir) = empty_store().await;
    // Twenty-four lowercase letters: about 112 bits.
    let refused = byos_api::ensure_admin_token(&store, Some("abcdefghijklmnopqrstuvwx")).await;
    let message = refused.map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("BYOS_ADMIN_TOKEN is not usable: a token must carry at least 128 bits of entropy, and this one carries \
             about 112 (24 characters from an alphabet of 26); make one with `openssl rand -base64 32`"
            .to_owned())
    );
    assert_eq!(store.tokens.count_tokens().await.ok(), Some(0), "a refused token is not stored");

    let strong = "q3Yh0x8Tl1b7Z0cJm2Wf5nRr8kXyGv4sPz6aDuE1tQ0=";
    let first = byos_api::ensure_admin_token(&store, Some(strong)).await.unwrap();
    assert_eq!(first.map(|f| (f.token.expose().to_owned(), f.preset)), Some((strong.to_owned(), true)));
}
