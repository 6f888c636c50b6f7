//! The store conformance suite: every test runs once on SQLite and once on PostgreSQL, each on a
//! database of its own, and both must behave the same.

use std::time::Duration;

use byos_catalog::{
    Configuration, ConfigurationSpec, Conflict, Credential, CredentialIdentity, NewToken, Store, StoreError,
    StoreOptions, Token, ValidationOutcome,
};
use byos_domain::{
    AccessKeyId, BucketName, CheckResult, ConfigurationStatus, ErrorCode, KeyPrefix, KmsKeyArn, Problem, ResourceName,
    Role, RoleArn, ServerSideEncryption, TokenName, ValidationCheck, ValidationReport, VersioningState,
};
use byos_test_support::{TempDir, TestPostgres, temp_dir};
use time::OffsetDateTime;
use uuid::Uuid;

/// A store under test, and what keeps its database alive.
struct Fixture {
    store: Store,
    options: StoreOptions,
    dir: TempDir,
    _postgres: Option<TestPostgres>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = temp_dir();
        let options = StoreOptions { url: None, max_connections: 4, connect_timeout: Duration::from_secs(5) };
        let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("open sqlite: {e:?}"));
        Fixture { store, options, dir, _postgres: None }
    }

    async fn postgres() -> Fixture {
        let postgres = TestPostgres::create().await;
        let options = StoreOptions {
            url: Some(postgres.url().to_owned()),
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
        };
        let dir = temp_dir();
        let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("open postgres: {e:?}"));
        Fixture { store, options, dir, _postgres: Some(postgres) }
    }

    /// Closes the store and opens it again on the same database: migrations run a second time.
    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::open(&self.options, self.dir.path()).await.unwrap_or_else(|e| panic!("reopen: {e:?}"));
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Fixture::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    credentials_round_trip,
    credential_names_are_unique,
    credentials_in_use_cannot_be_deleted,
    configurations_round_trip,
    configurations_need_their_credential,
    configuration_names_are_unique,
    one_default_per_region,
    one_default_per_region_under_contention,
    validation_outcomes_are_recorded,
    tokens_authenticate_by_hash,
    the_last_admin_token_stays,
    meta_values_are_set_once,
    data_survives_reopening,
    prefixes_on_one_bucket_never_overlap,
    due_configurations_come_most_overdue_first,
    leases_have_one_holder_at_a_time,
);

/// Whole milliseconds: the store's time resolution.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t)
}

