//! `byos aws bootstrap` and `byos aws doctor` against moto, as a bucket owner runs them: set a
//! bucket up twice (the second run changes nothing), break one thing at a time and read the
//! doctor's diagnosis, heal with `--fix`, check the evaluator's verdicts against moto's own IAM
//! enforcement, and register the bucket on a running server.

use std::path::Path;
use std::process::Command;

use byos_test_support::{Moto, TempDir, temp_dir};
use serde_json::{Value, json};

const BUCKET: &str = "genomics-eu";
const REGION: &str = "eu-central-1";

/// The bucket owner's shell: moto's endpoint, the owner's keys, a home without AWS files.
struct Owner {
    moto: Moto,
    home: TempDir,
    key: (String, String),
}

impl Owner {
    fn new() -> Owner {
        Owner { moto: Moto::start(), home: temp_dir(), key: ("testing".to_owned(), "testing".to_owned()) }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") || key.starts_with("BYOS_") {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", &self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.1)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", self.moto.url());
        command
    }

    /// Runs `byos aws ARGS`; the exit code and stdout, stderr.
    fn byos(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.command(env!("CARGO_BIN_EXE_byos")).arg("aws").args(args).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `byos aws ARGS --output json` and parses the result.
    fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let (code, stdout, stderr) = self.byos(&all);
        let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, value)
    }

    /// The real AWS CLI, with the owner's identity.
    fn aws(&self, args: &[&str]) -> (bool, String) {
        let cli = std::env::var("BYOS_TEST_AWS_CLI")
            .unwrap_or_else(|_| panic!("BYOS_TEST_AWS_CLI is not set: run the tests with scripts/test"));
        let output = self
            .command(&cli)
            .args(["--endpoint-url", self.moto.url(), "--region", REGION, "--output", "json"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        )
    }

    fn aws_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.aws(args);
        assert!(ok, "aws {args:?}: {out}");
        out
    }

    fn doctor(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["doctor", "--bucket", BUCKET, "--prefix", "projects/"];
        args.extend(extra);
        self.json(&args)
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// The names of the checks with this result.
fn with_result(report: &Value, result: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["result"] == result)
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

fn bootstrap(owner: &Owner, secret_file: &Path, extra: &[&str]) -> (i32, Value) {
    let file = secret_file.to_str().unwrap_or_default();
    let mut args =
        vec!["bootstrap", "--bucket", BUCKET, "--region", REGION, "--prefix", "projects/", "--secret-file", file];
    args.extend(extra);
    owner.json(&args)
}

#[test]
fn bootstrap_twice_then_the_doctor_passes_and_moto_agrees() {
    let owner = Owner::new();
    let secrets = temp_dir();
    let secret_file = secrets.path().join("key.json");

    let (code, plan) = bootstrap(&owner, &secret_file, &["--dry-run"]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["changes"], 9, "{plan}");
    assert!(!owner.aws(&["s3api", "head-bucket", "--bucket", BUCKET]).0, "a dry run created the bucket");

    let (code, first) = bootstrap(&owner, &secret_file, &[]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["changes"], 9, "{first}");
    let (code, second) = bootstrap(&owner, &secret_file, &[]);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["changes"], 0, "the second run changed something: {second}");
    assert!(second["steps"].as_array().into_iter().flatten().all(|s| s["change"] == "unchanged"), "{second}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
        assert_eq!(mode, 0o600);
    }

    // What bootstrap made, read with the AWS CLI.
    let location = owner.aws_ok(&["s3api", "get-bucket-location", "--bucket", BUCKET]);
    assert!(location.contains(REGION), "{location}");
    let encryption = owner.aws_ok(&["s3api", "get-bucket-encryption", "--bucket", BUCKET]);
    assert!(encryption.contains("AES256"), "{encryption}");
    owner.aws_ok(&["s3api", "head-object", "--bucket", BUCKET, "--key", "projects/"]);
    let cors = owner.aws_ok(&["s3api", "get-bucket-cors", "--bucket", BUCKET]);
    assert!(cors.contains("https://ica.illumina.com") && cors.contains("ETag"), "{cors}");
    let lifecycle = owner.aws_ok(&["s3api", "get-bucket-lifecycle-configuration", "--bucket", BUCKET]);
    let lifecycle: Value = serde_json::from_str(&lifecycle).unwrap_or_default();
    let rule = &lifecycle["Rules"][0];
    assert_eq!(
        (&rule["ID"], &rule["Filter"]["Prefix"], &rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]),
        (&json!("byos-abort-incomplete-uploads"), &json!("projects/"), &json!(7)),
        "{lifecycle}"
    );
    let attached = owner.aws_ok(&["iam", "list-attached-user-policies", "--user-name", "illumina_ica_admin"]);
    assert!(attached.contains("illumina-ica-admin-policy"), "{attached}");

    let (code, report) = owner.doctor(&["--project-region", REGION]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(with_result(&report, "fail"), Vec::<String>::new(), "{report}");
    assert_eq!(with_result(&report, "warn"), Vec::<String>::new(), "{report}");
    assert_eq!(
        with_result(&report, "skip"),
        ["role-requires-external-id", "kms-key-in-region", "kms-key-usable", "copy-role-allowed"],
        "{report}"
    );

    // Without the lifecycle rule the doctor warns (advice: the exit code stays 0), and
    // bootstrap puts it back beside the owner's own rules.
    owner.aws_ok(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        BUCKET,
        "--lifecycle-configuration",
        r#"{"Rules":[{"ID":"owners-own","Status":"Enabled","Filter":{"Prefix":"logs/"},"Expiration":{"Days":30}}]}"#,
    ]);
    let (code, report) = owner.doctor(&["--project-region", REGION]);
    assert_eq!((code, with_result(&report, "warn")), (0, vec!["aborts-incomplete-uploads".to_owned()]), "{report}");
    let (code, again) = bootstrap(&owner, &secret_file, &[]);
    assert_eq!((code, &again["changes"]), (0, &json!(1)), "{again}");
    let lifecycle = owner.aws_ok(&["s3api", "get-bucket-lifecycle-configuration", "--bucket", BUCKET]);
    assert!(lifecycle.contains("owners-own") && lifecycle.contains("byos-abort-incomplete-uploads"), "{lifecycle}");
    let (code, report) = owner.doctor(&["--project-region", REGION]);
    assert_eq!((code, with_result(&report, "warn")), (0, Vec::<String>::new()), "{report}");

    // The evaluator's verdicts agree with moto's own IAM enforcement for the platform's key: an
    // admin keeps the owner's tools working once enforcement is on.
    owner.aws_ok(&["iam", "create-user", "--user-name", "owner-admin"]);
    owner.aws_ok(&[
        "iam",
        "put-user-policy",
        "--user-name",
        "owner-admin",
        "--policy-name",
        "all",
        "--policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ]);
    let admin: Value =
        serde_json::from_str(&owner.aws_ok(&["iam", "create-access-key", "--user-name", "owner-admin"])).unwrap();
    let platform: Value = serde_json::from_str(&std::fs::read_to_string(&secret_file).unwrap_or_default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(owner.moto.enforce_iam());
    let mut as_admin = owner;
    as_admin.key = (
        admin["AccessKey"]["AccessKeyId"].as_str().unwrap_or_default().to_owned(),
        admin["AccessKey"]["SecretAccessKey"].as_str().unwrap_or_default().to_owned(),
    );
    let (code, report) = as_admin.doctor(&[]);
    assert_eq!(code, 0, "the doctor under enforcement: {report}");
    let mut as_platform = as_admin;
    as_platform.key = (
        platform["accessKeyId"].as_str().unwrap_or_default().to_owned(),
        platform["secretAccessKey"].as_str().unwrap_or_default().to_owned(),
    );
    // Granted by ICA's unversioned policy, as the doctor says.
    as_platform.aws_ok(&["s3api", "put-object", "--bucket", BUCKET, "--key", "projects/hello.txt"]);
    as_platform.aws_ok(&["s3api", "get-bucket-notification-configuration", "--bucket", BUCKET]);
    // Not granted: versioning reads (not in the unversioned policy) and objects outside the prefix.
    let (ok, out) = as_platform.aws(&["s3api", "get-bucket-versioning", "--bucket", BUCKET]);
    assert!(!ok && out.contains("AccessDenied"), "{out}");
    let (ok, out) = as_platform.aws(&["s3api", "put-object", "--bucket", BUCKET, "--key", "elsewhere.txt"]);
    assert!(!ok && out.contains("AccessDenied"), "{out}");
}

#[test]
fn the_doctor_names_each_problem_and_its_fix_and_fix_heals() {
    let owner = Owner::new();
    let secrets = temp_dir();
    let (code, first) = bootstrap(&owner, &secrets.path().join("key.json"), &[]);
    assert_eq!(code, 0, "{first}");
    let account = "123456789012";
    let policy_arn = format!("arn:aws:iam::{account}:policy/illumina-ica-admin-policy");

    // 1. An action dropped from the policy.
    let (_, policy, _) = owner.byos(&["policy", "--bucket", BUCKET, "--prefix", "projects/"]);
    let broken = policy.replace("\"s3:GetObject\",", "");
    assert_ne!(broken, policy);
    owner.aws_ok(&[
        "iam",
        "create-policy-version",
        "--policy-arn",
        &policy_arn,
        "--policy-document",
        &broken,
        "--set-as-default",
    ]);
    let (code, report) = owner.doctor(&[]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(with_result(&report, "fail"), ["probe-readable"], "{report}");
    let readable = check(&report, "probe-readable");
    assert_eq!(readable["error"]["code"], "access-forbidden");
    assert_eq!(
        readable["error"]["message"],
        "Access forbidden: Access Denied (s3:GetObject on bucket 'genomics-eu' is not granted)"
    );
    let fix = readable["fixCommand"].as_str().unwrap_or_default();
    assert!(
        fix.starts_with(
            "byos aws policy --bucket genomics-eu --prefix projects/ > policy.json && aws iam create-policy-version"
        ) && fix.contains(&policy_arn),
        "{fix}"
    );
    assert_eq!(readable["fixable"], true);

    // 2. The wrong region for the project.
    let (code, report) = owner.doctor(&["--project-region", "ap-south-1"]);
    assert_eq!(code, 3);
    let region = check(&report, "bucket-in-region");
    assert_eq!(region["result"], "fail");
    assert_eq!(region["error"]["message"], "Storage container must be located in the ap-south-1 region");
    assert_eq!(region["fixable"], false);

    // 3. A leftover gds:* notification, and the owner's own rule elsewhere.
    owner.aws_ok(&["sqs", "create-queue", "--queue-name", "old-platform"]);
    let queue = format!("arn:aws:sqs:{REGION}:{account}:old-platform");
    let rules = json!({"QueueConfigurations": [
        {"Id": "gds:objectcreated", "QueueArn": queue, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "projects/"}]}}},
        {"Id": "audit", "QueueArn": queue, "Events": ["s3:ObjectRemoved:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "logs/"}]}}},
    ]});
    owner.aws_ok(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        BUCKET,
        "--notification-configuration",
        &rules.to_string(),
    ]);
    // 4. CORS removed.
    owner.aws_ok(&["s3api", "delete-bucket-cors", "--bucket", BUCKET]);
    let (code, report) = owner.doctor(&[]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(with_result(&report, "fail"), ["probe-readable", "cors-allows-console-origin"], "{report}");
    assert_eq!(with_result(&report, "warn"), ["notifications-writable"], "{report}");
    let leftovers = check(&report, "notifications-writable");
    assert!(
        leftovers["detail"].as_str().unwrap_or_default().contains("leftover platform rules gds:objectcreated"),
        "{leftovers}"
    );
    assert_eq!(leftovers["fixable"], true);
    let cors = check(&report, "cors-allows-console-origin");
    assert_eq!(cors["error"]["code"], "cors-blocks-uploads");
    assert_eq!(
        cors["fixCommand"],
        "byos aws cors --origin https://ica.illumina.com > cors.json && aws s3api put-bucket-cors --bucket genomics-eu --cors-configuration file://cors.json"
    );

    // --fix heals all three, and keeps the owner's own rule.
    let (code, fixed) = owner.doctor(&["--fix"]);
    assert_eq!(code, 0, "{fixed}");
    assert_eq!(fixed["fixesApplied"].as_array().map(Vec::len), Some(3), "{fixed}");
    assert_eq!(with_result(&fixed, "fail"), Vec::<String>::new(), "{fixed}");
    let notifications = owner.aws_ok(&["s3api", "get-bucket-notification-configuration", "--bucket", BUCKET]);
    assert!(notifications.contains("audit") && !notifications.contains("gds:"), "{notifications}");
    let (code, again) = owner.doctor(&[]);
    assert_eq!(code, 0, "{again}");

    // 5. The owner's own rule on the platform's prefix: a conflict only the owner can resolve.
    let conflicting = json!({"QueueConfigurations": [
        {"Id": "mine", "QueueArn": queue, "Events": ["s3:ObjectCreated:Put"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "projects/raw/"}]}}},
    ]});
    owner.aws_ok(&[
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        BUCKET,
        "--notification-configuration",
        &conflicting.to_string(),
    ]);
    let (code, report) = owner.doctor(&["--fix"]);
    assert_eq!(code, 3, "{report}");
    let conflict = check(&report, "notifications-writable");
    assert_eq!(conflict["result"], "fail");
    assert_eq!(conflict["fixable"], false);
    assert_eq!(
        conflict["error"]["message"],
        "Found conflicting storage container notifications with overlapping prefixes: 'projects/raw/' and key prefix \
         'projects/' on event types s3:ObjectCreated:Put (rule 'mine' on prefix 'projects/raw/')"
    );

    // 6. A bucket policy that denies everyone: the platform's user is caught.
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "LockDown", "Effect": "Deny", "Principal": "*",
        "Action": "s3:*", "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")]}]});
    owner.aws_ok(&["s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", &deny.to_string()]);
    let (code, report) = owner.doctor(&[]);
    assert_eq!(code, 3);
    let denied = check(&report, "bucket-policy-allows-platform");
    assert_eq!(denied["result"], "fail", "{report}");
    assert!(denied["detail"].as_str().unwrap_or_default().contains("LockDown"), "{denied}");
    assert_eq!(check(&report, "objects-listable")["result"], "fail", "{report}");
    // The seed's deny-all policy with the platform's exceptions lets it through.
    let (_, exceptions, _) = owner.byos(&["bucket-policy", "--bucket", BUCKET, "--deny-all", account]);
    owner.aws_ok(&["s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", &exceptions]);
    let (_, report) = owner.doctor(&[]);
    assert_eq!(check(&report, "bucket-policy-allows-platform")["result"], "pass", "{report}");
    assert_eq!(check(&report, "objects-listable")["result"], "pass", "{report}");
}

