//! `/api/v1/storage-credentials`, and the rule that secrets never come back out.

use serde_json::json;

use crate::support::{TestApp, captured_log, configuration, id_of};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRETxKEY";
const ROTATED_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbROTATEDxKEY";
/// A role of a customer's account (moto's own, the platform's, is 123456789012).
const CUSTOMER_ROLE: &str = "arn:aws:iam::111122223333:role/byos";

#[tokio::test]
async fn secrets_are_never_returned_nor_logged() {
    let app = TestApp::new().await;
    let user = app
        .post(
            "/api/v1/storage-credentials",
            json!({"name": "ica user", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET}),
        )
        .await;
    let body = user.ok(201).clone();
    assert_eq!(body["type"], json!("aws-user"));
    assert_eq!(body["accessKeyId"], json!("AKIA…MPLE"));
    assert!(body.get("secretAccessKey").is_none());
    let user_id = id_of(&body);

    app.get(&format!("/api/v1/storage-credentials/{user_id}")).await.ok(200);
    assert_eq!(app.count("/api/v1/storage-credentials").await, 1);
    let rotated = app
        .post(
            &format!("/api/v1/storage-credentials/{user_id}/rotate"),
            json!({"accessKeyId": "AKIAI44QH8DHBEXAMPLE", "secretAccessKey": ROTATED_SECRET}),
        )
        .await;
    assert_eq!(rotated.ok(200)["accessKeyId"], json!("AKIA…MPLE"));
    // Bad input that carries the secret must not echo it either.
    app.post("/api/v1/storage-credentials", json!({"name": "x", "type": "aws-user", "secretAccessKey": SECRET})).await;
    app.post(
        "/api/v1/storage-credentials",
        json!({"name": "bad", "type": "aws-user", "accessKeyId": "short", "secretAccessKey": SECRET}),
    )
    .await;

    // The sealed secret opens with the master key and the credential's id, and only so.
    let stored = app.state.store().credentials.get_credential(user_id.parse().unwrap_or_default()).await;
    let stored = stored.unwrap();
    let id = stored.id;
    let opened = app.state.master_key().open(&stored.sealed_secret, id.as_bytes()).unwrap();
    assert_eq!(opened, ROTATED_SECRET.as_bytes());

    let responses = app.all_responses();
    let log = captured_log();
    assert!(log.contains("storage credential created"), "the log is captured");
    for secret in [SECRET, ROTATED_SECRET, "AKIAIOSFODNN7EXAMPLE"] {
        assert!(!responses.contains(secret), "a response shows {secret}");
    }
    for secret in [SECRET, ROTATED_SECRET] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
    // The key id is not a secret, but byos shows it masked; only the AWS SDK's own debug lines
    // (its client's configuration, when another test's request reaches AWS) name it.
    let sdk = |line: &str| line.split(": ").any(|target| target.starts_with("aws_"));
    let naming_key_id = log.lines().filter(|l| l.contains("AKIAIOSFODNN7EXAMPLE") && !sdk(l));
    assert_eq!(naming_key_id.take(1).collect::<Vec<_>>(), Vec::<&str>::new(), "the log shows the key id");
}

