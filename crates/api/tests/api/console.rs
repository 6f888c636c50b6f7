//! The console's side of the server: its pages at every console path, the headers every answer
//! carries, and its session (a cookie out of scripts' reach, CSRF on every change).

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use crate::support::{Reply, TestApp};

/// Signs in with `token`, with extra request headers; the reply.
async fn sign_in(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> Reply {
    let mut request = Request::post("/api/v1/session").header(header::CONTENT_TYPE, "application/json");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::from(json!({ "token": token }).to_string())).unwrap()).await
}

/// A console session: its cookie (`byos_session=...`) and CSRF token.
async fn session(app: &TestApp, token: &str) -> (String, String) {
    let reply = sign_in(app, token, &[("sec-fetch-site", "same-origin")]).await;
    let csrf = reply.ok(201)["csrfToken"].as_str().unwrap_or_default().to_owned();
    let set_cookie = reply.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    assert!(cookie.starts_with("byos_session=") && cookie.len() > 40, "{set_cookie}");
    (cookie, csrf)
}

/// A request as the console's script makes it: the cookie, and the headers given.
async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str, extra: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method.clone()).uri(path).header(header::COOKIE, cookie);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let body = if method == Method::GET || method == Method::DELETE {
        Body::empty()
    } else {
        request = request.header(header::CONTENT_TYPE, "application/json");
        Body::from("{}")
    };
    app.send(request.body(body).unwrap()).await
}