fn name(s: &str) -> ResourceName {
    ResourceName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn user_credential(n: &str) -> Credential {
    Credential {
        id: Uuid::new_v4(),
        name: name(n),
        identity: CredentialIdentity::AwsUser {
            access_key_id: AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap_or_else(|e| panic!("{e}")),
        },
        sealed_secret: vec![1, 2, 3, 4],
        created_at: now(),
        updated_at: now(),
    }
}

fn configuration(n: &str, credential: &Credential) -> Configuration {
    Configuration::new(
        Uuid::new_v4(),
        ConfigurationSpec {
            name: name(n),
            region: "eu-central-1".to_owned(),
            bucket: BucketName::parse("customer-bucket").unwrap_or_else(|e| panic!("{e}")),
            key_prefix: Some(KeyPrefix::parse(&format!("{n}/")).unwrap_or_else(|e| panic!("{e}"))),
            credential_id: credential.id,
            server_side_encryption: Some(ServerSideEncryption::Kms(
                KmsKeyArn::parse("arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
                    .unwrap_or_else(|e| panic!("{e}")),
            )),
            default_for_region: false,
        },
        now(),
    )
}

fn token(role: Role) -> (NewToken, String) {
    let value = format!("byos_{}", Uuid::new_v4().simple());
    let hash = format!("hash-of-{value}");
    let token = Token {
        id: Uuid::new_v4(),
        name: TokenName::parse("a token").unwrap_or_else(|e| panic!("{e}")),
        role,
        projects: if role == Role::Member { vec![Uuid::new_v4(), Uuid::new_v4()] } else { vec![] },
        hint: value[..9].to_owned(),
        created_at: now(),
        last_used_at: None,
    };
    (NewToken { token, hash: hash.clone() }, hash)
}

async fn credentials_round_trip(f: Fixture) {
    let s = &f.store;
    let mut user = user_credential("zeta user");
    let role = Credential {
        id: Uuid::new_v4(),
        name: name("alpha role"),
        identity: CredentialIdentity::AwsRole {
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/byos").unwrap_or_else(|e| panic!("{e}")),
        },
        sealed_secret: vec![9; 40],
        created_at: now(),
        updated_at: now(),
    };
    s.credentials.insert_credential(&user).await.unwrap_or_else(|e| panic!("{e}"));
    s.credentials.insert_credential(&role).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.credentials.get_credential(user.id).await.ok(), Some(user.clone()));
    let listed = s.credentials.list_credentials().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, vec![role.clone(), user.clone()], "listed by name");

    user.identity = CredentialIdentity::AwsUser {
        access_key_id: AccessKeyId::parse("AKIANEWKEY0000000001").unwrap_or_else(|e| panic!("{e}")),
    };
    user.sealed_secret = vec![7; 60];
    user.updated_at = now() + time::Duration::seconds(1);
    s.credentials.rotate_credential(&user).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.credentials.get_credential(user.id).await.ok(), Some(user.clone()));

    // A rotation must keep the credential's kind.
    let mut wrong_kind = role.clone();
    wrong_kind.identity = user.identity.clone();
    assert!(matches!(s.credentials.rotate_credential(&wrong_kind).await, Err(StoreError::NotFound)));
    assert_eq!(s.credentials.get_credential(role.id).await.ok(), Some(role.clone()));

    s.credentials.delete_credential(user.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(s.credentials.get_credential(user.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.credentials.delete_credential(user.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.credentials.get_credential(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

async fn credential_names_are_unique(f: Fixture) {
    let s = &f.store;
    s.credentials.insert_credential(&user_credential("shared")).await.unwrap_or_else(|e| panic!("{e}"));
    let again = s.credentials.insert_credential(&user_credential("shared")).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Conflict::NameTaken { ref name, .. })) if name == "shared"),
        "{again:?}"
    );
    assert_eq!(s.credentials.list_credentials().await.map(|l| l.len()).ok(), Some(1));
}

async fn credentials_in_use_cannot_be_deleted(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("in use");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    for n in ["second user", "first user"] {
        s.configurations.insert_configuration(&configuration(n, &credential)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let refused = s.credentials.delete_credential(credential.id).await;
    match refused {
        Err(StoreError::Conflict(Conflict::InUse { name, users, .. })) => {
            assert_eq!(name, "in use");
            assert_eq!(users, vec!["first user".to_owned(), "second user".to_owned()]);
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(s.credentials.get_credential(credential.id).await.is_ok());
    for c in s.configurations.list_configurations().await.unwrap_or_else(|e| panic!("{e}")) {
        s.configurations.delete_configuration(c.id).await.unwrap_or_else(|e| panic!("{e}"));
    }
    s.credentials.delete_credential(credential.id).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn configurations_round_trip(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let kms = configuration("with kms", &credential);
    let mut plain = configuration("another", &credential);
    plain.spec.key_prefix = None;
    plain.spec.bucket = BucketName::parse("whole-bucket").unwrap_or_else(|e| panic!("{e}"));
    plain.spec.server_side_encryption = Some(ServerSideEncryption::Aes256);
    plain.spec.default_for_region = true;
    let mut bare = configuration("bare", &credential);
    bare.spec.server_side_encryption = None;
    for c in [&kms, &plain, &bare] {
        s.configurations.insert_configuration(c).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.configurations.get_configuration(c.id).await.ok().as_ref(), Some(c));
    }
    let listed = s.configurations.list_configurations().await.unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = listed.iter().map(|c| c.spec.name.as_str()).collect();
    assert_eq!(names, ["another", "bare", "with kms"]);
    s.configurations.delete_configuration(kms.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(s.configurations.get_configuration(kms.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.configurations.delete_configuration(kms.id).await, Err(StoreError::NotFound)));
}

async fn configurations_need_their_credential(f: Fixture) {
    let s = &f.store;
    let missing = user_credential("never stored");
    let result = s.configurations.insert_configuration(&configuration("orphan", &missing)).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert_eq!(s.configurations.list_configurations().await.map(|l| l.len()).ok(), Some(0));
}

async fn configuration_names_are_unique(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    s.configurations.insert_configuration(&configuration("same", &credential)).await.unwrap_or_else(|e| panic!("{e}"));
    let again = s.configurations.insert_configuration(&configuration("same", &credential)).await;
    assert!(matches!(again, Err(StoreError::Conflict(Conflict::NameTaken { .. }))), "{again:?}");
}

async fn one_default_per_region(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let mut first = configuration("first", &credential);
    first.spec.default_for_region = true;
    s.configurations.insert_configuration(&first).await.unwrap_or_else(|e| panic!("{e}"));
    let mut second = configuration("second", &credential);
    second.spec.default_for_region = true;
    let refused = s.configurations.insert_configuration(&second).await;
    match refused {
        Err(StoreError::Conflict(Conflict::DefaultForRegionTaken { name, region })) => {
            assert_eq!((name.as_str(), region.as_str()), ("first", "eu-central-1"));
        }
        other => panic!("expected DefaultForRegionTaken, got {other:?}"),
    }
    // Another region, or not a default: fine.
    second.spec.region = "us-east-1".to_owned();
    s.configurations.insert_configuration(&second).await.unwrap_or_else(|e| panic!("{e}"));
    let mut third = configuration("third", &credential);
    third.spec.default_for_region = false;
    s.configurations.insert_configuration(&third).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn one_default_per_region_under_contention(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let mut c = configuration(&format!("contender {i}"), &credential);
            c.spec.default_for_region = true;
            let store = s.clone();
            tokio::spawn(async move { store.configurations.insert_configuration(&c).await })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(Conflict::DefaultForRegionTaken { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let defaults = s.configurations.list_configurations().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.iter().filter(|c| c.spec.default_for_region).count(), 1);
}

async fn validation_outcomes_are_recorded(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let c = configuration("validated", &credential);
    s.configurations.insert_configuration(&c).await.unwrap_or_else(|e| panic!("{e}"));
    let report = ValidationReport {
        checked_at: "2026-11-29T10:00:00Z".to_owned(),
        checks: vec![
            ValidationCheck { name: "bucket-exists".to_owned(), result: CheckResult::Passed, detail: "yes".to_owned() },
            ValidationCheck {
                name: "bucket-in-region".to_owned(),
                result: CheckResult::Failed,
                detail: "no".to_owned(),
            },
        ],
    };
    let failed = ValidationOutcome {
        status: ConfigurationStatus::Error,
        versioning: Some(VersioningState::Suspended),
        report: report.clone(),
        error: Some(Problem::bucket_wrong_region("eu-central-1")),
        verified_at: now(),
        next_check_at: now() + time::Duration::seconds(30),
        failures: 1,
    };
    s.configurations.record_validation(c.id, &failed).await.unwrap_or_else(|e| panic!("{e}"));
    let got = s.configurations.get_configuration(c.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.status, ConfigurationStatus::Error);
    assert_eq!(got.versioning, Some(VersioningState::Suspended));
    assert_eq!(got.validation.as_ref(), Some(&report));
    assert_eq!(got.error.as_ref().map(Problem::code), Some(ErrorCode::BucketWrongRegion));
    assert_eq!(
        got.error.as_ref().map(Problem::message),
        Some("Storage container must be located in the eu-central-1 region")
    );
    assert_eq!(got.last_verified_at, Some(failed.verified_at));
    assert_eq!((got.next_check_at, got.check_failures), (Some(failed.next_check_at), 1));

    let healed = ValidationOutcome { status: ConfigurationStatus::Ready, error: None, failures: 0, ..failed };
    s.configurations.record_validation(c.id, &healed).await.unwrap_or_else(|e| panic!("{e}"));
    let got = s.configurations.get_configuration(c.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.status, got.error), (ConfigurationStatus::Ready, None));
    assert!(matches!(s.configurations.record_validation(Uuid::new_v4(), &healed).await, Err(StoreError::NotFound)));
}

async fn tokens_authenticate_by_hash(f: Fixture) {
    let s = &f.store;
    let (admin, admin_hash) = token(Role::Admin);
    let (member, member_hash) = token(Role::Member);
    s.tokens.insert_token(&admin).await.unwrap_or_else(|e| panic!("{e}"));
    s.tokens.insert_token(&member).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.tokens.count_tokens().await.ok(), Some(2));

    let at = now();
    let found = s.tokens.authenticate(&member_hash, at).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.id, member.token.id);
    assert_eq!(found.role, Role::Member);
    assert_eq!(found.projects, member.token.projects);
    assert_eq!(s.tokens.get_token(member.token.id).await.ok().and_then(|t| t.last_used_at), Some(at));
    // A second use within the minute does not write again.
    s.tokens.authenticate(&member_hash, at + time::Duration::seconds(5)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.tokens.get_token(member.token.id).await.ok().and_then(|t| t.last_used_at), Some(at));

    assert!(matches!(s.tokens.authenticate("no such hash", at).await, Err(StoreError::NotFound)));
    assert_eq!(s.tokens.authenticate(&admin_hash, at).await.map(|t| t.role).ok(), Some(Role::Admin));
    let ids: Vec<Uuid> = s.tokens.list_tokens().await.unwrap_or_else(|e| panic!("{e}")).iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&admin.token.id) && ids.contains(&member.token.id));
}

async fn the_last_admin_token_stays(f: Fixture) {
    let s = &f.store;
    let (first, _) = token(Role::Admin);
    let (second, _) = token(Role::Admin);
    let (member, _) = token(Role::Member);
    for t in [&first, &second, &member] {
        s.tokens.insert_token(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    s.tokens.delete_token(member.token.id).await.unwrap_or_else(|e| panic!("{e}"));
    s.tokens.delete_token(first.token.id).await.unwrap_or_else(|e| panic!("{e}"));
    let refused = s.tokens.delete_token(second.token.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(Conflict::LastAdminToken { .. }))), "{refused:?}");
    assert!(matches!(s.tokens.delete_token(first.token.id).await, Err(StoreError::NotFound)));
    assert_eq!(s.tokens.count_tokens().await.ok(), Some(1));
}

async fn meta_values_are_set_once(f: Fixture) {
    let s = &f.store;
    s.meta.ping().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.meta.get_meta("fingerprint").await.ok(), Some(None));
    assert_eq!(s.meta.init_meta("fingerprint", "a").await.ok().as_deref(), Some("a"));
    assert_eq!(s.meta.init_meta("fingerprint", "b").await.ok().as_deref(), Some("a"));
    assert_eq!(s.meta.get_meta("fingerprint").await.ok(), Some(Some("a".to_owned())));
}

async fn data_survives_reopening(mut f: Fixture) {
    let credential = user_credential("durable");
    f.store.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    f.store.meta.init_meta("k", "v").await.unwrap_or_else(|e| panic!("{e}"));
    f.reopen().await;
    assert_eq!(f.store.credentials.get_credential(credential.id).await.ok(), Some(credential));
    assert_eq!(f.store.meta.get_meta("k").await.ok(), Some(Some("v".to_owned())));
}

async fn prefixes_on_one_bucket_never_overlap(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let with_prefix = |n: &str, prefix: Option<&str>| {
        let mut c = configuration(n, &credential);
        c.spec.key_prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap_or_else(|e| panic!("{e}")));
        c
    };
    s.configurations
        .insert_configuration(&with_prefix("genomics", Some("data/genomics/")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.configurations
        .insert_configuration(&with_prefix("imaging", Some("data/imaging/")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, prefix) in [("outer", Some("data/")), ("inner", Some("data/genomics/run1/")), ("root", None)] {
        let refused = s.configurations.insert_configuration(&with_prefix(name, prefix)).await;
        match refused {
            Err(StoreError::Conflict(Conflict::PrefixOverlap { name: first, bucket, .. })) => {
                assert!(first == "genomics" || first == "imaging", "{first}");
                assert_eq!(bucket, "customer-bucket");
            }
            other => panic!("{name}: expected PrefixOverlap, got {other:?}"),
        }
    }
    // Another bucket is another space.
    let mut elsewhere = with_prefix("elsewhere", None);
    elsewhere.spec.bucket = BucketName::parse("another-bucket").unwrap_or_else(|e| panic!("{e}"));
    s.configurations.insert_configuration(&elsewhere).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.configurations.list_configurations().await.map(|l| l.len()).ok(), Some(3));
    let on_bucket =
        s.configurations.configurations_on_bucket("customer-bucket").await.unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<&str> = on_bucket.iter().map(|c| c.spec.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["genomics", "imaging"]);
}

async fn due_configurations_come_most_overdue_first(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let base = now();
    let mut ids = Vec::new();
    for (n, due) in [("later", Some(60)), ("new", None), ("overdue", Some(-60)), ("future", Some(3600))] {
        let mut c = configuration(n, &credential);
        c.next_check_at = due.map(|s| base + time::Duration::seconds(s));
        s.configurations.insert_configuration(&c).await.unwrap_or_else(|e| panic!("{e}"));
        ids.push(c.id);
    }
    let due = s.configurations.due_configurations(base, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due, vec![ids[1], ids[2]], "never checked first, then the overdue one");
    let due = s
        .configurations
        .due_configurations(base + time::Duration::seconds(120), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due, vec![ids[1], ids[2], ids[0]]);
    assert_eq!(
        s.configurations.due_configurations(base + time::Duration::hours(2), 2).await.map(|d| d.len()).ok(),
        Some(2)
    );
}

async fn leases_have_one_holder_at_a_time(f: Fixture) {
    let s = &f.store;
    let t = now();
    let until = t + time::Duration::seconds(60);
    assert_eq!(s.leases.try_lease("configuration:1", "replica-a", until, t).await.ok(), Some(true));
    assert_eq!(s.leases.try_lease("configuration:1", "replica-b", until, t).await.ok(), Some(false));
    assert_eq!(s.leases.try_lease("configuration:1", "replica-a", until, t).await.ok(), Some(true), "renewed");
    assert_eq!(s.leases.try_lease("configuration:2", "replica-b", until, t).await.ok(), Some(true));
    // Expired leases go to whoever asks.
    let later = until + time::Duration::seconds(1);
    assert_eq!(
        s.leases.try_lease("configuration:1", "replica-b", later + time::Duration::seconds(60), later).await.ok(),
        Some(true)
    );
    s.leases.release_lease("configuration:1", "replica-a").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.leases.try_lease("configuration:1", "replica-a", until, t).await.ok(),
        Some(false),
        "not a's to release"
    );
    s.leases.release_lease("configuration:1", "replica-b").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.leases.try_lease("configuration:1", "replica-a", until, t).await.ok(), Some(true));

    // Many contenders at once: exactly one wins.
    let contenders: Vec<_> = (0..8)
        .map(|i| {
            let store = s.clone();
            tokio::spawn(async move { store.leases.try_lease("race", &format!("replica-{i}"), until, t).await })
        })
        .collect();
    let mut winners = 0;
    for c in contenders {
        if c.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}")) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}
