//! `/api/v1/storage-configurations`: parameter errors use the catalogue's exact messages.

use serde_json::{Value, json};

use crate::support::{TestApp, configuration, id_of};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const KMS_EU: &str = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn with(mut body: Value, field: &str, value: Value) -> Value {
    if value.is_null() {
        body.as_object_mut().map(|o| o.remove(field));
    } else {
        body[field] = value;
    }
    body
}

#[tokio::test]
async fn a_valid_configuration_starts_initializing() {
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let body = json!({
        "name": "genomics eu",
        "region": "eu-central-1",
        "bucket": "customer-bucket",
        "keyPrefix": "ica/projects/",
        "credentialId": credential,
        "serverSideEncryption": {"algorithm": "aws:kms", "keyName": KMS_EU},
        "defaultForRegion": true,
    });
    let created = app.post("/api/v1/storage-configurations", body).await;
    let created = created.ok(201).clone();
    assert_eq!(created["status"], json!("initializing"));
    assert_eq!(created["serverSideEncryption"], json!({"algorithm": "aws:kms", "keyName": KMS_EU}));
    assert_eq!(created["keyPrefix"], json!("ica/projects/"));
    assert_eq!(created["defaultForRegion"], json!(true));
    for empty in ["validation", "error", "versioning", "lastVerifiedAt", "lastUsedAt"] {
        assert_eq!(created[empty], Value::Null, "{empty}");
    }
    let id = id_of(&created);
    assert_eq!(app.get(&format!("/api/v1/storage-configurations/{id}")).await.ok(200), &created);
    assert_eq!(app.count("/api/v1/storage-configurations").await, 1);

    // Without a prefix (the bucket root) and with SSE-S3.
    let root = with(
        with(configuration("whole bucket", &credential), "keyPrefix", Value::Null),
        "serverSideEncryption",
        json!({"algorithm": "AES256"}),
    );
    let root = with(root, "bucket", json!("another-bucket"));
    let root = app.post("/api/v1/storage-configurations", root).await;
    assert_eq!(root.ok(201)["keyPrefix"], Value::Null);
    assert_eq!(root.body["serverSideEncryption"], json!({"algorithm": "AES256"}));
}

#[tokio::test]
async fn parameter_errors_use_the_catalogue() {
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let good = configuration("genomics", &credential);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(good.clone(), "credentialId", Value::Null),
            "missing-credentials",
            "Missing credentials for storage container",
        ),
        (
            with(good.clone(), "credentialId", json!("")),
            "missing-credentials",
            "Missing credentials for storage container",
        ),
        (with(good.clone(), "bucket", Value::Null), "missing-bucket-name", "Missing bucket name for storage container"),
        (with(good.clone(), "bucket", json!("  ")), "missing-bucket-name", "Missing bucket name for storage container"),
        (
            with(good.clone(), "bucket", json!("Customer_Bucket")),
            "invalid-bucket-name",
            "The storage container name has invalid characters",
        ),
        (
            with(good.clone(), "bucket", json!("192.168.1.1")),
            "invalid-bucket-name",
            "The storage container name has invalid characters",
        ),
        (
            with(good.clone(), "region", json!("eu-west-1")),
            "region-not-supported",
            "Storage container must be located in one of the following regions: ap-southeast-2, ca-central-1, eu-central-1, ap-south-1, ap-southeast-3, il-central-1, ap-northeast-1, ap-southeast-1, ap-northeast-2, eu-west-2, me-central-1, us-east-1",
        ),
        (
            with(good.clone(), "region", Value::Null),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: region: required; one of the AWS region ids of GET /api/v1/regions",
        ),
        (
            with(good.clone(), "name", json!("ab")),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: name: a name is 3 to 63 characters long, this one has 2",
        ),
        (
            with(good.clone(), "name", json!("x".repeat(64))),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: name: a name is 3 to 63 characters long, this one has 64",
        ),
        (
            with(good.clone(), "name", Value::Null),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: name: required, 3 to 63 characters",
        ),
        (
            with(good.clone(), "keyPrefix", json!("data")),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: keyPrefix: a key prefix ends with '/'",
        ),
        (
            with(good.clone(), "keyPrefix", json!("./data/")),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: keyPrefix: a key prefix does not start with './' or '../'",
        ),
        (
            with(good.clone(), "keyPrefix", json!(format!("{}/", "k".repeat(1024)))),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: keyPrefix: a key prefix is at most 1024 bytes of UTF-8, this one has 1025",
        ),
        (
            with(good.clone(), "credentialId", json!("not-an-id")),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: credentialId: \"not-an-id\" is not a storage credential id",
        ),
        (
            with(good.clone(), "credentialId", json!("6f1c2b1e-0000-4000-8000-000000000000")),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: credentialId: no storage credential has the id 6f1c2b1e-0000-4000-8000-000000000000",
        ),
        (
            with(good.clone(), "serverSideEncryption", json!({"algorithm": "aws:kms"})),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: serverSideEncryption.keyName: required for aws:kms, the KMS key's ARN",
        ),
        (
            with(good.clone(), "serverSideEncryption", json!({"algorithm": "AES256", "keyName": KMS_EU})),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: serverSideEncryption.keyName: only aws:kms takes a key; leave it out for AES256",
        ),
        (
            with(good.clone(), "serverSideEncryption", json!({"algorithm": "DES"})),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: serverSideEncryption.algorithm: \"DES\" is not AES256 or aws:kms",
        ),
        (
            with(good.clone(), "serverSideEncryption", json!({"algorithm": "aws:kms", "keyName": "alias/mine"})),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: serverSideEncryption.keyName: a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID",
        ),
        (
            with(
                good.clone(),
                "serverSideEncryption",
                json!({"algorithm": "aws:kms", "keyName": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}),
            ),
            "invalid-volume-parameters",
            "Invalid parameters for volume configuration: serverSideEncryption.keyName: the KMS key is in us-east-1 but the configuration is in eu-central-1; the key must be in the bucket's region",
        ),
    ];
    for (body, code, message) in cases {
        let reply = app.post("/api/v1/storage-configurations", body.clone()).await;
        assert_eq!(reply.error(400, code), message, "{body}");
    }
    assert_eq!(app.count("/api/v1/storage-configurations").await, 0, "nothing was written");
}

