//! The lifecycle against moto: every catalogue entry AWS can cause, produced by a real
//! scenario, and the provisioning rules (customer rules kept, leftovers adopted, delete removes
//! only ours), the worker and its leases.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use byos_aws::{Aws, AwsSettings, EventSource};
use byos_buckets::Buckets;
use byos_catalog::{Configuration, Store, StoreOptions};
use byos_domain::notifications::{Destination, NotificationConfig, NotificationRule};
use byos_domain::{
    CheckResult, ConfigurationStatus, ErrorCode, KmsKeyArn, Problem, SecretAccessKey, ServerSideEncryption,
    VersioningState,
};
use byos_lifecycle::{Lifecycle, LifecycleSettings};
use byos_secrets::MasterKey;
use byos_test_support::{
    MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, Records, TempDir, TestPostgres, region, temp_dir,
};
use time::OffsetDateTime;
use uuid::Uuid;

const REGION: &str = "eu-central-1";
const CONSOLE: &str = "https://console.example";

struct World {
    moto: Moto,
    aws: Aws,
    store: Store,
    key: MasterKey,
    lifecycle: Lifecycle,
    _dir: TempDir,
    _postgres: Option<TestPostgres>,
}

fn settings() -> LifecycleSettings {
    LifecycleSettings {
        console_origin: CONSOLE.to_owned(),
        tick: Duration::from_millis(200),
        reverify_interval: Duration::from_secs(3600),
        ..LifecycleSettings::default()
    }
}

impl World {
    async fn new() -> World {
        World::with_store(None).await
    }

    async fn with_store(postgres: Option<TestPostgres>) -> World {
        let moto = Moto::start();
        let platform = (MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned());
        World::build(moto, platform, postgres).await
    }

    async fn build(moto: Moto, platform: (String, String), postgres: Option<TestPostgres>) -> World {
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(moto.url().to_owned()),
            static_credentials: Some(platform),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        let dir = temp_dir();
        let options = StoreOptions {
            url: postgres.as_ref().map(|p| p.url().to_owned()),
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
        };
        let store = Store::open(&options, dir.path()).await.unwrap();
        let key = MasterKey::generate();
        let buckets = Buckets::new(store.clone(), aws.clone(), key.clone());
        let lifecycle = Lifecycle::new(store.clone(), aws.clone(), buckets, settings());
        World { moto, aws, store, key, lifecycle, _dir: dir, _postgres: postgres }
    }

    /// A bucket in `region`, created with the platform's (moto's) identity.
    async fn bucket(&self, name: &str, region: &str) {
        self.aws.setup(&byos_test_support::region(region)).create_bucket(name).await.unwrap();
    }

    fn records(&self) -> Records<'_> {
        Records { store: &self.store, key: &self.key }
    }

    async fn credential(&self, access_key_id: &str, secret: &str) -> Uuid {
        self.records().access_key(access_key_id, secret).await.id
    }

    /// moto's own keys: every permission while IAM enforcement is off.
    async fn any_credential(&self) -> Uuid {
        self.credential("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").await
    }

    async fn configuration(&self, bucket: &str, prefix: Option<&str>, credential: Uuid) -> Uuid {
        self.configuration_with(bucket, prefix, credential, None).await
    }

    async fn configuration_with(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        credential: Uuid,
        sse: Option<ServerSideEncryption>,
    ) -> Uuid {
        self.records().encrypted_configuration(credential, bucket, prefix, sse).await.id
    }

    async fn validate(&self, id: Uuid) -> Configuration {
        self.lifecycle.validate_now(id).await.unwrap_or_else(|e| panic!("validate: {e}"))
    }

    async fn notifications(&self, bucket: &str) -> NotificationConfig {
        self.aws.own_bucket_access(&region(REGION)).notifications(bucket).await.unwrap()
    }

    async fn put_notifications(&self, bucket: &str, rules: Vec<NotificationRule>) {
        let config = NotificationConfig { rules, eventbridge: false };
        self.aws.own_bucket_access(&region(REGION)).put_notifications(bucket, &config).await.unwrap();
    }

    async fn customer_queue(&self) -> String {
        self.aws.queues(&region(REGION)).ensure("customer-events").await.unwrap().arn
    }
}

fn customer_rule(id: &str, queue: &str, events: &[&str], prefix: Option<&str>) -> NotificationRule {
    NotificationRule {
        id: Some(id.to_owned()),
        destination: Destination::Queue(queue.to_owned()),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        prefix: prefix.map(str::to_owned),
        suffix: None,
    }
}

