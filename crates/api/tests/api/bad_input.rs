//! Bad input on every operation of the OpenAPI document that takes a body: malformed,
//! oversized, wrong-typed, unknown fields, no or another content type; and ids in paths that are
//! not ids. Each gets a typed 4xx, never a 5xx, and nothing is written. The operations come from
//! the document, which is generated from the router's own registrations: a new route is covered
//! as soon as it exists.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use crate::support::{TestApp, configuration};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Any id: bodies are refused before the resource is looked up.
const SOME_ID: &str = "6f1c2b1e-0000-4000-8000-000000000000";

/// An operation of the document.
struct Operation {
    method: Method,
    /// The path as documented, with `{id}` and the like.
    template: String,
    /// The properties of its JSON body, with their JSON types; `None` without a body.
    body: Option<Vec<(String, String)>>,
    /// Its path parameters that are ids (`format: uuid`).
    ids: Vec<String>,
}

impl Operation {
    fn what(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path with every parameter set to `value`.
    fn path(&self, value: &str) -> String {
        let mut path = self.template.clone();
        for id in &self.ids {
            path = path.replace(&format!("{{{id}}}"), value);
        }
        path
    }
}

async fn openapi(app: &TestApp) -> Value {
    app.call(Method::GET, "/api/v1/openapi.json", None, None).await.ok(200).clone()
}

/// A schema with its `$ref` followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

/// The JSON type a property takes besides `null`: `string`, `boolean`, `array`, `object`...
fn json_type(doc: &Value, schema: &Value) -> String {
    types(doc, schema).into_iter().find(|t| t != "null").unwrap_or_else(|| panic!("a property of only null: {schema}"))
}

/// Every JSON type a schema allows, `null` included.
fn types(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(doc, schema);
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        // `oneOf` with `null`, or a `$ref` kept apart: an object of the document's schemas.
        _ => {
            let parts = ["oneOf", "anyOf", "allOf"].into_iter().filter_map(|k| schema[k].as_array()).flatten();
            let found: Vec<String> = parts.flat_map(|s| types(doc, s)).collect();
            if found.is_empty() { vec!["object".to_owned()] } else { found }
        }
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap_or_else(|| panic!("no paths")) {
        for (method, op) in item.as_object().unwrap_or_else(|| panic!("bad path item")) {
            let body = op.get("requestBody").map(|body| {
                let schema = resolve(doc, &body["content"]["application/json"]["schema"]);
                assert_eq!(schema["additionalProperties"], json!(false), "{method} {path}: unknown fields are refused");
                let properties =
                    schema["properties"].as_object().unwrap_or_else(|| panic!("{method} {path}: {schema}"));
                properties.iter().map(|(name, s)| (name.clone(), json_type(doc, s))).collect()
            });
            let ids = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path" && p["schema"]["format"] == "uuid")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            ops.push(Operation {
                method: method.to_uppercase().parse().unwrap_or_else(|e| panic!("{method}: {e}")),
                template: path.clone(),
                body,
                ids,
            });
        }
    }
    ops
}

/// What the store holds, as every list route of the document shows it. `lastUsedAt` is left
/// out: the admin token's own use is recorded at most once a minute, whenever that falls. Of the
/// audit log only the changes that succeeded count: it records refusals by design.
async fn snapshot(app: &TestApp, doc: &Value) -> Vec<(String, Value)> {
    fn without_last_use(value: &mut Value) {
        match value {
            Value::Object(fields) => {
                fields.remove("lastUsedAt");
                fields.values_mut().for_each(without_last_use);
            }
            Value::Array(items) => items.iter_mut().for_each(without_last_use),
            _ => {}
        }
    }
    let mut state = Vec::new();
    for op in operations(doc) {
        if op.method == Method::GET && op.template.starts_with("/api/v1/") && !op.template.contains('{') {
            let audit = op.template == "/api/v1/audit-events";
            let path = if audit { format!("{}?limit=1000", op.template) } else { op.template.clone() };
            let mut body = app.get(&path).await.ok(200).clone();
            without_last_use(&mut body);
            if audit {
                let items = body["items"].as_array_mut().unwrap();
                assert!(items.len() < 1000, "the audit log outgrew the snapshot's page");
                items.retain(|event| event["outcome"] == "succeeded");
            }
            state.push((op.template, body));
        }
    }
    assert!(state.len() >= 6, "the list routes: {:?}", state.iter().map(|(p, _)| p).collect::<Vec<_>>());
    state
}