#[tokio::test]
async fn names_and_region_defaults_are_unique() {
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let first = with(configuration("first", &credential), "defaultForRegion", json!(true));
    app.post("/api/v1/storage-configurations", first.clone()).await.ok(201);
    let message = app.post("/api/v1/storage-configurations", first).await.error(409, "name-taken");
    assert_eq!(message, "A storage configuration named 'first' already exists");
    let second = with(configuration("second", &credential), "defaultForRegion", json!(true));
    let message =
        app.post("/api/v1/storage-configurations", second.clone()).await.error(409, "default-for-region-taken");
    assert_eq!(message, "Storage configuration 'first' is already the default for region eu-central-1");
    app.post("/api/v1/storage-configurations", with(second.clone(), "region", json!("us-east-1"))).await.ok(201);
    assert_eq!(app.count("/api/v1/storage-configurations").await, 2);
}

#[tokio::test]
async fn missing_configurations_are_not_found() {
    let app = TestApp::new().await;
    let path = "/api/v1/storage-configurations/6f1c2b1e-0000-4000-8000-000000000000";
    let message = app.get(path).await.error(404, "not-found");
    assert_eq!(message, "Storage configuration '6f1c2b1e-0000-4000-8000-000000000000' does not exist");
    app.delete(path).await.error(404, "not-found");
    let message = app.get("/api/v1/storage-configurations/nope").await.error(400, "invalid-request");
    assert_eq!(message, "Invalid request: path: \"nope\" is not an id; ids are UUIDs");
}

#[tokio::test]
async fn configurations_on_one_bucket_never_overlap() {
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let first = with(configuration("genomics", &credential), "keyPrefix", json!("data/genomics/"));
    app.post("/api/v1/storage-configurations", first).await.ok(201);
    let inner = with(configuration("runs", &credential), "keyPrefix", json!("data/genomics/runs/"));
    let message = app.post("/api/v1/storage-configurations", inner).await.error(409, "configuration-prefix-overlap");
    assert_eq!(
        message,
        "Storage configuration 'genomics' already uses the prefix 'data/genomics/' of bucket 'customer-bucket', which overlaps this key prefix"
    );
    let root = with(configuration("root", &credential), "keyPrefix", Value::Null);
    app.post("/api/v1/storage-configurations", root).await.error(409, "configuration-prefix-overlap");
    let sibling = with(configuration("imaging", &credential), "keyPrefix", json!("data/imaging/"));
    app.post("/api/v1/storage-configurations", sibling).await.ok(201);
}

#[tokio::test]
async fn a_failed_check_says_what_to_do() {
    use byos_domain::{CheckResult, ConfigurationStatus, ValidationCheck};
    let app = TestApp::new().await;
    let credential = app.user_credential("cred", SECRET).await;
    let created = app.post("/api/v1/storage-configurations", configuration("genomics", &credential)).await;
    let id = created.ok(201)["id"].as_str().unwrap_or_default().to_owned();
    let mut outcome = byos_test_support::validation_outcome(ConfigurationStatus::Error);
    let check =
        |name: &str, result| ValidationCheck { name: name.to_owned(), result, detail: "d".to_owned(), fix: None };
    outcome.report.checks = vec![
        check("credential-valid", CheckResult::Passed),
        check("objects-listable", CheckResult::Failed),
        check("kms-key-usable", CheckResult::Skipped),
    ];
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    app.state.store().configurations.record_validation(uuid, &outcome).await.unwrap();
    let body = app.get(&format!("/api/v1/storage-configurations/{id}")).await;
    let checks = &body.ok(200)["validation"]["checks"];
    assert!(checks[0].get("fix").is_none() && checks[2].get("fix").is_none(), "{checks}");
    let fix = checks[1]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("s3:ListBucket"), "{checks}");
}