#[track_caller]
fn assert_error(c: &Configuration, code: &str, message: &str) {
    assert_eq!(c.status, ConfigurationStatus::Error, "{c:#?}");
    let error = c.error.as_ref().unwrap_or_else(|| panic!("no error: {c:#?}"));
    assert_eq!((error.entry().code, error.message()), (code, message), "{c:#?}");
}

fn result(c: &Configuration, check: &str) -> CheckResult {
    let report = c.validation.as_ref().unwrap_or_else(|| panic!("no report"));
    report.checks.iter().find(|k| k.name == check).map(|k| k.result).unwrap_or_else(|| panic!("no check {check}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_bucket_becomes_ready_and_is_provisioned() {
    let w = World::new().await;
    w.bucket("good-bucket", REGION).await;
    let credential = w.any_credential().await;
    let id = w.configuration("good-bucket", Some("projects/"), credential).await;
    let c = w.validate(id).await;
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    assert_eq!(c.versioning, Some(VersioningState::Unversioned));
    assert!(c.error.is_none() && c.last_verified_at.is_some());
    let report = c.validation.clone().unwrap_or_else(|| panic!("no report"));
    let names: Vec<&str> = report.checks.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names.len(), 15);
    assert_eq!(result(&c, "role-requires-external-id"), CheckResult::Skipped, "an aws-user credential");
    for check in [
        "credential-valid",
        "bucket-exists",
        "bucket-in-region",
        "objects-listable",
        "bucket-owner-known",
        "probe-writable",
        "probe-readable",
        "probe-deletable",
        "versioning-readable",
        "notifications-readable",
        "notifications-writable",
    ] {
        assert_eq!(result(&c, check), CheckResult::Passed, "{check}: {report:#?}");
    }
    assert_eq!(result(&c, "kms-key-usable"), CheckResult::Skipped);
    // No CORS rules: advice only, the configuration is still ready.
    assert_eq!(result(&c, "cors-allows-console-origin"), CheckResult::Failed);

    let rules = w.notifications("good-bucket").await.rules;
    let ids: Vec<&str> = rules.iter().filter_map(|r| r.id.as_deref()).collect();
    assert_eq!(ids, ["gds:objectcreated", "gds:objectremoved", "gds:objectrestore"]);
    assert!(rules.iter().all(|r| r.prefix.as_deref() == Some("projects/")
        && matches!(&r.destination, Destination::Queue(arn) if arn.ends_with(":byos-events-eu-central-1"))));
    let queues = w.aws.queues(&region(REGION));
    let queue = queues.ensure("byos-events-eu-central-1").await.unwrap();
    // The bucket's events are accepted from its owner's account only (moto's is 123456789012).
    let source = EventSource { account: Some("123456789012".to_owned()), bucket: "good-bucket".to_owned() };
    assert_eq!(queues.allowed_sources(&queue).await.ok(), Some(vec![source]));
    assert_eq!(result(&c, "bucket-owner-known"), CheckResult::Passed);
    // The probe is gone.
    let left = w.aws.own_bucket_access(&region(REGION)).list_one("good-bucket", "").await.unwrap();
    assert_eq!(left, None);

    // CORS for the console's origin makes the advice pass; a second run changes nothing else.
    w.aws.setup(&region(REGION)).put_cors("good-bucket", &[CONSOLE.to_owned()]).await.unwrap();
    let again = w.validate(id).await;
    assert_eq!(result(&again, "cors-allows-console-origin"), CheckResult::Passed);
    assert_eq!(w.notifications("good-bucket").await.rules, rules);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_in_another_region_is_refused() {
    let w = World::new().await;
    w.bucket("virginia-bucket", "us-east-1").await;
    let credential = w.any_credential().await;
    let c = w.validate(w.configuration("virginia-bucket", None, credential).await).await;
    assert_error(&c, "bucket-wrong-region", "Storage container must be located in the eu-central-1 region");
    assert_eq!(result(&c, "bucket-exists"), CheckResult::Passed);
    assert_eq!(result(&c, "bucket-in-region"), CheckResult::Failed);
    assert_eq!(result(&c, "notifications-writable"), CheckResult::Skipped);
    assert_eq!(w.notifications("virginia-bucket").await.rules.len(), 0, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let w = World::new().await;
    let credential = w.any_credential().await;
    let c = w.validate(w.configuration("no-such-bucket", Some("data/"), credential).await).await;
    assert_error(&c, "bucket-not-found", "Storage Container 'no-such-bucket' does not exist");
    assert_eq!(result(&c, "bucket-exists"), CheckResult::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_in_another_region_is_refused() {
    let w = World::new().await;
    w.bucket("kms-bucket", REGION).await;
    let credential = w.any_credential().await;
    // The key exists in us-east-1 only; the configuration names it in the bucket's region.
    let key = w.aws.setup(&region("us-east-1")).create_kms_key("elsewhere").await.unwrap();
    let claimed = KmsKeyArn::parse(&key.replace("us-east-1", REGION)).unwrap();
    let id = w
        .configuration_with("kms-bucket", Some("data/"), credential, Some(ServerSideEncryption::Kms(claimed.clone())))
        .await;
    let c = w.validate(id).await;
    assert_error(
        &c,
        "invalid-volume-parameters",
        &format!(
            "Invalid parameters for volume configuration: serverSideEncryption.keyName: the KMS key {claimed} does not exist in eu-central-1; the key must be in the bucket's region"
        ),
    );
    assert_eq!(result(&c, "kms-key-usable"), CheckResult::Failed);
    assert_eq!(result(&c, "probe-writable"), CheckResult::Skipped);

    // A key of the bucket's region works, and the probe is written with it.
    let good = w.aws.setup(&region(REGION)).create_kms_key("here").await.unwrap();
    let good = KmsKeyArn::parse(&good).unwrap();
    let id =
        w.configuration_with("kms-bucket", Some("other/"), credential, Some(ServerSideEncryption::Kms(good))).await;
    let c = w.validate(id).await;
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    assert_eq!(result(&c, "kms-key-usable"), CheckResult::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_bucket_is_detected() {
    let w = World::new().await;
    w.bucket("versioned-bucket", REGION).await;
    w.aws.setup(&region(REGION)).set_versioning("versioned-bucket", VersioningState::Enabled).await.unwrap();
    let credential = w.any_credential().await;
    let c = w.validate(w.configuration("versioned-bucket", Some("data/"), credential).await).await;
    assert_eq!((c.status, c.versioning), (ConfigurationStatus::Ready, Some(VersioningState::Enabled)), "{c:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_notifications_are_kept_or_reported() {
    let w = World::new().await;
    w.bucket("shared-bucket", REGION).await;
    let queue = w.customer_queue().await;
    let credential = w.any_credential().await;

    // A rule of the customer's on another prefix is kept, and the configuration is ready.
    let thumbnails = customer_rule("thumbnails", &queue, &["s3:ObjectCreated:*"], Some("images/"));
    w.put_notifications("shared-bucket", vec![thumbnails.clone()]).await;
    let c = w.validate(w.configuration("shared-bucket", Some("data/"), credential).await).await;
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    let rules = w.notifications("shared-bucket").await.rules;
    assert_eq!(rules.len(), 4);
    assert!(rules.contains(&thumbnails));

    // A rule of the customer's covering another configuration's prefix: refused, named.
    let everything = customer_rule("archive", &queue, &["s3:ObjectCreated:Put"], Some("raw/"));
    let app_logs = customer_rule("applogs", &queue, &["s3:ObjectRemoved:Delete"], Some("logs/app/"));
    w.put_notifications("shared-bucket", [rules.clone(), vec![everything, app_logs]].concat()).await;
    let c = w.validate(w.configuration("shared-bucket", Some("raw/"), credential).await).await;
    assert_error(
        &c,
        "customer-notification-exists",
        "Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification",
    );
    // The customer's rule inside the configuration's prefix: an overlap, named exactly.
    let c = w.validate(w.configuration("shared-bucket", Some("logs/"), credential).await).await;
    assert_error(
        &c,
        "notification-overlap",
        "Found conflicting storage container notifications with overlapping prefixes: 'logs/app/' and key prefix 'logs/' on event types s3:ObjectRemoved:Delete (rule 'applogs' on prefix 'logs/app/')",
    );
    let rules = w.notifications("shared-bucket").await.rules;
    assert_eq!(rules.len(), 6, "a refused configuration writes nothing: {rules:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_adopted_and_delete_removes_only_ours() {
    let w = World::new().await;
    w.bucket("leftover-bucket", REGION).await;
    let queue = w.customer_queue().await;
    let credential = w.any_credential().await;
    let first = w.configuration("leftover-bucket", Some("data/"), credential).await;
    assert_eq!(w.validate(first).await.status, ConfigurationStatus::Ready);
    let customer = customer_rule("mine", &queue, &["s3:ObjectRemoved:*"], Some("logs/"));
    let mut rules = w.notifications("leftover-bucket").await.rules;
    rules.push(customer.clone());
    w.put_notifications("leftover-bucket", rules).await;

    // Deleted from the store behind the platform's back: its rules stay on the bucket.
    w.store.configurations.delete_configuration(first).await.unwrap();
    assert_eq!(w.notifications("leftover-bucket").await.rules.len(), 4);
    // A new configuration on the prefix adopts them at once: no conflict, no waiting.
    let second = w.configuration("leftover-bucket", Some("data/"), credential).await;
    let c = w.validate(second).await;
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    let report = c.validation.unwrap_or_else(|| panic!("no report"));
    let writable = report.checks.iter().find(|k| k.name == "notifications-writable").map(|k| k.detail.clone());
    assert!(writable.is_some_and(|d| d.contains("adopted 3")), "{report:#?}");

    // A second configuration on another prefix gets ids of its own.
    let third = w.configuration("leftover-bucket", Some("more/"), credential).await;
    assert_eq!(w.validate(third).await.status, ConfigurationStatus::Ready);
    let rules = w.notifications("leftover-bucket").await.rules;
    assert_eq!(rules.len(), 7);
    let suffix = &third.simple().to_string()[..8];
    assert!(rules.iter().any(|r| r.id.as_deref() == Some(&format!("gds:objectcreated:{suffix}"))), "{rules:#?}");

    // Deleting removes exactly that configuration's rules.
    w.lifecycle.delete(third).await.unwrap();
    let rules = w.notifications("leftover-bucket").await.rules;
    assert_eq!(rules.len(), 4);
    assert!(rules.contains(&customer));
    w.lifecycle.delete(second).await.unwrap();
    assert_eq!(w.notifications("leftover-bucket").await.rules, vec![customer]);
    let queues = w.aws.queues(&region(REGION));
    let platform_queue = queues.ensure("byos-events-eu-central-1").await.unwrap();
    assert_eq!(queues.allowed_sources(&platform_queue).await.ok(), Some(vec![]), "the bucket left the queue policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_fixed_in_aws_heals() {
    let w = World::new().await;
    w.bucket("healing-bucket", REGION).await;
    let queue = w.customer_queue().await;
    let credential = w.any_credential().await;
    w.put_notifications("healing-bucket", vec![customer_rule("all", &queue, &["s3:ObjectCreated:*"], None)]).await;
    let id = w.configuration("healing-bucket", Some("data/"), credential).await;
    let c = w.validate(id).await;
    assert_eq!(c.status, ConfigurationStatus::Error);
    assert_eq!(c.check_failures, 1);
    assert!(
        c.next_check_at.is_some_and(|t| t < OffsetDateTime::now_utc() + time::Duration::seconds(20)),
        "retried soon"
    );
    w.put_notifications("healing-bucket", vec![]).await;
    let c = w.validate(id).await;
    assert_eq!((c.status, c.check_failures, c.error), (ConfigurationStatus::Ready, 0, None));
}

/// IAM users for the scenarios that need IAM enforcement; the platform's own user has every
/// permission.
async fn enforced_world() -> (World, byos_aws::NewAccessKey) {
    let moto = Moto::start();
    let bootstrap = Aws::new(&AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let setup = bootstrap.setup(&region(REGION));
    setup.create_bucket("guarded-bucket").await.unwrap();
    setup.ensure_user("platform").await.unwrap();
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    setup.put_user_policy("platform", "everything", everything).await.unwrap();
    let platform = setup.create_access_key("platform").await.unwrap();
    // ICA's policy for unversioned buckets, without s3:PutBucketNotification.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Stmt1","Effect":"Allow","Action":["s3:ListBucket","s3:GetBucketNotification","s3:GetBucketLocation"],"Resource":"arn:aws:s3:::guarded-bucket"},
        {"Sid":"Stmt2","Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:RestoreObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::guarded-bucket/*"},
        {"Sid":"Stmt3","Effect":"Allow","Action":["sts:GetFederationToken"],"Resource":"*"}]}"#;
    setup.ensure_user("ica_user").await.unwrap();
    setup.put_user_policy("ica_user", "no-notifications", policy).await.unwrap();
    let customer = setup.create_access_key("ica_user").await.unwrap();
    moto.enforce_iam().await;
    let world = World::build(moto, (platform.access_key_id, platform.secret_access_key), None).await;
    (world, customer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_failures_are_named_with_iam_enforced() {
    let (w, customer) = enforced_world().await;
    let unknown = w.credential("AKIAUNKNOWN000000000", "unknownsecretunknownsecretunknownsecret1").await;
    let c = w.validate(w.configuration("guarded-bucket", Some("unknown/"), unknown).await).await;
    w.store.configurations.delete_configuration(c.id).await.unwrap();
    assert_error(
        &c,
        "invalid-access-key-id",
        "Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records.",
    );
    assert_eq!(result(&c, "credential-valid"), CheckResult::Failed);

    let limited = w.credential(&customer.access_key_id, &customer.secret_access_key).await;
    // With IAM enforcement on, moto checks signatures of requests with `prefix=a%2F` in the
    // query wrongly, so this configuration takes the whole bucket.
    let c = w.validate(w.configuration("guarded-bucket", None, limited).await).await;
    assert_error(
        &c,
        "access-forbidden",
        "Access forbidden: Access Denied (s3:PutBucketNotification on bucket 'guarded-bucket' is not granted)",
    );
    for passed in [
        "credential-valid",
        "objects-listable",
        "probe-writable",
        "probe-readable",
        "probe-deletable",
        "notifications-readable",
    ] {
        assert_eq!(result(&c, passed), CheckResult::Passed, "{passed}");
    }
    // The unversioned policy has no s3:GetBucketVersioning: not needed, not a failure.
    assert_eq!(result(&c, "versioning-readable"), CheckResult::Skipped);
    assert_eq!(c.versioning, Some(VersioningState::Unversioned));
    assert_eq!(result(&c, "notifications-writable"), CheckResult::Failed);
    let _ = SecretAccessKey::parse(&customer.secret_access_key).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_validates_new_configurations_at_once() {
    let w = World::new().await;
    w.bucket("worker-bucket", REGION).await;
    let credential = w.any_credential().await;
    let worker = w.lifecycle.spawn_worker();
    let id = w.configuration("worker-bucket", Some("data/"), credential).await;
    w.lifecycle.wake();
    let c = wait_for(&w.store, id, |c| c.status != ConfigurationStatus::Initializing).await;
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    worker.stop(Duration::from_secs(30)).await;
}

async fn wait_for(store: &Store, id: Uuid, done: impl Fn(&Configuration) -> bool) -> Configuration {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = store.configurations.get_configuration(id).await.unwrap();
        if done(&c) {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting: {c:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two replicas on one PostgreSQL database: every configuration is validated exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_validate_each_configuration_once() {
    let postgres = TestPostgres::create().await;
    let url = postgres.url().to_owned();
    let w = World::with_store(Some(postgres)).await;
    w.bucket("replica-bucket", REGION).await;
    let credential = w.any_credential().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(w.configuration("replica-bucket", Some(&format!("p{i}/")), credential).await);
    }
    let second_store = Store::open(
        &StoreOptions { url: Some(url), max_connections: 8, connect_timeout: Duration::from_secs(5) },
        w._dir.path(),
    )
    .await
    .unwrap();
    let second_buckets = Buckets::new(second_store.clone(), w.aws.clone(), w.key.clone());
    let replicas = [w.lifecycle.clone(), Lifecycle::new(second_store, w.aws.clone(), second_buckets, settings())];
    let mut registries = Vec::new();
    let mut workers = Vec::new();
    for replica in &replicas {
        let mut registry = prometheus_client::registry::Registry::default();
        replica.register_metrics(&mut registry);
        registries.push(registry);
        workers.push(replica.spawn_worker());
    }
    for id in &ids {
        wait_for(&w.store, *id, |c| c.status == ConfigurationStatus::Ready).await;
    }
    for worker in workers {
        worker.stop(Duration::from_secs(30)).await;
    }
    let mut total = 0;
    for registry in &registries {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        total += text
            .lines()
            .find(|l| l.starts_with("configuration_validations_total{status=\"ready\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(total, 6, "each configuration validated once across the two replicas");
    assert!(w.moto.url().starts_with("http://127.0.0.1:"));
}

/// A role of the customer's for `role-bucket`, trusting the platform with `trust`, and an
/// `aws-role` credential for it whose external id is `tenant-42`.
async fn role_credential(w: &World, role_name: &str, trust: &str) -> (Uuid, String) {
    let setup = w.aws.setup(&region(REGION));
    let role = setup.ensure_role(role_name, trust).await.unwrap();
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    setup.put_role_policy(role_name, "s3", everything).await.unwrap();
    let id = w.records().role(&role, "tenant-42").await.id;
    (id, role)
}

/// An `aws-role` credential: the platform assumes the customer's role with the external id, and
/// the role refuses it without (AWS's rule for `StringEquals sts:ExternalId`, which moto lacks:
/// the STS gate in front of moto applies it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_credential_is_assumed_with_its_external_id() {
    let w = World::new().await;
    w.bucket("role-bucket", REGION).await;
    let account = w.aws.setup(&region(REGION)).account().await.unwrap();
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"tenant-42"}}}}}}]}}"#
    );
    let (credential, role) = role_credential(&w, "byos-access", &trust).await;
    let gate = byos_test_support::StsGate::start(&w.moto, &[role]).await;
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(w.moto.url().to_owned()),
        static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: Some(gate.url().to_owned()),
    })
    .await;
    let buckets = Buckets::new(w.store.clone(), aws.clone(), w.key.clone());
    let lifecycle = Lifecycle::new(w.store.clone(), aws, buckets.clone(), settings());
    let id = w.configuration("role-bucket", Some("data/"), credential).await;
    let c = lifecycle.validate_now(id).await.unwrap();
    assert_eq!(c.status, ConfigurationStatus::Ready, "{c:#?}");
    assert_eq!(result(&c, "role-requires-external-id"), CheckResult::Passed);
    assert_eq!(w.notifications("role-bucket").await.rules.len(), 3);

    // The sync engine's batches open the bucket again and again: the role's session is kept
    // (one AssumeRole for all of them) until the credential changes.
    let before = gate.assume_role_calls();
    for _ in 0..3 {
        let access = buckets.open(id).await.unwrap().access;
        access.list_one("role-bucket", "data/").await.unwrap();
    }
    assert_eq!(gate.assume_role_calls() - before, 1, "one session for three batches");
    let mut rotated = w.store.credentials.get_credential(credential).await.unwrap();
    rotated.updated_at = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    w.store.credentials.rotate_credential(&rotated).await.unwrap();
    let access = buckets.open(id).await.unwrap().access;
    access.list_one("role-bucket", "data/").await.unwrap();
    assert_eq!(gate.assume_role_calls() - before, 2, "a rotated credential opens a new session");
}

/// A role that the platform can assume without the external id trusts it on behalf of every
/// customer (the confused deputy): its configuration fails, saying how to fix the trust policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_does_not_require_its_external_id_is_refused() {
    let w = World::new().await;
    w.bucket("role-bucket", REGION).await;
    let account = w.aws.setup(&region(REGION)).account().await.unwrap();
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let (credential, _) = role_credential(&w, "too-trusting", &trust).await;
    let c = w.validate(w.configuration("role-bucket", Some("data/"), credential).await).await;
    assert_eq!(c.status, ConfigurationStatus::Error, "{c:#?}");
    assert_eq!(result(&c, "role-requires-external-id"), CheckResult::Failed);
    assert_eq!(c.error.as_ref().map(Problem::code), Some(ErrorCode::RoleTrustsWithoutExternalId));
    assert_eq!(w.notifications("role-bucket").await.rules, vec![], "nothing was provisioned");
}

/// Two validations of one configuration at once in one process: one runs, the other is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validation_of_a_configuration_at_a_time() {
    let w = World::new().await;
    w.bucket("busy-bucket", REGION).await;
    let credential = w.any_credential().await;
    let id = w.configuration("busy-bucket", Some("data/"), credential).await;
    let (first, second) = tokio::join!(w.lifecycle.validate_now(id), w.lifecycle.validate_now(id));
    let busy = [&first, &second].iter().filter(|r| matches!(r, Err(byos_lifecycle::LifecycleError::Busy))).count();
    let ready =
        [&first, &second].iter().filter(|r| r.as_ref().is_ok_and(|c| c.status == ConfigurationStatus::Ready)).count();
    assert_eq!((busy, ready), (1, 1), "{first:?} / {second:?}");
    // Deleting while a validation runs waits its turn in the same way.
    let (validated, deleted) = tokio::join!(w.lifecycle.validate_now(id), w.lifecycle.delete(id));
    match (&validated, &deleted) {
        (Err(byos_lifecycle::LifecycleError::Busy), Ok(())) => {}
        (Ok(_), Err(byos_lifecycle::LifecycleError::Busy)) => {
            w.lifecycle.delete(id).await.unwrap();
        }
        other => panic!("exactly one of them should run: {other:?}"),
    }
    assert_eq!(w.notifications("busy-bucket").await.rules, vec![], "the delete removed the rules, whichever ran first");
}
