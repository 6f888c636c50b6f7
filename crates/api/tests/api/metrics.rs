//! `/metrics`: what requests can add to it, and what they cannot.

use std::collections::BTreeSet;

use axum::http::Method;

use crate::support::TestApp;

/// The series of the HTTP metrics: each sample line without its value.
async fn http_series(app: &TestApp) -> BTreeSet<String> {
    let reply = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply
        .text
        .lines()
        .filter(|l| l.starts_with("byos_http_"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

fn unknown_method(n: usize) -> Method {
    Method::from_bytes(format!("Z{n}").as_bytes()).unwrap()
}

#[tokio::test]
async fn unknown_methods_add_no_series() {
    let app = TestApp::new().await;
    let paths = ["/api/v1/regions", "/api/v1/nothing-here", "/healthz"];
    // One unknown method on each path makes the series every later one shares; the first read
    // of `/metrics` makes its own.
    for path in paths {
        app.call(unknown_method(0), path, Some(&app.admin), None).await;
    }
    http_series(&app).await;
    let before = http_series(&app).await;

    for n in 1..=200 {
        for path in paths {
            app.call(unknown_method(n), path, Some(&app.admin), None).await;
        }
    }
    let after = http_series(&app).await;
    let added: Vec<&String> = after.difference(&before).take(3).collect();
    assert!(
        added.is_empty(),
        "600 requests with 200 distinct methods added {} series, such as {added:?}",
        after.len() - before.len()
    );
    let all: String = after.iter().map(|s| format!("{s}\n")).collect();
    assert!(!all.contains(r#"method="Z"#), "a method named by a client became a label: {all}");
    assert!(all.contains(r#"method="other""#), "{all}");
    let counters = after.iter().filter(|s| s.starts_with("byos_http_requests_total{")).count();
    assert_eq!(counters, 4, "the unknown methods on three paths, and GET /metrics: {all}");
}
