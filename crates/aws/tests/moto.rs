//! The adapter against moto: every operation the platform relies on, and the classification of
//! AWS's errors with IAM enforcement on.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

use byos_aws::{Aws, AwsError, AwsErrorKind, AwsSettings, CredentialSecret, ListPage, PageMarker};
use byos_domain::notifications::{Destination, NotificationConfig, NotificationRule};
use byos_domain::{SecretAccessKey, ServerSideEncryption, VersioningState};
use byos_test_support::{Fault, FaultPlan, FaultProxy, MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, region};

async fn aws(moto: &Moto) -> Aws {
    Aws::new(&AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await
}

fn secret(s: &str) -> SecretAccessKey {
    SecretAccessKey::parse(s).unwrap()
}

#[tokio::test]
async fn bucket_operations_round_trip() {
    let moto = Moto::start();
    let aws = aws(&moto).await;
    let setup = aws.setup(&region("eu-central-1"));
    assert!(setup.create_bucket("probe-bucket").await.unwrap());
    assert!(!setup.create_bucket("probe-bucket").await.unwrap(), "idempotent");
    aws.setup(&region("us-east-1")).create_bucket("virginia-bucket").await.unwrap();

    let s3 = aws.own_bucket_access(&region("eu-central-1"));
    assert_eq!(s3.bucket_region("probe-bucket").await.ok().as_deref(), Some("eu-central-1"));
    assert_eq!(s3.bucket_region("virginia-bucket").await.ok().as_deref(), Some("us-east-1"));
    let missing = s3.bucket_region("no-such-bucket").await.err().map(|e| e.kind);
    assert_eq!(missing, Some(AwsErrorKind::NoSuchBucket));

    let put = s3.put_object("probe-bucket", "data/probe", b"hello".to_vec(), Some(&ServerSideEncryption::Aes256)).await;
    assert_eq!(put.map(|p| p.version_id).ok(), Some(None), "unversioned: no version id");
    assert_eq!(s3.get_object("probe-bucket", "data/probe").await.ok().as_deref(), Some(&b"hello"[..]));
    assert_eq!(s3.list_one("probe-bucket", "data/").await.ok().flatten().as_deref(), Some("data/probe"));
    s3.delete_object("probe-bucket", "data/probe", None).await.unwrap();
    assert_eq!(s3.list_one("probe-bucket", "data/").await.ok(), Some(None));
    let v = s3.versioning("probe-bucket").await;
    assert_eq!(v.as_ref().ok(), Some(&VersioningState::Unversioned), "{v:?}");

    setup.set_versioning("probe-bucket", VersioningState::Enabled).await.unwrap();
    assert_eq!(s3.versioning("probe-bucket").await.ok(), Some(VersioningState::Enabled));
    let put = s3.put_object("probe-bucket", "v", b"1".to_vec(), None).await.unwrap();
    assert!(put.version_id.is_some(), "versioned: a version id");

    let key = setup.create_kms_key("byos test").await.unwrap();
    assert!(key.starts_with("arn:aws:kms:eu-central-1:"), "{key}");
    s3.kms_round_trip(&key).await.unwrap();
    let elsewhere = key.replace("eu-central-1", "us-east-1");
    let error = aws.own_bucket_access(&region("us-east-1")).kms_round_trip(&elsewhere).await.err();
    assert_eq!(error.map(|e| e.kind), Some(AwsErrorKind::NotFound), "a key is found only in its region");

    assert_eq!(s3.cors_rules("probe-bucket").await.ok(), Some(None));
    setup.put_cors("probe-bucket", &["https://console.example".to_owned()]).await.unwrap();
    let rules = s3.cors_rules("probe-bucket").await.ok().flatten().unwrap_or_default();
    assert_eq!(byos_domain::cors::allows_uploads(&rules, "https://console.example", "PUT"), Ok(()));
    // With rules set, moto answers preflights as S3 does.
    assert!(s3.cors_allows("probe-bucket", "x", "https://console.example", "PUT").await.unwrap_or(false));
    assert!(!s3.cors_allows("probe-bucket", "x", "https://evil.example", "PUT").await.unwrap_or(true));
}

/// Keys XML cannot carry (NUL, other control characters) and keys whose encoding is easy to get
/// wrong (a space, a plus, a percent sign) come back from the listings as they were written,
/// across pages.
#[tokio::test]
async fn listings_return_every_key_as_written() {
    let moto = Moto::start();
    let aws = aws(&moto).await;
    aws.setup(&region("eu-central-1")).create_bucket("odd-keys").await.unwrap();
    let s3 = aws.own_bucket_access(&region("eu-central-1"));
    let mut keys = vec!["k/a b+c%20d.txt", "k/nul\0key", "k/tab\there", "k/\u{1}start", "k/ümlaut €"];
    for key in &keys {
        s3.put_object("odd-keys", key, b"x".to_vec(), None).await.unwrap();
    }
    keys.sort_unstable();
    let listed = every_key(async |after| s3.list_objects_page("odd-keys", "k/", after.as_ref(), 2).await).await;
    assert_eq!(listed, keys);
    assert_eq!(s3.list_one("odd-keys", "k/").await.unwrap().as_deref(), Some(keys[0]));

    // moto answers ListObjectVersions without encoding (AWS encodes): keys XML can carry still
    // round-trip, and so does a key marker that needs encoding.
    aws.setup(&region("eu-central-1")).set_versioning("odd-keys", VersioningState::Enabled).await.unwrap();
    let printable = ["v/a b+c%20d.txt", "v/plus+", "v/ümlaut €"];
    for key in &printable {
        s3.put_object("odd-keys", key, b"x".to_vec(), None).await.unwrap();
    }
    let listed = every_key(async |after| s3.list_versions_page("odd-keys", "v/", after.as_ref(), 1).await).await;
    assert_eq!(listed, printable);
}

/// The keys of every page of a listing, following its markers.
async fn every_key(mut page: impl AsyncFnMut(Option<PageMarker>) -> Result<ListPage, AwsError>) -> Vec<String> {
    let mut keys = Vec::new();
    let mut marker = None;
    loop {
        let listed = page(marker).await.unwrap();
        keys.extend(listed.entries.into_iter().map(|e| e.key));
        match listed.next {
            Some(next) => marker = Some(next),
            None => return keys,
        }
    }
}

#[tokio::test]
async fn notifications_and_queue_policy_round_trip() {
    let moto = Moto::start();
    let aws = aws(&moto).await;
    aws.setup(&region("eu-central-1")).create_bucket("events-bucket").await.unwrap();
    let queues = aws.queues(&region("eu-central-1"));
    let queue = queues.ensure("byos-events-eu-central-1").await.unwrap();
    assert_eq!(queues.ensure("byos-events-eu-central-1").await.ok(), Some(queue.clone()), "idempotent");
    assert!(queue.arn.ends_with(":byos-events-eu-central-1"), "{}", queue.arn);
    let source = byos_aws::EventSource { account: Some("123456789012".to_owned()), bucket: "events-bucket".to_owned() };
    queues.set_allowed_sources(&queue, std::slice::from_ref(&source)).await.unwrap();
    assert_eq!(queues.allowed_sources(&queue).await.ok(), Some(vec![source]));

    let s3 = aws.own_bucket_access(&region("eu-central-1"));
    assert_eq!(s3.notifications("events-bucket").await.ok(), Some(NotificationConfig::default()));
    let config = NotificationConfig {
        rules: vec![
            NotificationRule {
                id: Some("gds:objectcreated".to_owned()),
                destination: Destination::Queue(queue.arn.clone()),
                events: vec!["s3:ObjectCreated:*".to_owned()],
                prefix: Some("data/".to_owned()),
                suffix: None,
            },
            NotificationRule {
                id: Some("customer".to_owned()),
                destination: Destination::Queue(queue.arn.clone()),
                events: vec!["s3:ObjectRemoved:Delete".to_owned(), "s3:ObjectCreated:Put".to_owned()],
                prefix: Some("other/".to_owned()),
                suffix: Some(".bam".to_owned()),
            },
        ],
        eventbridge: false,
    };
    s3.put_notifications("events-bucket", &config).await.unwrap();
    assert_eq!(s3.notifications("events-bucket").await.ok(), Some(config));
}

#[tokio::test]
async fn errors_are_classified_with_iam_enforced() {
    let moto = Moto::start();
    let aws = aws(&moto).await;
    let setup = aws.setup(&region("eu-central-1"));
    setup.create_bucket("guarded-bucket").await.unwrap();
    setup.ensure_user("reader").await.unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:ListBucket","s3:GetBucketLocation"],"Resource":"*"}]}"#;
    setup.put_user_policy("reader", "list-only", policy).await.unwrap();
    let key = setup.create_access_key("reader").await.unwrap();
    moto.enforce_iam().await;

    let reader = aws
        .bucket_access(
            &CredentialSecret::AwsUser {
                access_key_id: key.access_key_id.clone(),
                secret_access_key: secret(&key.secret_access_key),
            },
            &region("eu-central-1"),
        )
        .await;
    assert!(reader.list_one("guarded-bucket", "").await.is_ok());
    let denied = reader.put_object("guarded-bucket", "x", b"x".to_vec(), None).await.err();
    assert_eq!(denied.as_ref().map(|e| &e.kind), Some(&AwsErrorKind::AccessDenied), "{denied:?}");

    let unknown = aws
        .bucket_access(
            &CredentialSecret::AwsUser {
                access_key_id: "AKIAUNKNOWNKEY000000".to_owned(),
                secret_access_key: secret("unknownsecretunknownsecretunknownsecret1"),
            },
            &region("eu-central-1"),
        )
        .await;
    let error = unknown.list_one("guarded-bucket", "").await.err();
    assert_eq!(error.as_ref().map(|e| &e.kind), Some(&AwsErrorKind::InvalidAccessKeyId), "{error:?}");
    assert_eq!(
        error.map(|e| e.message),
        Some("The AWS Access Key Id you provided does not exist in our records.".to_owned())
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let port = byos_test_support::free_port();
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        static_credentials: Some(("AKIAEXAMPLE000000000".to_owned(), "secret".to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let error = aws.own_bucket_access(&region("eu-central-1")).list_one("b-b-b", "").await.err();
    assert!(error.as_ref().is_some_and(|e| e.kind == AwsErrorKind::Unavailable && e.retryable()), "{error:?}");
}

/// Answers cut short, connections reset, S3 slowing the caller down, every time: the listing is
/// tried as often as the retry policy says, each retry counted, and then reaches the caller as
/// an error it may try again later (not as a refusal it should report).
#[tokio::test]
async fn failing_calls_are_retried_then_left_to_the_caller_to_retry() {
    let moto = Moto::start();
    aws(&moto).await.setup(&region("eu-central-1")).create_bucket("cut-short").await.unwrap();
    let throttled = AwsErrorKind::Throttled;
    for (fault, kind) in [
        (Fault::Truncated, AwsErrorKind::Unavailable),
        (Fault::ResetBefore, AwsErrorKind::Unavailable),
        (Fault::SlowDown, throttled),
    ] {
        let listings = FaultPlan {
            rate: 1.0,
            faults: vec![fault],
            only: std::sync::Arc::new(|call| call.operation == "GET bucket list-type"),
        };
        let proxy = FaultProxy::start(moto.url(), listings, 7).await;
        let through = Aws::new(&AwsSettings {
            endpoint_url: Some(proxy.url().to_owned()),
            static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        let before = Aws::retry_counts("s3");
        let error = through.own_bucket_access(&region("eu-central-1")).list_one("cut-short", "").await.err();
        assert!(error.as_ref().is_some_and(|e| e.kind == kind && e.retryable()), "{fault:?}: {error:?}");
        assert_eq!(proxy.injected().faults, 4, "{fault:?}: four attempts, each failing");
        // Other tests of this binary count into the same counters: at least this test's.
        let after = Aws::retry_counts("s3");
        assert!(after.0 - before.0 >= 3 && after.1 > before.1, "{fault:?}: {before:?} then {after:?}");
    }
}

/// With an SQS endpoint of its own, the queues live there and everything else stays where it was:
/// the batch sends and the counts a load test reads work there too.
#[tokio::test]
async fn queue_traffic_goes_to_its_own_endpoint() {
    let (s3_peer, sqs_peer) = (Moto::start(), Moto::start());
    let split = aws(&s3_peer).await.with_sqs_endpoint_url(Some(sqs_peer.url().to_owned()));
    let queue = split.queues(&region("eu-central-1")).ensure("byos-events-eu-central-1").await.unwrap();
    assert!(split.setup(&region("eu-central-1")).create_bucket("events-bucket").await.unwrap());

    let on_sqs_peer = aws(&sqs_peer).await.queues(&region("eu-central-1")).find("byos-events-eu-central-1").await;
    assert_eq!(on_sqs_peer.ok().flatten().map(|q| q.arn), Some(queue.arn.clone()), "the queue is on the SQS endpoint");
    let on_s3_peer = aws(&s3_peer).await.queues(&region("eu-central-1")).find("byos-events-eu-central-1").await;
    assert_eq!(on_s3_peer.ok().map(|q| q.is_none()), Some(true), "and not on the other one");
    let bucket = aws(&s3_peer).await.own_bucket_access(&region("eu-central-1")).bucket_region("events-bucket").await;
    assert_eq!(bucket.ok().as_deref(), Some("eu-central-1"), "S3 stays on its endpoint");

    let queues = split.queues(&region("eu-central-1"));
    let bodies: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();
    assert_eq!(queues.send_batch(&queue.url, &bodies).await.ok(), Some(0));
    assert_eq!(queues.approximate_counts(&queue.url).await.ok(), Some((10, 0)));
    let received = queues.receive(&queue.url, 10, 1, 60).await.unwrap();
    assert_eq!(
        queues.approximate_counts(&queue.url).await.ok(),
        Some((10 - received.len() as u64, received.len() as u64))
    );
    let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
    assert_eq!(queues.delete(&queue.url, &handles).await.ok(), Some(0));
    assert_eq!(queues.approximate_counts(&queue.url).await.ok(), Some((10 - received.len() as u64, 0)));
}