fn raw(app: &TestApp, method: &Method, path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}

/// A value of another JSON type than `json_type`.
fn wrong_value(json_type: &str) -> Value {
    match json_type {
        "string" => json!(5),
        "integer" | "number" => json!("five"),
        "boolean" => json!("yes"),
        "array" => json!("all"),
        _ => json!(1),
    }
}

/// What is sent (a name, the content type, the body) and what must come back (status, code, and
/// a part of the message).
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, Option<&'a str>);

#[tokio::test]
async fn every_body_operation_refuses_bad_input_cleanly() {
    let app = TestApp::new().await;
    // Something of each kind in the store, so that a write would show.
    let credential = app.user_credential("cred", SECRET).await;
    app.post("/api/v1/storage-configurations", configuration("genomics", &credential)).await.ok(201);
    app.member(&[]).await;
    let doc = openapi(&app).await;
    let ops: Vec<Operation> = operations(&doc).into_iter().filter(|o| o.body.is_some()).collect();
    let mut covered: Vec<String> = ops.iter().map(Operation::what).collect();
    covered.sort();
    assert_eq!(
        covered,
        [
            "POST /api/v1/jobs",
            "POST /api/v1/projects",
            "POST /api/v1/projects/{id}/data/archive-restore",
            "POST /api/v1/projects/{id}/data/download-url",
            "POST /api/v1/projects/{id}/data/download-urls",
            "POST /api/v1/projects/{id}/data/move",
            "POST /api/v1/projects/{id}/data/restore-version",
            "POST /api/v1/projects/{id}/data/undelete",
            "POST /api/v1/projects/{id}/folders",
            "POST /api/v1/projects/{id}/temporary-credentials",
            "POST /api/v1/projects/{id}/uploads",
            "POST /api/v1/projects/{id}/uploads/{uploadId}/complete",
            "POST /api/v1/projects/{id}/uploads/{uploadId}/parts",
            "POST /api/v1/session",
            "POST /api/v1/storage-configurations",
            "POST /api/v1/storage-credentials",
            "POST /api/v1/storage-credentials/{id}/rotate",
            "POST /api/v1/tokens",
        ],
        "the operations with a body, as the document lists them"
    );
    let before = snapshot(&app, &doc).await;

    let json = Some("application/json");
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(byos_api::BODY_LIMIT_BYTES));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<Case<'_>> = vec![
        ("truncated JSON", json, b"{\"name\": ".to_vec(), 400, "invalid-request", Some("body: ")),
        ("not JSON", json, b"name=x".to_vec(), 400, "invalid-request", None),
        ("an array", json, b"[1, 2]".to_vec(), 400, "invalid-request", None),
        ("a string", json, b"\"x\"".to_vec(), 400, "invalid-request", None),
        ("null", json, b"null".to_vec(), 400, "invalid-request", None),
        ("an unknown field", json, br#"{"nmae": "x"}"#.to_vec(), 400, "invalid-request", Some("unknown field `nmae`")),
        ("empty", json, Vec::new(), 400, "invalid-request", None),
        ("not UTF-8", json, vec![b'{', 0xff, 0xfe, b'}'], 400, "invalid-request", None),
        ("deeply nested", json, deep.into_bytes(), 400, "invalid-request", None),
        ("no content type", None, br#"{"name": "x"}"#.to_vec(), 415, "unsupported-media-type", None),
        ("a text content type", Some("text/plain"), br#"{"name": "x"}"#.to_vec(), 415, "unsupported-media-type", None),
        ("a form", Some("application/x-www-form-urlencoded"), b"name=x".to_vec(), 415, "unsupported-media-type", None),
        ("oversized", json, oversized.into_bytes(), 413, "payload-too-large", Some("65536 bytes")),
    ];
    for op in &ops {
        let path = op.path(SOME_ID);
        let what = op.what();
        for (what_case, content_type, body, status, code, contains) in &cases {
            let reply = app.send(raw(&app, &op.method, &path, *content_type, body.clone())).await;
            let message = reply.error(*status, code);
            if let Some(part) = contains {
                assert!(message.contains(part), "{what} with {what_case}: {message}");
            }
        }
        // Every field of the body, with a value of another type.
        for (field, json_type) in op.body.iter().flatten() {
            let body = json!({ field.as_str(): wrong_value(json_type) }).to_string();
            let reply = app.send(raw(&app, &op.method, &path, json, body)).await;
            let message = reply.error(400, "invalid-request");
            assert!(
                message.contains(&format!("{field}: invalid type: ")),
                "{what} with a {json_type} field {field} of another type: {message}"
            );
        }
    }
    // Wrong types inside nested fields are named by their path.
    let nested = json!({"name": "nested", "region": "eu-central-1", "bucket": "b-b-b", "credentialId": credential,
                        "serverSideEncryption": {"algorithm": 1}});
    let message = app.post("/api/v1/storage-configurations", nested).await.error(400, "invalid-request");
    assert!(message.contains("serverSideEncryption.algorithm"), "{message}");
    let message = app
        .post("/api/v1/tokens", json!({"name": "t", "role": "member", "projects": [1]}))
        .await
        .error(400, "invalid-request");
    assert!(message.contains("projects"), "{message}");

    assert_eq!(snapshot(&app, &doc).await, before, "bad input wrote nothing");
}

#[tokio::test]
async fn ids_in_paths_that_are_not_ids_are_refused() {
    let app = TestApp::new().await;
    let doc = openapi(&app).await;
    let ops: Vec<Operation> = operations(&doc).into_iter().filter(|o| !o.ids.is_empty()).collect();
    assert!(ops.len() >= 12, "the walk found only {} operations with ids", ops.len());
    let before = snapshot(&app, &doc).await;
    for op in &ops {
        // The body is a valid one where there is one: the id alone is wrong.
        let body = op.body.as_ref().map(|_| json!({}));
        for bad in ["not-a-uuid", "123", "%00", "6f1c2b1e-0000-4000-8000-00000000000g"] {
            let reply = app.call(op.method.clone(), &op.path(bad), Some(&app.admin), body.clone()).await;
            let message = reply.error(400, "invalid-request");
            assert!(
                message.contains("path: ") && message.contains("is not an id"),
                "{} with {bad}: {message}",
                op.what()
            );
        }
        // A well-formed id of nothing is not found (or its empty body is refused first).
        let reply = app.call(op.method.clone(), &op.path(SOME_ID), Some(&app.admin), body).await;
        let code = match reply.status.as_u16() {
            404 => "not-found",
            400 if op.body.is_some() => "invalid-request",
            _ => panic!("{} with an unknown id: {} {}", op.what(), reply.status, reply.text),
        };
        reply.error(reply.status.as_u16(), code);
    }
    assert_eq!(snapshot(&app, &doc).await, before, "bad ids wrote nothing");
}

/// Random JSON bodies on every operation with a body (proptest's generators, 64 bodies each):
/// objects of the operation's own fields and strangers, each holding anything (nulls, numbers
/// out of range, hostile text, nested arrays and objects). Whatever they hold, the answer is a
/// success or a catalogue error, never a 5xx: the server decides about every body.
#[tokio::test]
async fn random_bodies_are_decided_never_failed() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let app = TestApp::new().await;
    let doc = openapi(&app).await;
    let ops: Vec<Operation> = operations(&doc).into_iter().filter(|o| o.body.is_some()).collect();
    let seed = [7u8; 32];
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z0-9/._*-]{0,12}".prop_map(Value::String),
        Just(json!(SOME_ID)),
        Just(json!("/a/b/")),
        Just(json!("read-write")),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    });
    let mut decided = 0;
    for op in &ops {
        let fields: Vec<String> = op.body.iter().flatten().map(|(name, _)| name.clone()).collect();
        let field = prop_oneof![4 => prop::sample::select(fields), 1 => "[a-zA-Z]{1,10}"];
        let bodies = proptest::collection::btree_map(field, value.clone(), 0..6);
        for _ in 0..64 {
            let body: serde_json::Map<String, Value> =
                bodies.new_tree(&mut runner).unwrap_or_else(|e| panic!("{e}")).current().into_iter().collect();
            let body = Value::Object(body);
            let reply = app.call(op.method.clone(), &op.path(SOME_ID), Some(&app.admin), Some(body.clone())).await;
            let status = reply.status.as_u16();
            assert!(status < 500, "{} with {body}: {status} {}", op.what(), reply.text);
            if status >= 400 {
                let code = reply.body["code"].as_str().unwrap_or_default().to_owned();
                reply.error(status, &code);
            }
            decided += 1;
        }
    }
    assert_eq!(decided, ops.len() * 64);
}