#[tokio::test]
async fn the_console_is_served_at_every_console_path() {
    let app = TestApp::new().await;
    for path in ["/", "/projects", "/projects/6f1c2b1e-0000-4000-8000-000000000000/data/a%20b/c/", "/settings/tokens"] {
        let reply = app.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        assert!(reply.text.contains(r#"<script type="module" src="/assets/js/app.js">"#), "{}", reply.text);
    }
    let script = app.call(Method::GET, "/assets/js/app.js", None, None).await;
    assert_eq!(script.status, 200);
    assert_eq!(script.headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(app.call(Method::GET, "/assets/js/nope.js", None, None).await.status, 404);
    // The API's own answers stay the API's.
    app.call(Method::GET, "/api/v1/nope", None, None).await.error(404, "route-not-found");
    app.call(Method::POST, "/projects", None, Some(json!({}))).await.error(404, "route-not-found");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::new().await;
    for (path, token) in
        [("/", None), ("/assets/app.css", None), ("/api/v1/regions", Some(&app.admin)), ("/api/v1/nope", None)]
    {
        let reply = app.call(Method::GET, path, token.map(String::as_str), None).await;
        let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        for directive in
            ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]
        {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("connect-src 'self' https://*.amazonaws.com"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
    }
}

#[tokio::test]
async fn a_console_session_acts_for_its_token_with_a_cookie() {
    let app = TestApp::new().await;
    let reply = sign_in(&app, &app.admin, &[]).await;
    let body = reply.ok(201);
    assert_eq!((body["role"].as_str(), body["name"].as_str().is_some()), (Some("admin"), true), "{body}");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let set_cookie = reply.headers[header::SET_COOKIE].to_str().unwrap_or_default();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let max_age = set_cookie.split("Max-Age=").nth(1).and_then(|v| v.split(';').next()?.parse::<i64>().ok());
    assert!(max_age.is_some_and(|s| s > 11 * 3600 && s <= 12 * 3600), "a session lasts 12 hours: {set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain http cannot keep a Secure cookie: {set_cookie}");
    assert!(!set_cookie.contains(&app.admin) && !reply.text.contains(&app.admin), "the token is not the session");
    let behind_https = sign_in(&app, &app.admin, &[("x-forwarded-proto", "https")]).await;
    assert!(behind_https.headers[header::SET_COOKIE].to_str().unwrap_or_default().contains("; Secure"));

    let (cookie, csrf) = session(&app, &app.admin).await;
    // Reads need the cookie only; the session tells the script its CSRF token again.
    with_cookie(&app, Method::GET, "/api/v1/regions", &cookie, &[]).await.ok(200);
    let again = with_cookie(&app, Method::GET, "/api/v1/session", &cookie, &[]).await;
    assert_eq!(again.ok(200)["csrfToken"], json!(csrf));
    // A bearer token has no session and needs no CSRF token.
    let bearer = app.get("/api/v1/session").await;
    assert_eq!((bearer.ok(200)["csrfToken"].clone(), bearer.body["role"].clone()), (Value::Null, json!("admin")));

    // Changes need the session's CSRF token, from the console's own site.
    let token = json!({"name": "from the console", "role": "admin"}).to_string();
    let change = |extra: Vec<(&'static str, String)>| {
        let (app, cookie, token) = (&app, cookie.clone(), token.clone());
        async move {
            let mut request = Request::post("/api/v1/tokens")
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "application/json");
            for (name, value) in extra {
                request = request.header(name, value);
            }
            app.send(request.body(Body::from(token)).unwrap()).await
        }
    };
    let message = change(vec![]).await.error(403, "csrf-check-failed");
    assert!(message.contains("no X-CSRF-Token"), "{message}");
    let message = change(vec![("x-csrf-token", format!("{csrf}x"))]).await.error(403, "csrf-check-failed");
    assert!(message.contains("does not match the one given at sign-in"), "{message}");
    let cross_site = vec![("x-csrf-token", csrf.clone()), ("sec-fetch-site", "cross-site".to_owned())];
    change(cross_site).await.error(403, "csrf-check-failed");
    change(vec![("x-csrf-token", csrf.clone()), ("sec-fetch-site", "same-origin".to_owned())]).await.ok(201);

    // Signing out ends the session on the server and clears the cookie.
    let out = with_cookie(&app, Method::DELETE, "/api/v1/session", &cookie, &[("x-csrf-token", &csrf)]).await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap_or_default().contains("Max-Age=0"));
    let message = with_cookie(&app, Method::GET, "/api/v1/regions", &cookie, &[]).await.error(401, "unauthenticated");
    assert!(message.contains("console session has ended"), "{message}");
}

#[tokio::test]
async fn signing_in_refuses_what_a_token_would() {
    let app = TestApp::new().await;
    let message = sign_in(&app, "", &[]).await.error(400, "invalid-request");
    assert!(message.contains("token"), "{message}");
    sign_in(&app, "byos_not-a-real-token", &[]).await.error(401, "unauthenticated");
    sign_in(&app, &app.admin, &[("sec-fetch-site", "cross-site")]).await.error(403, "csrf-check-failed");
    // A form on another site cannot post JSON.
    let form = Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={}", app.admin)))
        .unwrap();
    assert_eq!(app.send(form).await.status, 415);
}

/// Every change the API offers, made with a session cookie and without the CSRF token, is
/// refused before it does anything: the walk covers each route of the OpenAPI document.
#[tokio::test]
async fn every_change_by_cookie_needs_the_csrf_token() {
    let app = TestApp::new().await;
    let (cookie, _) = session(&app, &app.admin).await;
    let doc = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let mut changes = 0;
    for (path, item) in doc.ok(200)["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if method == Method::GET || op.get("security").is_none() {
                continue;
            }
            let path = path.replace("{id}", "6f1c2b1e-0000-4000-8000-000000000000");
            let path = path.replace("{uploadId}", "6f1c2b1e-0000-4000-8000-000000000001");
            let reply = with_cookie(&app, method.clone(), &path, &cookie, &[]).await;
            reply.error(403, "csrf-check-failed");
            changes += 1;
        }
    }
    assert!(changes >= 20, "only {changes} changes walked");
    // None of them happened: the session is still there, and so is every token.
    with_cookie(&app, Method::GET, "/api/v1/session", &cookie, &[]).await.ok(200);
    assert_eq!(app.count("/api/v1/tokens").await, 1);
}