#[test]
fn bootstrap_sets_up_an_inventory_and_the_doctor_wants_a_fresh_report() {
    let owner = Owner::new();
    let secrets = temp_dir();
    let secret_file = secrets.path().join("key.json");
    let (code, first) = bootstrap(&owner, &secret_file, &["--inventory"]);
    assert_eq!(code, 0, "{first}");
    let steps = first["steps"].as_array().cloned().unwrap_or_default();
    let inventory = steps.iter().find(|s| s["subject"] == "inventory").unwrap_or_else(|| panic!("{first}"));
    assert_eq!(inventory["change"], "created", "{first}");
    let configuration =
        owner.aws_ok(&["s3api", "get-bucket-inventory-configuration", "--bucket", BUCKET, "--id", "byos"]);
    for part in
        ["\"Prefix\": \"projects/\"", "\"Format\": \"CSV\"", "\"Prefix\": \"byos-inventory\"", "LastModifiedDate"]
    {
        assert!(configuration.contains(part), "{part}: {configuration}");
    }
    let policy = owner.aws_ok(&["s3api", "get-bucket-policy", "--bucket", BUCKET]);
    assert!(policy.contains("AllowInventoryReports") && policy.contains("s3.amazonaws.com"), "{policy}");
    let (code, again) = bootstrap(&owner, &secret_file, &["--inventory"]);
    assert_eq!((code, &again["changes"]), (0, &json!(0)), "{again}");

    // A prefix of few objects needs no report; above the threshold, one is asked for.
    for key in ["projects/a.txt", "projects/b.txt", "projects/c.txt"] {
        owner.aws_ok(&["s3api", "put-object", "--bucket", BUCKET, "--key", key]);
    }
    let (_, report) = owner.doctor(&[]);
    assert_eq!(check(&report, "inventory-report-fresh")["result"], "pass", "{report}");
    let (code, report) = owner.doctor(&["--inventory-threshold", "2"]);
    let finding = check(&report, "inventory-report-fresh");
    assert_eq!((code, &finding["result"]), (0, &json!("warn")), "{report}");
    assert!(finding["detail"].as_str().unwrap_or_default().contains("no complete report yet"), "{report}");

    // A report three days old is stale; today's passes.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let now = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
    let put = |created_ms: i64| {
        runtime.block_on(async {
            let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
                endpoint_url: Some(owner.moto.url().to_owned()),
                static_credentials: Some(owner.key.clone()),
                profile: None,
                sts_endpoint_url: None,
            })
            .await;
            let access = aws.own_bucket_access(&byos_test_support::region(REGION));
            let inventory = byos_aws::Inventory::byos(BUCKET, Some("projects/"), false);
            let rows = vec![byos_test_support::ReportRow::object("projects/a.txt", 0, "e", created_ms)];
            byos_test_support::put_report(&access, BUCKET, &inventory, created_ms, &[rows]).await
        })
    };
    put(now - 72 * 3600 * 1000);
    let (_, report) = owner.doctor(&["--inventory-threshold", "2"]);
    let finding = check(&report, "inventory-report-fresh");
    assert_eq!(finding["result"], "warn", "{report}");
    assert!(finding["detail"].as_str().unwrap_or_default().contains("is 72 hours old"), "{report}");
    let manifest = put(now - 3600 * 1000);
    let (_, report) = owner.doctor(&["--inventory-threshold", "2"]);
    let finding = check(&report, "inventory-report-fresh");
    assert_eq!(finding["result"], "pass", "{report}");
    assert!(finding["detail"].as_str().unwrap_or_default().contains(&manifest), "{report}");
}

