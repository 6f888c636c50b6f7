//! `/api/v1/audit-events`, and the request id every answer carries.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use crate::support::{TestApp, captured_log, id_of};

/// The audit log's events, newest first, as an admin reads them with `query`.
async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app.get(&format!("/api/v1/audit-events{query}")).await;
    reply.ok(200)["items"].as_array().cloned().unwrap_or_default()
}

fn summary(event: &Value) -> (String, String, u64, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&event["action"]),
        text(&event["actor"]["name"]),
        event["status"].as_u64().unwrap_or(0),
        text(&event["outcome"]),
    )
}

#[tokio::test]
async fn changes_are_recorded_with_their_caller_and_outcome_and_reads_are_not() {
    let app = TestApp::new().await;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYAUDITKEY";
    let credential = app.user_credential("audited", secret).await;
    let created = app.post("/api/v1/tokens", json!({"name": "ci", "role": "member", "projects": []})).await;
    let member = created.ok(201)["value"].as_str().unwrap().to_owned();
    let member_id = id_of(&created.body);
    // Refused: recorded, with the member as its actor.
    let body =
        json!({"name": "x", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": secret});
    app.call(Method::POST, "/api/v1/storage-credentials", Some(&member), Some(body.clone()))
        .await
        .error(403, "access-forbidden");
    // Not authenticated, or not a change: not recorded.
    app.call(Method::POST, "/api/v1/storage-credentials", None, Some(body)).await.error(401, "unauthenticated");
    app.call(Method::POST, "/api/v1/tokens", Some("byos_forged"), Some(json!({}))).await.error(401, "unauthenticated");
    app.get("/api/v1/tokens").await.ok(200);
    // A change with a request id and a user agent of the caller's.
    let request = Request::delete(format!("/api/v1/storage-credentials/{credential}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
        .header(header::USER_AGENT, "audit-test/1.0")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    let deleted = app.send(request).await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    assert_eq!(deleted.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-42"));

    let all = events(&app, "").await;
    let summaries: Vec<_> = all.iter().map(summary).collect();
    let expected = [
        ("delete_credential", "first admin", 204, "succeeded"),
        ("create_credential", "ci", 403, "refused"),
        ("create_token", "first admin", 201, "succeeded"),
        ("create_credential", "first admin", 201, "succeeded"),
    ];
    let expected: Vec<_> =
        expected.iter().map(|(a, n, s, o)| (a.to_string(), n.to_string(), *s, o.to_string())).collect();
    assert_eq!(summaries, expected);
    // A creation names what it created; a change names its path.
    assert_eq!(all[3]["target"], json!(format!("/api/v1/storage-credentials/{credential}")));
    assert_eq!(all[2]["target"], json!(format!("/api/v1/tokens/{member_id}")));
    assert_eq!(all[2]["detail"], json!({"name": "ci", "role": "member", "projects": [], "expiresAt": null}));
    assert_eq!(all[1]["actor"]["tokenId"], json!(member_id));
    let delete = &all[0];
    assert_eq!(delete["target"], json!(format!("/api/v1/storage-credentials/{credential}")));
    assert_eq!((&delete["requestId"], &delete["userAgent"]), (&json!("trace-42"), &json!("audit-test/1.0")));
    // Every event has an id of its own and a time; none holds a secret.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(secret) && !text.contains(&member), "{text}");
    assert!(all.iter().all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z'))), "{text}");

    // Filters: by the actor's name or token id, the action, a target's prefix, a time window.
    let by_name: Vec<_> = events(&app, "?actor=ci").await.iter().map(summary).collect();
    assert_eq!(by_name, vec![expected[1].clone()]);
    assert_eq!(events(&app, &format!("?actor={member_id}")).await.len(), 1);
    assert_eq!(events(&app, "?action=create_credential").await.len(), 2);
    assert_eq!(events(&app, "?target=/api/v1/storage-credentials/").await.len(), 2);
    let first_at = all[3]["at"].as_str().unwrap();
    let until: Vec<_> = events(&app, &format!("?until={first_at}")).await;
    assert_eq!(until.len(), 0);
    assert_eq!(events(&app, &format!("?since={first_at}")).await.len(), 4);

    // Pages of two, newest first, end without a token.
    let page = app.get("/api/v1/audit-events?limit=2").await;
    let token = page.ok(200)["nextPageToken"].as_str().unwrap().to_owned();
    let next = app.get(&format!("/api/v1/audit-events?limit=2&pageToken={token}")).await;
    let ids = |reply: &crate::support::Reply| {
        reply.body["items"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect::<Vec<_>>()
    };
    let mut paged = ids(&page);
    paged.extend(ids(&next));
    assert_eq!(paged, all.iter().map(|e| e["id"].clone()).collect::<Vec<_>>());
    let last = app
        .get(&format!("/api/v1/audit-events?limit=2&pageToken={}", next.body["nextPageToken"].as_str().unwrap()))
        .await;
    assert_eq!((last.ok(200)["items"].as_array().map(Vec::len), last.body.get("nextPageToken")), (Some(0), None));
    // A token holds to its filters.
    let elsewhere = format!("/api/v1/audit-events?limit=2&action=create_token&pageToken={token}");
    app.get(&elsewhere).await.error(400, "invalid-request");

    // Reading it is System Settings; what it is asked is checked.
    app.call(Method::GET, "/api/v1/audit-events", Some(&member), None).await.error(403, "access-forbidden");
    for (query, message) in [
        ("?since=yesterday", "Invalid request: since: \"yesterday\" is not an RFC 3339 time (2026-12-01T09:30:00Z)"),
        ("?limit=0", "Invalid request: limit: 0; 1 to 1000"),
        (
            "?pageToken=bm90IGEgdG9rZW4",
            "Invalid request: pageToken: not a token this server gave for this listing; start again without one",
        ),
    ] {
        assert_eq!(app.get(&format!("/api/v1/audit-events{query}")).await.error(400, "invalid-request"), message);
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_that_its_log_lines_carry_too() {
    let app = TestApp::new().await;
    let reply = app.get("/api/v1/regions").await;
    let id = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a new id is a UUID: {id:?}");
    // An id of the caller's is kept only when it is short and plain.
    let request = |id: &str| Request::get("/healthz").header("x-request-id", id).body(Body::empty()).unwrap();
    let kept = app.send(request("lb-7f3a.trace")).await;
    assert_eq!(kept.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("lb-7f3a.trace"));
    let replaced = app.send(request(&"x".repeat(65))).await;
    let replaced = replaced.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced:?}");
    // Unknown routes and errors too.
    let missing = app.get("/api/v1/nothing-here").await;
    assert!(missing.headers.contains_key("x-request-id"));
    let log = captured_log();
    assert!(
        log.lines()
            .any(|line| line.contains(&format!("request{{id={id}}}")) && line.contains("route=\"/api/v1/regions\"")),
        "no log line of request {id}"
    );
}
