//! `byos aws policy | cors | bucket-policy | kms-policy | trust-policy`: the documents print as JSON that the
//! AWS CLI accepts, checked with the real AWS CLI against moto.

use std::process::Command;

use byos_test_support::{Moto, temp_dir};
use serde_json::Value;

fn byos(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_byos")).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn aws_cli(moto: &Moto, args: &[&str]) -> (bool, String) {
    let cli = std::env::var("BYOS_TEST_AWS_CLI")
        .unwrap_or_else(|_| panic!("BYOS_TEST_AWS_CLI is not set: run the tests with scripts/test"));
    let output = Command::new(cli)
        .args(["--endpoint-url", moto.url(), "--region", "eu-central-1"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[test]
fn documents_are_accepted_by_the_aws_cli() {
    let moto = Moto::start();
    let dir = temp_dir();
    let (code, policy, stderr) = byos(&[
        "aws",
        "policy",
        "--bucket",
        "customer-bucket",
        "--prefix",
        "ica/",
        "--versioned",
        "--kms-key",
        "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let parsed: Value = serde_json::from_str(&policy).unwrap_or_else(|e| panic!("{e}: {policy}"));
    assert_eq!(parsed["Statement"].as_array().map(Vec::len), Some(3));
    let file = dir.path().join("policy.json");
    std::fs::write(&file, &policy).unwrap();
    let document = format!("file://{}", file.display());
    let (ok, out) = aws_cli(
        &moto,
        &["iam", "create-policy", "--policy-name", "illumina-ica-admin-policy", "--policy-document", &document],
    );
    assert!(ok, "{out}");

    let (code, cors, stderr) = byos(&["aws", "cors", "--origin", "https://console.example"]);
    assert_eq!(code, 0, "{stderr}");
    let (ok, out) = aws_cli(
        &moto,
        &[
            "s3api",
            "create-bucket",
            "--bucket",
            "customer-bucket",
            "--create-bucket-configuration",
            "LocationConstraint=eu-central-1",
        ],
    );
    assert!(ok, "{out}");
    let file = dir.path().join("cors.json");
    std::fs::write(&file, &cors).unwrap();
    let (ok, out) = aws_cli(
        &moto,
        &[
            "s3api",
            "put-bucket-cors",
            "--bucket",
            "customer-bucket",
            "--cors-configuration",
            &format!("file://{}", file.display()),
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = aws_cli(&moto, &["s3api", "get-bucket-cors", "--bucket", "customer-bucket"]);
    assert!(ok && out.contains("https://console.example") && out.contains("ETag"), "{out}");

    let (code, bucket_policy, stderr) =
        byos(&["aws", "bucket-policy", "--bucket", "customer-bucket", "--cross-account", "eu-central-1"]);
    assert_eq!(code, 0, "{stderr}");
    let file = dir.path().join("bucket-policy.json");
    std::fs::write(&file, &bucket_policy).unwrap();
    let (ok, out) = aws_cli(
        &moto,
        &[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            "customer-bucket",
            "--policy",
            &format!("file://{}", file.display()),
        ],
    );
    assert!(ok, "{out}");
    assert!(bucket_policy.contains("arn:aws:iam::079623148045:role/ica_euc1_crossacct"), "{bucket_policy}");
}

/// The trust policy of an `aws-role` credential's role is a document IAM accepts as such, and
/// requires the credential's external id.
#[test]
fn trust_policies_are_accepted_by_iam() {
    let moto = Moto::start();
    let dir = temp_dir();
    let external_id = "byos-0123456789abcdef0123456789abcdef";
    let (code, trust, stderr) = byos(&[
        "aws",
        "trust-policy",
        "--principal",
        "arn:aws:sts::123456789012:assumed-role/byos-server/i-0abc",
        "--external-id",
        external_id,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let parsed: Value = serde_json::from_str(&trust).unwrap_or_else(|e| panic!("{e}: {trust}"));
    assert_eq!(parsed["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::123456789012:role/byos-server");
    assert_eq!(parsed["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], external_id);
    let file = dir.path().join("trust.json");
    std::fs::write(&file, &trust).unwrap();
    let document = format!("file://{}", file.display());
    let (ok, out) = aws_cli(
        &moto,
        &["iam", "create-role", "--role-name", "byos-access", "--assume-role-policy-document", &document],
    );
    assert!(ok && out.contains("sts:ExternalId"), "{out}");

    let (code, _, stderr) = byos(&["aws", "trust-policy", "--principal", "byos", "--external-id", external_id]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--principal"), "{stderr}");
    let (code, _, stderr) =
        byos(&["aws", "trust-policy", "--principal", "arn:aws:iam::123456789012:user/u", "--external-id", "a b"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--external-id"), "{stderr}");
}

#[test]
fn explain_and_errors() {
    let (code, explained, _) = byos(&["aws", "policy", "--bucket", "customer-bucket", "--explain"]);
    assert_eq!(code, 0);
    assert_eq!(explained.lines().count(), 9, "{explained}");
    assert!(explained.lines().all(|l| l.split_whitespace().count() > 2), "{explained}");
    let (code, _, stderr) = byos(&["aws", "policy", "--bucket", "Bad_Bucket"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--bucket"), "{stderr}");
    let (code, _, stderr) = byos(&["aws", "kms-policy", "--region", "eu-west-1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a platform region"), "{stderr}");
    let (code, _, stderr) = byos(&["aws", "bucket-policy", "--bucket", "customer-bucket", "--deny-all", "12"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("12-digit"), "{stderr}");
    let (code, deny, _) = byos(&["aws", "bucket-policy", "--bucket", "customer-bucket", "--deny-all", "123456789012"]);
    assert_eq!(code, 0);
    assert!(deny.contains("arn:aws:sts::123456789012:federated-user/*"), "{deny}");

    // A server with a region table of its own names its copy role: the statements grant that.
    let own = "arn:aws:iam::123456789012:role/byos-copy";
    let args =
        ["aws", "bucket-policy", "--bucket", "customer-bucket", "--cross-account", "eu-central-1", "--role", own];
    let (code, granted, stderr) = byos(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(granted.contains(own) && !granted.contains("079623148045"), "{granted}");
    let (code, statement, stderr) = byos(&["aws", "kms-policy", "--region", "eu-central-1", "--role", own]);
    assert_eq!(code, 0, "{stderr}");
    assert!(statement.contains(own), "{statement}");
    let (code, _, stderr) = byos(&["aws", "kms-policy", "--region", "eu-central-1", "--role", "byos-copy"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--role"), "{stderr}");
    let (code, _, stderr) =
        byos(&["aws", "bucket-policy", "--bucket", "b-1", "--deny-all", "123456789012", "--role", own]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--role goes with --cross-account"), "{stderr}");
}