#[test]
fn versioned_bucket_with_a_new_kms_key_and_the_copy_role() {
    let owner = Owner::new();
    let secrets = temp_dir();
    let file = secrets.path().join("key.json");
    let extra = ["--versioned", "--create-kms-key", "--cross-account"];
    let (code, first) = bootstrap(&owner, &file, &extra);
    assert_eq!(code, 0, "{first}");
    let changed: Vec<&str> = first["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["change"] != "unchanged")
        .filter_map(|s| s["subject"].as_str())
        .collect();
    for subject in ["kms key", "versioning", "bucket policy", "object ownership", "kms key policy"] {
        assert!(changed.contains(&subject), "{subject} not set up: {first}");
    }
    let ownership = owner.aws_ok(&["s3api", "get-bucket-ownership-controls", "--bucket", BUCKET]);
    assert!(ownership.contains("BucketOwnerEnforced"), "{ownership}");
    let (code, second) = bootstrap(&owner, &file, &extra);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["changes"], 0, "{second}");

    let encryption = owner.aws_ok(&["s3api", "get-bucket-encryption", "--bucket", BUCKET]);
    assert!(encryption.contains("aws:kms"), "{encryption}");
    let (code, report) = owner.doctor(&["--cross-account"]);
    assert_eq!(code, 0, "{report}");
    for name in ["kms-key-in-region", "kms-key-usable", "copy-role-allowed", "versioning-readable"] {
        assert_eq!(check(&report, name)["result"], "pass", "{name}: {report}");
    }
    assert!(check(&report, "versioning-readable")["detail"].as_str().unwrap_or_default().contains("enabled"));

    // Without the copy role's statement, the doctor says so and names bootstrap --cross-account.
    owner.aws_ok(&["s3api", "delete-bucket-policy", "--bucket", BUCKET]);
    let (code, report) = owner.doctor(&["--cross-account"]);
    assert_eq!(code, 3, "{report}");
    let copy = check(&report, "copy-role-allowed");
    assert_eq!(copy["result"], "fail");
    assert!(copy["fixCommand"].as_str().unwrap_or_default().contains("--cross-account"), "{copy}");
}