#[tokio::test]
async fn credential_requests_are_checked() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"type": "aws-user"}), "Invalid request: name: required"),
        (
            json!({"name": "ab", "type": "aws-user"}),
            "Invalid request: name: a name is 3 to 63 characters long, this one has 2",
        ),
        (json!({"name": "abc"}), "Invalid request: type: required"),
        (json!({"name": "abc", "type": "gcp"}), "Invalid request: type: \"gcp\" is not aws-user or aws-role"),
        (
            json!({"name": "abc", "type": "aws-user", "secretAccessKey": SECRET}),
            "Invalid request: accessKeyId: required",
        ),
        (
            json!({"name": "abc", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
            "Invalid request: secretAccessKey: required",
        ),
        (
            json!({"name": "abc", "type": "aws-user", "accessKeyId": "akia", "secretAccessKey": SECRET}),
            "Invalid request: accessKeyId: an access key id is 16 to 128 characters long",
        ),
        (
            json!({"name": "abc", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET, "roleArn": "x"}),
            "Invalid request: roleArn: not a field of a aws-user credential",
        ),
        (
            json!({"name": "abc", "type": "aws-role", "roleArn": "arn:aws:iam::123456789012:user/x"}),
            "Invalid request: roleArn: a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME",
        ),
        (
            json!({"name": "abc", "type": "aws-role", "roleArn": CUSTOMER_ROLE, "externalId": "tenant-42"}),
            "Invalid request: externalId: the server generates an aws-role credential's external id; leave it \
             out and read it (and the role's trust policy) from the credential",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(app.post("/api/v1/storage-credentials", body).await.error(400, "invalid-request"), message);
    }
    assert_eq!(app.count("/api/v1/storage-credentials").await, 0, "nothing was written");
}

#[tokio::test]
async fn names_are_unique_and_rotation_keeps_the_type() {
    let app = TestApp::new().await;
    let id = app.user_credential("taken", SECRET).await;
    let again = app
        .post(
            "/api/v1/storage-credentials",
            json!({"name": "taken", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET}),
        )
        .await;
    assert_eq!(again.error(409, "name-taken"), "A storage credential named 'taken' already exists");

    let message = app
        .post(&format!("/api/v1/storage-credentials/{id}/rotate"), json!({"roleArn": CUSTOMER_ROLE}))
        .await
        .error(400, "credential-kind-mismatch");
    assert_eq!(message, "Storage credential 'taken' is of type aws-user; the request is for type aws-role");
    let message = app
        .post(&format!("/api/v1/storage-credentials/{id}/rotate"), json!({"accessKeyId": "AKIAI44QH8DHBEXAMPLE"}))
        .await
        .error(400, "invalid-request");
    assert_eq!(message, "Invalid request: secretAccessKey: required");
    let message = app
        .post(
            "/api/v1/storage-credentials/6f1c2b1e-0000-4000-8000-000000000000/rotate",
            json!({"roleArn": CUSTOMER_ROLE}),
        )
        .await
        .error(404, "not-found");
    assert_eq!(message, "Storage credential '6f1c2b1e-0000-4000-8000-000000000000' does not exist");
}

#[tokio::test]
async fn a_credential_in_use_is_not_deleted() {
    let app = TestApp::new().await;
    let credential = app.user_credential("shared key", SECRET).await;
    let configuration_id =
        id_of(app.post("/api/v1/storage-configurations", configuration("genomics", &credential)).await.ok(201));
    let message = app.delete(&format!("/api/v1/storage-credentials/{credential}")).await.error(409, "in-use");
    assert_eq!(message, "Storage credential 'shared key' is used by storage configuration(s) 'genomics'");
    app.get(&format!("/api/v1/storage-credentials/{credential}")).await.ok(200);

    app.delete(&format!("/api/v1/storage-configurations/{configuration_id}")).await.ok(204);
    app.delete(&format!("/api/v1/storage-credentials/{credential}")).await.ok(204);
    app.get(&format!("/api/v1/storage-credentials/{credential}")).await.error(404, "not-found");
    app.delete(&format!("/api/v1/storage-credentials/{credential}")).await.error(404, "not-found");
}

/// An `aws-role` credential's external id is the server's: 128 random bits, shown with the trust
/// policy the role needs; a caller's own is refused, and so is a role of the platform's account
/// (the confused deputy, both ways).
#[tokio::test]
async fn role_credentials_get_the_servers_external_id() {
    let moto = byos_test_support::Moto::start();
    let app = TestApp::with_aws(moto.url()).await;
    let created = app
        .post("/api/v1/storage-credentials", json!({"name": "ica role", "type": "aws-role", "roleArn": CUSTOMER_ROLE}))
        .await;
    let body = created.ok(201).clone();
    let external_id = body["externalId"].as_str().unwrap_or_default().to_owned();
    let digits = external_id.strip_prefix("byos-").unwrap_or_default();
    assert!(digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
    let id = id_of(&body);
    assert_eq!(app.get(&format!("/api/v1/storage-credentials/{id}")).await.ok(200)["externalId"], json!(external_id));

    let trust = app.get(&format!("/api/v1/storage-credentials/{id}/trust-policy")).await.ok(200).clone();
    let statement = &trust["Statement"][0];
    assert_eq!(statement["Action"], json!("sts:AssumeRole"));
    assert_eq!(statement["Condition"]["StringEquals"]["sts:ExternalId"], json!(external_id));
    let principal = statement["Principal"]["AWS"].as_str().unwrap_or_default();
    assert!(principal.contains(":123456789012:"), "the platform's own identity: {trust}");

    // Rotating a role gives it a new external id (its trust policy is then to be updated).
    let rotated = app.post(&format!("/api/v1/storage-credentials/{id}/rotate"), json!({})).await.ok(200).clone();
    assert!(rotated["externalId"].as_str().is_some_and(|e| e.starts_with("byos-") && e != external_id), "{rotated}");
    let message = app
        .post(&format!("/api/v1/storage-credentials/{id}/rotate"), json!({"externalId": "tenant-42"}))
        .await
        .error(400, "invalid-request");
    assert!(message.contains("the server generates"), "{message}");

    let own = app
        .post(
            "/api/v1/storage-credentials",
            json!({"name": "platform role", "type": "aws-role", "roleArn": "arn:aws:iam::123456789012:role/admin"}),
        )
        .await
        .error(400, "role-in-platform-account");
    assert_eq!(own, "Role 'arn:aws:iam::123456789012:role/admin' is in the platform's own AWS account 123456789012");
    let user = app.user_credential("a user", SECRET).await;
    app.get(&format!("/api/v1/storage-credentials/{user}/trust-policy")).await.error(400, "credential-kind-mismatch");
    assert_eq!(app.count("/api/v1/storage-credentials").await, 2, "the refused ones were not written");
    // The external id is shown to the admin, but never logged.
    assert!(!captured_log().contains(&external_id));
}