#[test]
fn missing_credentials_unreachable_endpoints_and_profiles() {
    let owner = Owner::new();
    let mut bare = owner.command(env!("CARGO_BIN_EXE_byos"));
    bare.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    let output = bare.args(["aws", "doctor", "--bucket", BUCKET]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials found") && stderr.contains("--profile"), "{stderr}");

    let port = byos_test_support::free_port().to_string();
    let (code, _, stderr) =
        owner.byos(&["doctor", "--bucket", BUCKET, "--endpoint-url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("cannot reach http://127.0.0.1:{port}")), "{stderr}");

    // A profile of the shared credentials file.
    let aws_dir = owner.home.path().join(".aws");
    std::fs::create_dir_all(&aws_dir).unwrap();
    std::fs::write(
        aws_dir.join("credentials"),
        "[bucket-owner]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let mut profiled = owner.command(env!("CARGO_BIN_EXE_byos"));
    profiled.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    let output = profiled
        .args(["aws", "bootstrap", "--bucket", BUCKET, "--region", REGION, "--profile", "bucket-owner", "--dry-run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("would create  bucket genomics-eu"), "{stdout}");

    // Bad input is refused before anything is sent.
    let (code, _, stderr) = owner.byos(&["bootstrap", "--bucket", BUCKET, "--region", "eu-west-1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a platform region"), "{stderr}");
    let (code, _, stderr) = owner.byos(&[
        "bootstrap",
        "--bucket",
        BUCKET,
        "--region",
        REGION,
        "--kms-key",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("must be in its region"), "{stderr}");
    // The token and the secret never go to another machine in clear: a usage error. (0.0.0.0
    // stands for a remote host; were it let through, the connection would stay on this machine.)
    let (code, _, stderr) = owner.byos(&[
        "bootstrap",
        "--bucket",
        BUCKET,
        "--region",
        REGION,
        "--dry-run",
        "--register",
        "http://0.0.0.0:9",
        "--token",
        "byos_unused",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("invalid value 'http://0.0.0.0:9' for '--register <URL>': plain http:// is accepted only"),
        "{stderr}"
    );
}

#[test]
fn bootstrap_registers_the_bucket_on_a_server() {
    let owner = Owner::new();
    let dir = temp_dir();
    let env = [
        ("BYOS__AWS__ENDPOINT_URL", owner.moto.url()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let server = crate::serve::Server::start(dir.path(), &env, &[]);
    let token = crate::serve::read(&dir.path().join("data/admin-token")).trim().to_owned();
    let secret_file = dir.path().join("key.json");
    let secret = secret_file.to_str().unwrap_or_default();
    let base = server.url("");
    let args = [
        "bootstrap",
        "--bucket",
        BUCKET,
        "--region",
        REGION,
        "--prefix",
        "projects/",
        "--secret-file",
        secret,
        "--register",
        &base,
        "--token",
        &token,
    ];
    let (code, stdout, stderr) = owner.byos(&args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("status: ready"), "{stdout}");
    // The live configuration's notification rules are the platform's, not leftovers.
    let (code, report) = owner.doctor(&[]);
    assert_eq!(code, 0, "{report}");
    let rules = check(&report, "notifications-writable");
    assert_eq!(rules["result"], "pass", "{report}");
    assert!(rules["detail"].as_str().unwrap_or_default().contains("3 platform rules in place"), "{rules}");
    // Registered once: the second run finds the configuration.
    let (code, second) = owner.json(&args);
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["changes"], 0, "{second}");

    // Without the secret, registering is refused with what to do.
    let other = dir.path().join("other.json");
    let (code, _, stderr) = owner.byos(&[
        "bootstrap",
        "--bucket",
        "genomics-two",
        "--region",
        REGION,
        "--register",
        &base,
        "--token",
        &token,
        "--secret-file",
        other.to_str().unwrap_or_default(),
        "--user",
        "illumina_ica_admin",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--new-access-key"), "{stderr}");
}
