//! The store conformance suite: every test runs once on SQLite and once on PostgreSQL, each on a
//! database of its own, and both must behave the same.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use byos_catalog::{
    ActorFilter, ApplyOutcome, AuditActor, AuditCursor, AuditEvent, AuditQuery, Configuration, ConfigurationSpec,
    Conflict, CopySpec, Credential, CredentialIdentity, DeadLetter, Drift, Entry, EntryKind, FileEntry, FolderTotals,
    Job, JobObject, JobPlan, JobProgress, JobSpec, JobStatus, KeyUpdate, Lease, LeaseLost, NewSession, NewToken,
    ObjectResult, OnConflict, OutsideChange, Project, ProjectGrant, ReconcileRun, ReconcileSchedule, ReconcileStatus,
    Store, StoreError, StoreOptions, Token, Upload, ValidationOutcome,
};
use byos_domain::events::Sequencer;
use byos_domain::objects::{Change, NULL_VERSION, Observation, ObservedVersion, RestoreState, VersionKind};
use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, CheckResult, ConfigurationStatus, ErrorCode, KeyPrefix, KmsKeyArn, Problem,
    ProjectAccess, ProjectFolder, ResourceName, Role, RoleArn, ServerSideEncryption, TokenName, ValidationCheck,
    ValidationReport, VersioningState,
};
use byos_test_support::{TempDir, TestPostgres, temp_dir};
use time::OffsetDateTime;
use uuid::Uuid;

#[path = "conformance/upgrade.rs"]
mod upgrade;

/// A store under test, and what keeps its database alive.
struct Fixture {
    store: Store,
    options: StoreOptions,
    dir: TempDir,
    postgres: Option<TestPostgres>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = temp_dir();
        let options = StoreOptions { url: None, max_connections: 4, connect_timeout: Duration::from_secs(5) };
        let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("open sqlite: {e:?}"));
        Fixture { store, options, dir, postgres: None }
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
        Fixture { store, options, dir, postgres: Some(postgres) }
    }

    /// The rows of the catalog's two tables, `objects` and `entries`, of every project, read
    /// with SQL of its own: rows the store left behind would not show through it.
    async fn catalog_rows(&self) -> (i64, i64) {
        const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM objects), (SELECT COUNT(*) FROM entries)";
        match &self.postgres {
            Some(postgres) => {
                let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
                let counts = sqlx::query_as(COUNTS).fetch_one(&pool).await.unwrap();
                pool.close().await;
                counts
            }
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.dir.path().join(Store::SQLITE_FILE))
                    .read_only(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                let counts = sqlx::query_as(COUNTS).fetch_one(&pool).await.unwrap();
                pool.close().await;
                counts
            }
        }
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
    tokens_expire,
    the_last_admin_token_stays,
    console_sessions_end_with_their_token,
    meta_values_are_set_once,
    data_survives_reopening,
    prefixes_on_one_bucket_never_overlap,
    due_configurations_come_most_overdue_first,
    leases_have_one_holder_at_a_time,
    a_held_lease_renews_itself,
    work_that_loses_its_lease_stops,
    a_lease_that_cannot_be_renewed_is_lost,
    projects_round_trip,
    projects_stored_before_the_wildcard_rule_still_load,
    project_folders_never_overlap,
    project_folders_never_overlap_under_contention,
    deleting_a_project_takes_its_catalog,
    a_batch_finds_its_stored_keys_alone_or_among_others,
    batches_build_the_tree,
    emptied_folders_disappear,
    folder_markers_keep_their_folder,
    one_batch_mixes_appearing_and_going,
    entries_page_by_name,
    folder_totals_count_every_level,
    big_batches_go_in_chunks,
    keys_page_in_byte_order_with_their_revisions,
    fenced_observations_are_skipped,
    delete_markers_hide_and_unhide_versions,
    restores_show_on_their_files,
    keys_and_names_sort_by_bytes,
    awkward_keys_round_trip,
    concurrent_batches_keep_the_counts,
    reconcile_runs_round_trip,
    running_reconciles_are_interrupted,
    keys_with_nul_are_refused,
    due_reconciles_follow_the_latest_run,
    dead_letters_are_kept,
    outside_changes_keep_the_latest_time_per_key,
    uploads_round_trip_and_expire,
    jobs_run_and_end_once,
    copy_plans_resume_and_report,
    random_batches_keep_the_tree_true,
    small_writes_get_their_turn_between_big_batches,
    audit_events_page_newest_first_by_filter,
    audit_events_are_pruned_by_age,
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
        identity: CredentialIdentity::AwsUser { access_key_id: AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap() },
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
            region: AwsRegion::parse("eu-central-1").unwrap(),
            bucket: BucketName::parse("customer-bucket").unwrap(),
            key_prefix: Some(KeyPrefix::parse(&format!("{n}/")).unwrap()),
            credential_id: credential.id,
            server_side_encryption: Some(ServerSideEncryption::Kms(
                KmsKeyArn::parse("arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
                    .unwrap(),
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
        name: TokenName::parse("a token").unwrap(),
        role,
        projects: if role == Role::Member {
            vec![
                ProjectGrant { id: Uuid::new_v4(), access: ProjectAccess::Read },
                ProjectGrant { id: Uuid::new_v4(), access: ProjectAccess::ReadWrite },
            ]
        } else {
            vec![]
        },
        hint: value[..9].to_owned(),
        created_at: now(),
        last_used_at: None,
        expires_at: None,
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
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/byos").unwrap(),
        },
        sealed_secret: vec![9; 40],
        created_at: now(),
        updated_at: now(),
    };
    s.credentials.insert_credential(&user).await.unwrap();
    s.credentials.insert_credential(&role).await.unwrap();
    assert_eq!(s.credentials.get_credential(user.id).await.ok(), Some(user.clone()));
    let listed = s.credentials.list_credentials().await.unwrap();
    assert_eq!(listed, vec![role.clone(), user.clone()], "listed by name");

    user.identity = CredentialIdentity::AwsUser { access_key_id: AccessKeyId::parse("AKIANEWKEY0000000001").unwrap() };
    user.sealed_secret = vec![7; 60];
    user.updated_at = now() + time::Duration::seconds(1);
    s.credentials.rotate_credential(&user).await.unwrap();
    assert_eq!(s.credentials.get_credential(user.id).await.ok(), Some(user.clone()));

    // A rotation must keep the credential's kind.
    let mut wrong_kind = role.clone();
    wrong_kind.identity = user.identity.clone();
    assert!(matches!(s.credentials.rotate_credential(&wrong_kind).await, Err(StoreError::NotFound)));
    assert_eq!(s.credentials.get_credential(role.id).await.ok(), Some(role.clone()));

    s.credentials.delete_credential(user.id).await.unwrap();
    assert!(matches!(s.credentials.get_credential(user.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.credentials.delete_credential(user.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.credentials.get_credential(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

async fn credential_names_are_unique(f: Fixture) {
    let s = &f.store;
    s.credentials.insert_credential(&user_credential("shared")).await.unwrap();
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
    s.credentials.insert_credential(&credential).await.unwrap();
    for n in ["second user", "first user"] {
        s.configurations.insert_configuration(&configuration(n, &credential)).await.unwrap();
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
    for c in s.configurations.list_configurations().await.unwrap() {
        s.configurations.delete_configuration(c.id).await.unwrap();
    }
    s.credentials.delete_credential(credential.id).await.unwrap();
}

async fn configurations_round_trip(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
    let kms = configuration("with kms", &credential);
    let mut plain = configuration("another", &credential);
    plain.spec.key_prefix = None;
    plain.spec.bucket = BucketName::parse("whole-bucket").unwrap();
    plain.spec.server_side_encryption = Some(ServerSideEncryption::Aes256);
    plain.spec.default_for_region = true;
    let mut bare = configuration("bare", &credential);
    bare.spec.server_side_encryption = None;
    for c in [&kms, &plain, &bare] {
        s.configurations.insert_configuration(c).await.unwrap();
        assert_eq!(s.configurations.get_configuration(c.id).await.ok().as_ref(), Some(c));
    }
    let listed = s.configurations.list_configurations().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.spec.name.as_str()).collect();
    assert_eq!(names, ["another", "bare", "with kms"]);
    s.configurations.delete_configuration(kms.id).await.unwrap();
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
    s.credentials.insert_credential(&credential).await.unwrap();
    s.configurations.insert_configuration(&configuration("same", &credential)).await.unwrap();
    let again = s.configurations.insert_configuration(&configuration("same", &credential)).await;
    assert!(matches!(again, Err(StoreError::Conflict(Conflict::NameTaken { .. }))), "{again:?}");
}

async fn one_default_per_region(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
    let mut first = configuration("first", &credential);
    first.spec.default_for_region = true;
    s.configurations.insert_configuration(&first).await.unwrap();
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
    second.spec.region = AwsRegion::parse("us-east-1").unwrap();
    s.configurations.insert_configuration(&second).await.unwrap();
    let mut third = configuration("third", &credential);
    third.spec.default_for_region = false;
    s.configurations.insert_configuration(&third).await.unwrap();
}

async fn one_default_per_region_under_contention(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
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
        match attempt.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(Conflict::DefaultForRegionTaken { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let defaults = s.configurations.list_configurations().await.unwrap();
    assert_eq!(defaults.iter().filter(|c| c.spec.default_for_region).count(), 1);
}

async fn validation_outcomes_are_recorded(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
    let c = configuration("validated", &credential);
    s.configurations.insert_configuration(&c).await.unwrap();
    let report = ValidationReport {
        checked_at: "2026-11-29T10:00:00Z".to_owned(),
        checks: vec![
            ValidationCheck {
                name: "bucket-exists".to_owned(),
                result: CheckResult::Passed,
                detail: "yes".to_owned(),
                fix: None,
            },
            ValidationCheck {
                name: "bucket-in-region".to_owned(),
                result: CheckResult::Failed,
                detail: "no".to_owned(),
                fix: Some("move it".to_owned()),
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
        bucket_account: Some("111122223333".to_owned()),
    };
    s.configurations.record_validation(c.id, &failed).await.unwrap();
    let got = s.configurations.get_configuration(c.id).await.unwrap();
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
    assert_eq!(got.bucket_account.as_deref(), Some("111122223333"));

    // A validation that did not learn the bucket's owner keeps the one known before.
    let healed = ValidationOutcome {
        status: ConfigurationStatus::Ready,
        error: None,
        failures: 0,
        bucket_account: None,
        ..failed
    };
    s.configurations.record_validation(c.id, &healed).await.unwrap();
    let got = s.configurations.get_configuration(c.id).await.unwrap();
    assert_eq!((got.status, got.error), (ConfigurationStatus::Ready, None));
    assert_eq!(got.bucket_account.as_deref(), Some("111122223333"));
    assert!(matches!(s.configurations.record_validation(Uuid::new_v4(), &healed).await, Err(StoreError::NotFound)));
}

async fn tokens_authenticate_by_hash(f: Fixture) {
    let s = &f.store;
    let (admin, admin_hash) = token(Role::Admin);
    let (member, member_hash) = token(Role::Member);
    s.tokens.insert_token(&admin).await.unwrap();
    s.tokens.insert_token(&member).await.unwrap();
    assert_eq!(s.tokens.count_tokens().await.ok(), Some(2));

    let at = now();
    let found = s.tokens.authenticate(&member_hash).await.unwrap();
    assert_eq!(found.id, member.token.id);
    assert_eq!(found.role, Role::Member);
    assert_eq!(found.projects, member.token.projects);
    // Authenticating is a read; uses are noted apart, and only move forward.
    assert_eq!(s.tokens.get_token(member.token.id).await.ok().and_then(|t| t.last_used_at), None);
    let last_used = |id| async move { s.tokens.get_token(id).await.ok().and_then(|t| t.last_used_at) };
    let later = at + time::Duration::seconds(5);
    s.tokens.note_token_uses(&[(member.token.id, later), (admin.token.id, at), (Uuid::new_v4(), at)]).await.unwrap();
    assert_eq!((last_used(member.token.id).await, last_used(admin.token.id).await), (Some(later), Some(at)));
    s.tokens.note_token_uses(&[(member.token.id, at)]).await.unwrap();
    assert_eq!(last_used(member.token.id).await, Some(later));
    s.tokens.note_token_uses(&[]).await.unwrap();

    assert!(matches!(s.tokens.authenticate("no such hash").await, Err(StoreError::NotFound)));
    assert_eq!(s.tokens.authenticate(&admin_hash).await.map(|t| t.role).ok(), Some(Role::Admin));
    let ids: Vec<Uuid> = s.tokens.list_tokens().await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&admin.token.id) && ids.contains(&member.token.id));
}

async fn tokens_expire(f: Fixture) {
    let s = &f.store;
    let at = now();
    let (mut lasting, lasting_hash) = token(Role::Member);
    lasting.token.expires_at = Some(at + time::Duration::days(30));
    let (mut expired, expired_hash) = token(Role::Admin);
    expired.token.expires_at = Some(at);
    for t in [&lasting, &expired] {
        s.tokens.insert_token(t).await.unwrap();
    }
    assert_eq!(s.tokens.get_token(lasting.token.id).await.ok(), Some(lasting.token.clone()));
    let listed = s.tokens.list_tokens().await.unwrap();
    assert!(listed.contains(&expired.token), "{listed:?}");

    let found = s.tokens.authenticate(&lasting_hash).await.unwrap();
    assert!(!found.is_expired(at));
    assert!(found.is_expired(at + time::Duration::days(30)), "a token expires at the instant it names");

    // An expired token is still found, so that the caller can say it expired.
    let found = s.tokens.authenticate(&expired_hash).await.unwrap();
    assert_eq!((found.id, found.is_expired(at)), (expired.token.id, true));
}

async fn the_last_admin_token_stays(f: Fixture) {
    let s = &f.store;
    let (first, _) = token(Role::Admin);
    let (second, _) = token(Role::Admin);
    let (member, _) = token(Role::Member);
    for t in [&first, &second, &member] {
        s.tokens.insert_token(t).await.unwrap();
    }
    s.tokens.delete_token(member.token.id).await.unwrap();
    s.tokens.delete_token(first.token.id).await.unwrap();
    let refused = s.tokens.delete_token(second.token.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(Conflict::LastAdminToken { .. }))), "{refused:?}");
    assert!(matches!(s.tokens.delete_token(first.token.id).await, Err(StoreError::NotFound)));
    assert_eq!(s.tokens.count_tokens().await.ok(), Some(1));

    // Admin tokens that expire do not count: they would all stop working one day.
    let (mut expiring, _) = token(Role::Admin);
    expiring.token.expires_at = Some(now() + time::Duration::days(1));
    s.tokens.insert_token(&expiring).await.unwrap();
    let refused = s.tokens.delete_token(second.token.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(Conflict::LastAdminToken { .. }))), "{refused:?}");
    s.tokens.delete_token(expiring.token.id).await.unwrap();
    assert_eq!(s.tokens.count_tokens().await.ok(), Some(1));
}

async fn console_sessions_end_with_their_token(f: Fixture) {
    let s = &f.store;
    let at = now();
    let (member, _) = token(Role::Member);
    s.tokens.insert_token(&member).await.unwrap();
    let session = |hash: &str, expires_at| NewSession {
        hash: hash.to_owned(),
        token_id: member.token.id,
        csrf_token: format!("csrf-of-{hash}"),
        created_at: at,
        expires_at,
    };
    let hour = time::Duration::hours(1);
    s.tokens.insert_session(&session("first", at + hour)).await.unwrap();
    s.tokens.insert_session(&session("second", at + hour)).await.unwrap();

    let found = s.tokens.session("first", at).await.unwrap();
    assert_eq!(
        (found.token.id, found.csrf_token.as_str(), found.expires_at),
        (member.token.id, "csrf-of-first", at + hour)
    );
    assert_eq!(found.token.projects, member.token.projects);
    assert!(matches!(s.tokens.session("first", at + hour).await, Err(StoreError::NotFound)), "a session expires");
    assert!(matches!(s.tokens.session("unknown", at).await, Err(StoreError::NotFound)));

    // Signing out ends one session, and again is no error.
    s.tokens.delete_session("first").await.unwrap();
    s.tokens.delete_session("first").await.unwrap();
    assert!(matches!(s.tokens.session("first", at).await, Err(StoreError::NotFound)));
    assert!(s.tokens.session("second", at).await.is_ok());

    // A session made later forgets the ones that expired before it.
    let later = NewSession { created_at: at + hour, expires_at: at + hour * 2, ..session("third", at) };
    s.tokens.insert_session(&later).await.unwrap();
    assert!(matches!(s.tokens.session("second", at).await, Err(StoreError::NotFound)), "pruned");

    // A deleted token takes its sessions with it.
    s.tokens.delete_token(member.token.id).await.unwrap();
    assert!(matches!(s.tokens.session("third", at + hour).await, Err(StoreError::NotFound)));
    assert!(s.tokens.insert_session(&session("orphan", at + hour)).await.is_err(), "a session needs its token");
}

async fn meta_values_are_set_once(f: Fixture) {
    let s = &f.store;
    s.meta.ping().await.unwrap();
    assert_eq!(s.meta.get_meta("fingerprint").await.ok(), Some(None));
    assert_eq!(s.meta.init_meta("fingerprint", "a").await.ok().as_deref(), Some("a"));
    assert_eq!(s.meta.init_meta("fingerprint", "b").await.ok().as_deref(), Some("a"));
    assert_eq!(s.meta.get_meta("fingerprint").await.ok(), Some(Some("a".to_owned())));
}

async fn data_survives_reopening(mut f: Fixture) {
    let credential = user_credential("durable");
    f.store.credentials.insert_credential(&credential).await.unwrap();
    f.store.meta.init_meta("k", "v").await.unwrap();
    f.reopen().await;
    assert_eq!(f.store.credentials.get_credential(credential.id).await.ok(), Some(credential));
    assert_eq!(f.store.meta.get_meta("k").await.ok(), Some(Some("v".to_owned())));
}

async fn prefixes_on_one_bucket_never_overlap(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
    let with_prefix = |n: &str, prefix: Option<&str>| {
        let mut c = configuration(n, &credential);
        c.spec.key_prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap());
        c
    };
    s.configurations.insert_configuration(&with_prefix("genomics", Some("data/genomics/"))).await.unwrap();
    s.configurations.insert_configuration(&with_prefix("imaging", Some("data/imaging/"))).await.unwrap();
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
    elsewhere.spec.bucket = BucketName::parse("another-bucket").unwrap();
    s.configurations.insert_configuration(&elsewhere).await.unwrap();
    assert_eq!(s.configurations.list_configurations().await.map(|l| l.len()).ok(), Some(3));
    let on_bucket = s.configurations.configurations_on_bucket("customer-bucket").await.unwrap();
    let mut names: Vec<&str> = on_bucket.iter().map(|c| c.spec.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["genomics", "imaging"]);
}

async fn due_configurations_come_most_overdue_first(f: Fixture) {
    let s = &f.store;
    let credential = user_credential("cred");
    s.credentials.insert_credential(&credential).await.unwrap();
    let base = now();
    let mut ids = Vec::new();
    for (n, due) in [("later", Some(60)), ("new", None), ("overdue", Some(-60)), ("future", Some(3600))] {
        let mut c = configuration(n, &credential);
        c.next_check_at = due.map(|s| base + time::Duration::seconds(s));
        s.configurations.insert_configuration(&c).await.unwrap();
        ids.push(c.id);
    }
    let due = s.configurations.due_configurations(base, 10).await.unwrap();
    assert_eq!(due, vec![ids[1], ids[2]], "never checked first, then the overdue one");
    let due = s.configurations.due_configurations(base + time::Duration::seconds(120), 10).await.unwrap();
    assert_eq!(due, vec![ids[1], ids[2], ids[0]]);
    assert_eq!(
        s.configurations.due_configurations(base + time::Duration::hours(2), 2).await.map(|d| d.len()).ok(),
        Some(2)
    );
}

async fn leases_have_one_holder_at_a_time(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(60);
    assert_eq!(s.leases.try_lease("configuration:1", "replica-a", ttl).await.ok(), Some(true));
    assert_eq!(s.leases.try_lease("configuration:1", "replica-b", ttl).await.ok(), Some(false));
    assert_eq!(s.leases.try_lease("configuration:1", "replica-a", ttl).await.ok(), Some(true), "renewed");
    assert_eq!(s.leases.try_lease("configuration:2", "replica-b", ttl).await.ok(), Some(true));
    // Expired leases go to whoever asks: a lease of no time expires at once, by the
    // database's clock.
    assert_eq!(s.leases.try_lease("expiring", "replica-a", Duration::ZERO).await.ok(), Some(true));
    assert_eq!(s.leases.try_lease("expiring", "replica-b", ttl).await.ok(), Some(true));
    assert_eq!(s.leases.try_lease("expiring", "replica-a", ttl).await.ok(), Some(false));
    s.leases.release_lease("configuration:1", "replica-b").await.unwrap();
    assert_eq!(s.leases.try_lease("configuration:1", "replica-b", ttl).await.ok(), Some(false), "not b's to release");
    s.leases.release_lease("configuration:1", "replica-a").await.unwrap();
    assert_eq!(s.leases.try_lease("configuration:1", "replica-b", ttl).await.ok(), Some(true));

    // Many contenders at once: exactly one wins.
    let contenders: Vec<_> = (0..8)
        .map(|i| {
            let store = s.clone();
            tokio::spawn(async move { store.leases.try_lease("race", &format!("replica-{i}"), ttl).await })
        })
        .collect();
    let mut winners = 0;
    for c in contenders {
        if c.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

/// Waits until `done` holds, polling; the test's own timeout bounds the wait.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within a minute");
}

/// A held lease renews itself past its first expiry, so nobody else can take it.
async fn a_held_lease_renews_itself(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(3);
    let lease = Lease::take(&s.leases, "renewed", "replica-a", ttl).await.unwrap();
    let lease = lease.unwrap_or_else(|| panic!("the lease is free"));
    // Four renewals, a third of the time to live apart: the first expiry has passed.
    eventually("four renewals", || lease.renewals() >= 4).await;
    assert_eq!(s.leases.try_lease("renewed", "replica-b", ttl).await.ok(), Some(false));
    assert!(!lease.is_lost());
    let held = lease.hold(async { "done" }).await;
    assert_eq!(held, Ok("done"));
    lease.release().await;
    assert_eq!(s.leases.try_lease("renewed", "replica-b", ttl).await.ok(), Some(true), "released");
}

/// Work whose lease another holder took is stopped, and says so.
async fn work_that_loses_its_lease_stops(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(1);
    let lease = Lease::take(&s.leases, "stolen", "replica-a", ttl).await.unwrap();
    let lease = lease.unwrap_or_else(|| panic!("the lease is free"));
    // Another replica takes it over (as after an expiry): the next renewal finds it gone.
    s.leases.release_lease("stolen", lease.holder()).await.unwrap();
    assert_eq!(s.leases.try_lease("stolen", "replica-b", Duration::from_secs(60)).await.ok(), Some(true));
    let work = lease.hold(std::future::pending::<()>()).await;
    assert_eq!(work, Err(LeaseLost { name: "stolen".to_owned() }));
    assert!(lease.is_lost());
}

/// A holder that cannot reach the database stops its work before the lease expires there.
async fn a_lease_that_cannot_be_renewed_is_lost(f: Fixture) {
    let s = &f.store;
    let lease = Lease::take(&s.leases, "unreachable", "replica-a", Duration::from_secs(1)).await;
    let lease = lease.unwrap().unwrap_or_else(|| panic!("the lease is free"));
    s.close().await;
    let work = lease.hold(std::future::pending::<()>()).await;
    assert_eq!(work, Err(LeaseLost { name: "unreachable".to_owned() }));
}

// Projects and their catalog.

/// A configuration on `customer-bucket` with its own credential, stored.
async fn stored_configuration(s: &Store, n: &str) -> Configuration {
    let credential = user_credential(&format!("{n} credential"));
    s.credentials.insert_credential(&credential).await.unwrap();
    let c = configuration(n, &credential);
    s.configurations.insert_configuration(&c).await.unwrap();
    c
}

fn project(n: &str, configuration: &Configuration, folder: &str) -> Project {
    let folder = ProjectFolder::parse(folder).unwrap_or_else(|e| panic!("{folder}: {e}"));
    project_in(name(n), configuration, folder)
}

fn project_in(name: ResourceName, configuration: &Configuration, folder: ProjectFolder) -> Project {
    Project {
        id: Uuid::new_v4(),
        name,
        region: configuration.spec.region.clone(),
        configuration_id: configuration.id,
        key_prefix: folder.key_prefix(configuration.spec.key_prefix.as_ref()),
        folder,
        bucket: configuration.spec.bucket.clone(),
        created_at: now(),
        updated_at: now(),
    }
}

/// A project with an empty catalog, on a configuration of its own.
async fn stored_project(s: &Store) -> Project {
    let c = stored_configuration(s, "data").await;
    let p = project("studies", &c, "studies");
    s.projects.insert_project(&p).await.unwrap();
    p
}

/// Event times: the `n`th event of a test happens at `BASE_MS + n`.
const BASE_MS: i64 = 1_780_000_000_000;

/// The `n`th sequencer of a key: greater `n`, later event.
fn seq(n: u32) -> Sequencer {
    Sequencer::parse(&format!("0055AED6DCD90281E5{n:04X}")).unwrap()
}

fn changes(key: &str, changes: Vec<Change>) -> KeyUpdate {
    KeyUpdate::Changes { key: key.to_owned(), changes }
}

/// Version `version` of `key` written by the `n`th event: `10 * n` bytes, etag `etag-n`.
fn put_version(key: &str, version: &str, n: u32) -> KeyUpdate {
    let change = Change::Created {
        version_id: version.to_owned(),
        sequencer: seq(n),
        size: u64::from(n) * 10,
        etag: format!("etag-{n}"),
        at_ms: BASE_MS + i64::from(n),
    };
    changes(key, vec![change])
}

/// `key` written on an unversioned bucket by the `n`th event.
fn put(key: &str, n: u32) -> KeyUpdate {
    put_version(key, NULL_VERSION, n)
}

fn remove_version(key: &str, version: &str, n: u32) -> KeyUpdate {
    let change = Change::Removed { version_id: version.to_owned(), sequencer: seq(n), at_ms: BASE_MS + i64::from(n) };
    changes(key, vec![change])
}

/// `key` deleted on an unversioned bucket by the `n`th event.
fn remove(key: &str, n: u32) -> KeyUpdate {
    remove_version(key, NULL_VERSION, n)
}

/// The file `put_version(_, version, n)` shows.
fn file(version: &str, n: u32) -> EntryKind {
    EntryKind::File(FileEntry {
        size: u64::from(n) * 10,
        etag: format!("etag-{n}"),
        last_modified_ms: BASE_MS + i64::from(n),
        storage_class: None,
        version_id: Some(version.to_owned()).filter(|v| v != NULL_VERSION),
        restore: None,
    })
}

fn folder(marker: bool, children: u64) -> EntryKind {
    EntryKind::Folder { marker, children }
}

fn entry(parent: &str, name: &str, kind: EntryKind) -> Entry {
    Entry { parent: parent.to_owned(), name: name.to_owned(), kind }
}

async fn apply(s: &Store, project: Uuid, updates: &[KeyUpdate]) -> ApplyOutcome {
    s.data.apply(project, updates).await.unwrap_or_else(|e| panic!("apply: {e:?}"))
}

fn outcome(changed: u32, unchanged: u32, fenced: u32, revision: i64) -> ApplyOutcome {
    ApplyOutcome { changed, unchanged, fenced, revision }
}

/// Every entry of a folder, in one page.
async fn list(s: &Store, project: Uuid, folder: &str) -> Vec<Entry> {
    s.data.entries(project, folder, None, "", 10_000).await.unwrap_or_else(|e| panic!("entries of {folder:?}: {e:?}"))
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

async fn get_entry(s: &Store, project: Uuid, path: &str) -> Option<Entry> {
    match s.data.entry(project, path).await {
        Ok(entry) => Some(entry),
        Err(StoreError::NotFound) => None,
        Err(e) => panic!("entry {path:?}: {e:?}"),
    }
}

async fn all_keys(s: &Store, project: Uuid) -> Vec<(String, i64)> {
    let keys = s.data.keys(project, None, 10_000).await.unwrap_or_else(|e| panic!("keys: {e:?}"));
    keys.into_iter().map(|k| (k.key, k.revision)).collect()
}

/// Names and folders with `*`, `?` or `$` were accepted before they were refused for widening
/// policies: their rows must still load, so that the services can say what is wrong with them.
async fn projects_stored_before_the_wildcard_rule_still_load(f: Fixture) {
    let s = &f.store;
    let c = stored_configuration(s, "data").await;
    let old = project_in(
        ResourceName::parse_relaxed("study $1").unwrap(),
        &c,
        ProjectFolder::parse_relaxed("team*").unwrap(),
    );
    s.projects.insert_project(&old).await.unwrap();
    let loaded = s.projects.get_project(old.id).await.unwrap();
    assert_eq!(loaded, old);
    assert!(loaded.key_prefix.policy_safe().is_err(), "{:?}", loaded.key_prefix);
    assert_eq!(s.projects.list_projects().await.unwrap(), vec![old]);
}

async fn projects_round_trip(f: Fixture) {
    let s = &f.store;
    let c = stored_configuration(s, "data").await;
    let beta = project("beta", &c, "b");
    let alpha = project("alpha", &c, "a/b");
    let upper = project("Zulu", &c, "z");
    for p in [&beta, &alpha, &upper] {
        s.projects.insert_project(p).await.unwrap();
        assert_eq!(s.projects.get_project(p.id).await.ok().as_ref(), Some(p));
    }
    assert_eq!(alpha.key_prefix.as_str(), "data/a/b/");
    let listed = s.projects.list_projects().await.unwrap();
    assert_eq!(listed, vec![upper.clone(), alpha.clone(), beta.clone()], "by name, byte by byte");
    assert_eq!(s.data.revision(alpha.id).await.ok(), Some(0), "a new project is at revision 0");

    let taken = s.projects.insert_project(&project("alpha", &c, "elsewhere")).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(Conflict::NameTaken { resource: "project", ref name })) if name == "alpha"),
        "{taken:?}"
    );
    let mut orphan = project("orphan", &c, "orphan");
    orphan.configuration_id = Uuid::new_v4();
    let orphaned = s.projects.insert_project(&orphan).await;
    assert!(matches!(orphaned, Err(StoreError::NotFound)), "{orphaned:?}");

    let refused = s.configurations.delete_configuration(c.id).await;
    match refused {
        Err(StoreError::Conflict(Conflict::InUse { resource, name, used_by, users })) => {
            assert_eq!((resource, name.as_str(), used_by), ("storage configuration", "data", "project"));
            assert_eq!(users, ["Zulu", "alpha", "beta"]);
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(s.configurations.get_configuration(c.id).await.is_ok());

    for p in [&beta, &alpha, &upper] {
        s.projects.delete_project(p.id).await.unwrap();
    }
    assert!(matches!(s.projects.get_project(alpha.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.projects.delete_project(alpha.id).await, Err(StoreError::NotFound)));
    assert_eq!(s.projects.list_projects().await.map(|l| l.len()).ok(), Some(0));
    s.configurations.delete_configuration(c.id).await.unwrap_or_else(|e| panic!("unused now: {e}"));
}

async fn project_folders_never_overlap(f: Fixture) {
    let s = &f.store;
    let c = stored_configuration(s, "data").await;
    s.projects.insert_project(&project("a-b", &c, "a/b")).await.unwrap();
    for (n, folder) in [("same", "a/b"), ("inside", "a/b/c"), ("deep inside", "a/b/c/d"), ("containing", "a")] {
        let refused = s.projects.insert_project(&project(n, &c, folder)).await;
        match refused {
            Err(StoreError::Conflict(Conflict::ProjectPrefixOverlap { name, bucket, prefix })) => {
                assert_eq!((name.as_str(), bucket.as_str(), prefix.as_str()), ("a-b", "customer-bucket", "data/a/b/"));
            }
            other => panic!("{n} ({folder}): expected ProjectPrefixOverlap, got {other:?}"),
        }
    }
    // Siblings whose names share a beginning are apart: a/b/ is no prefix of a/bc/.
    for (n, folder) in [("sibling", "a/bc"), ("shorter sibling", "a/a"), ("next door", "ab")] {
        s.projects.insert_project(&project(n, &c, folder)).await.unwrap_or_else(|e| panic!("{n}: {e}"));
    }
    // The same folder under another configuration (another prefix of the bucket) is elsewhere.
    let other = stored_configuration(s, "other").await;
    s.projects.insert_project(&project("other ab", &other, "a/b")).await.unwrap();
    assert_eq!(s.projects.list_projects().await.map(|l| l.len()).ok(), Some(5));
}

async fn project_folders_never_overlap_under_contention(f: Fixture) {
    let s = &f.store;
    let c = stored_configuration(s, "data").await;
    // x, x/x, x/x/x, ...: every two of them overlap.
    let attempts: Vec<_> = (1..=8)
        .map(|depth| {
            let p = project(&format!("contender {depth}"), &c, &vec!["x"; depth].join("/"));
            let store = s.clone();
            tokio::spawn(async move { store.projects.insert_project(&p).await })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(Conflict::ProjectPrefixOverlap { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.projects.list_projects().await.map(|l| l.len()).ok(), Some(1));
}

/// A batch's keys are new rows or replace stored ones. Each store finds the stored ones its own
/// way (PostgreSQL reads the batch's range when the range holds no more rows than the batch has
/// keys, and looks the keys up one by one otherwise): either way, a stored key written as new
/// would fail the batch, and a key outside the batch must stay as it was.
async fn a_batch_finds_its_stored_keys_alone_or_among_others(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let keys: Vec<String> = (0..10).map(|n| format!("d/k{n}")).collect();
    let first: Vec<KeyUpdate> = keys.iter().zip(1..).map(|(key, n)| put(key, n)).collect();
    assert_eq!(apply(s, p.id, &first).await, outcome(10, 0, 0, 1));
    let batches: [(&[&str], i64); 4] = [
        // The range holds more rows than the batch has keys: key by key.
        (&["d/k0", "d/k5", "d/k9", "d/k55"], 2),
        // The range holds the batch's keys only.
        (&["d/k3", "d/k4"], 3),
        // The range holds a key the batch does not name (d/k1), and no more rows than keys.
        (&["d/k0", "d/k2", "d/k25"], 4),
        // Nothing stored in the range.
        (&["e/a", "e/b"], 5),
    ];
    let mut n = 100;
    for (batch, revision) in batches {
        let updates: Vec<KeyUpdate> = batch.iter().map(|key| put(key, n + batch.len() as u32)).collect();
        n += 100;
        assert_eq!(apply(s, p.id, &updates).await, outcome(batch.len() as u32, 0, 0, revision), "{batch:?}");
    }
    let stored = s.data.keys(p.id, None, 100).await.unwrap();
    let revisions: Vec<(&str, i64)> = stored.iter().map(|k| (k.key.as_str(), k.revision)).collect();
    assert_eq!(
        revisions,
        [
            ("d/k0", 4),
            ("d/k1", 1),
            ("d/k2", 4),
            ("d/k25", 4),
            ("d/k3", 3),
            ("d/k4", 3),
            ("d/k5", 2),
            ("d/k55", 2),
            ("d/k6", 1),
            ("d/k7", 1),
            ("d/k8", 1),
            ("d/k9", 2),
            ("e/a", 5),
            ("e/b", 5),
        ]
    );
    assert_eq!(list(s, p.id, "d/").await.len(), 12);
}

async fn deleting_a_project_takes_its_catalog(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let neighbour = project("neighbour", &stored_configuration(s, "other").await, "studies");
    s.projects.insert_project(&neighbour).await.unwrap();
    for id in [p.id, neighbour.id] {
        apply(s, id, &[put("a/b/c.txt", 1), put("top.txt", 2)]).await;
    }
    let run = reconcile_run(p.id, now());
    s.sync.insert_reconcile(&run).await.unwrap();
    // Each project: two keys; two folders and two files.
    assert_eq!(f.catalog_rows().await, (4, 8));

    s.projects.delete_project(p.id).await.unwrap();
    assert_eq!(f.catalog_rows().await, (2, 4), "the neighbour's rows are left, and only they");
    assert!(matches!(s.data.revision(p.id).await, Err(StoreError::NotFound)));
    assert_eq!(s.data.keys(p.id, None, 100).await.map(|k| k.len()).ok(), Some(0));
    for folder in ["", "a/", "a/b/"] {
        assert_eq!(s.data.entries(p.id, folder, None, "", 100).await.map(|e| e.len()).ok(), Some(0), "{folder:?}");
    }
    assert!(matches!(s.data.entry(p.id, "top.txt").await, Err(StoreError::NotFound)));
    assert!(matches!(s.sync.get_reconcile(run.id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.sync.latest_reconcile(p.id).await, Ok(None)));
    let late = s.data.apply(p.id, &[put("late.txt", 3)]).await;
    assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");
    assert!(matches!(s.data.revision(p.id).await, Err(StoreError::NotFound)), "nothing came back");

    // Another project's catalog stays.
    assert_eq!(names(&list(s, neighbour.id, "").await), ["a/", "top.txt"]);
    assert_eq!(all_keys(s, neighbour.id).await.len(), 2);
}

async fn batches_build_the_tree(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let batch = [put("a/b/c.txt", 1), put("a/d.txt", 2), put("top.txt", 3)];
    assert_eq!(apply(s, p.id, &batch).await, outcome(3, 0, 0, 1));
    assert_eq!(s.data.revision(p.id).await.ok(), Some(1));

    let root = list(s, p.id, "").await;
    assert_eq!(root, [entry("", "a/", folder(false, 2)), entry("", "top.txt", file(NULL_VERSION, 3))]);
    assert_eq!(root[1].path(), "top.txt");
    let a = list(s, p.id, "a/").await;
    assert_eq!(a, [entry("a/", "b/", folder(false, 1)), entry("a/", "d.txt", file(NULL_VERSION, 2))]);
    assert_eq!(a[0].path(), "a/b/");
    assert_eq!(list(s, p.id, "a/b/").await, [entry("a/b/", "c.txt", file(NULL_VERSION, 1))]);
    assert_eq!(get_entry(s, p.id, "a/b/c.txt").await, Some(entry("a/b/", "c.txt", file(NULL_VERSION, 1))));
    assert_eq!(get_entry(s, p.id, "a/b/").await, Some(entry("a/", "b/", folder(false, 1))));
    assert_eq!(get_entry(s, p.id, "a/").await, Some(entry("", "a/", folder(false, 2))));
    for missing in ["a/b", "a/b/c.txt/", "nothing.txt", "a/nothing/", ""] {
        assert_eq!(get_entry(s, p.id, missing).await, None, "{missing:?}");
    }
    assert_eq!(list(s, p.id, "top.txt/").await, []);

    // The same batch again changes nothing, but it is a batch: the revision grows.
    assert_eq!(apply(s, p.id, &batch).await, outcome(0, 3, 0, 2));
    assert_eq!(list(s, p.id, "").await, root);
    assert_eq!(list(s, p.id, "a/").await, a);

    // A rewrite changes the file in place, and only its key's revision.
    assert_eq!(apply(s, p.id, &[put("top.txt", 4), put("a/d.txt", 1)]).await, outcome(1, 1, 0, 3));
    assert_eq!(get_entry(s, p.id, "top.txt").await, Some(entry("", "top.txt", file(NULL_VERSION, 4))));
    assert_eq!(get_entry(s, p.id, "a/d.txt").await, Some(entry("a/", "d.txt", file(NULL_VERSION, 2))), "older");
    assert_eq!(get_entry(s, p.id, "a/").await, Some(entry("", "a/", folder(false, 2))));
    assert_eq!(
        all_keys(s, p.id).await,
        [("a/b/c.txt".to_owned(), 1), ("a/d.txt".to_owned(), 1), ("top.txt".to_owned(), 3)]
    );

    // An empty batch is a batch too.
    assert_eq!(apply(s, p.id, &[]).await, outcome(0, 0, 0, 4));
    let unknown = s.data.apply(Uuid::new_v4(), &batch).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    assert!(matches!(s.data.revision(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

async fn emptied_folders_disappear(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    apply(s, p.id, &[put("a/b/c.txt", 1), put("a/d.txt", 2), put("top.txt", 3)]).await;

    assert_eq!(apply(s, p.id, &[remove("a/b/c.txt", 4)]).await, outcome(1, 0, 0, 2));
    assert_eq!(get_entry(s, p.id, "a/b/c.txt").await, None);
    assert_eq!(get_entry(s, p.id, "a/b/").await, None);
    assert_eq!(list(s, p.id, "a/b/").await, []);
    assert_eq!(list(s, p.id, "a/").await, [entry("a/", "d.txt", file(NULL_VERSION, 2))]);
    assert_eq!(get_entry(s, p.id, "a/").await, Some(entry("", "a/", folder(false, 1))));

    apply(s, p.id, &[remove("a/d.txt", 5)]).await;
    assert_eq!(get_entry(s, p.id, "a/").await, None);
    assert_eq!(list(s, p.id, "").await, [entry("", "top.txt", file(NULL_VERSION, 3))]);

    // Writes older than the removals, arriving late, do not bring the files back: the keys keep
    // their tombstones.
    assert_eq!(apply(s, p.id, &[put("a/b/c.txt", 2), put("a/d.txt", 1)]).await, outcome(0, 2, 0, 4));
    assert_eq!(list(s, p.id, "").await, [entry("", "top.txt", file(NULL_VERSION, 3))]);
    assert_eq!(get_entry(s, p.id, "a/b/c.txt").await, None);
    let keys: Vec<String> = all_keys(s, p.id).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a/b/c.txt", "a/d.txt", "top.txt"], "removed keys keep their rows");

    // A later write does.
    assert_eq!(apply(s, p.id, &[put("a/b/c.txt", 6)]).await, outcome(1, 0, 0, 5));
    assert_eq!(
        list(s, p.id, "").await,
        [entry("", "a/", folder(false, 1)), entry("", "top.txt", file(NULL_VERSION, 3))]
    );
    assert_eq!(list(s, p.id, "a/").await, [entry("a/", "b/", folder(false, 1))]);
    assert_eq!(list(s, p.id, "a/b/").await, [entry("a/b/", "c.txt", file(NULL_VERSION, 6))]);
}

async fn folder_markers_keep_their_folder(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let marker = Change::Created {
        version_id: NULL_VERSION.to_owned(),
        sequencer: seq(1),
        size: 0,
        etag: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        at_ms: BASE_MS + 1,
    };
    apply(s, p.id, &[changes("m/", vec![marker])]).await;
    assert_eq!(list(s, p.id, "").await, [entry("", "m/", folder(true, 0))], "a folder, and no file");
    assert_eq!(get_entry(s, p.id, "m/").await, Some(entry("", "m/", folder(true, 0))));
    assert_eq!(list(s, p.id, "m/").await, []);

    apply(s, p.id, &[put("m/x.txt", 2)]).await;
    assert_eq!(get_entry(s, p.id, "m/").await, Some(entry("", "m/", folder(true, 1))));
    apply(s, p.id, &[remove("m/", 3)]).await;
    assert_eq!(get_entry(s, p.id, "m/").await, Some(entry("", "m/", folder(false, 1))), "its file keeps it");
    apply(s, p.id, &[remove("m/x.txt", 4)]).await;
    assert_eq!(list(s, p.id, "").await, []);

    // A marker deep down makes its parents, which go with it.
    apply(s, p.id, &[put("n/o/", 1)]).await;
    assert_eq!(list(s, p.id, "").await, [entry("", "n/", folder(false, 1))]);
    assert_eq!(list(s, p.id, "n/").await, [entry("n/", "o/", folder(true, 0))]);
    apply(s, p.id, &[remove("n/o/", 2)]).await;
    assert_eq!(list(s, p.id, "").await, []);
    assert_eq!(list(s, p.id, "n/").await, []);
}

async fn one_batch_mixes_appearing_and_going(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    apply(s, p.id, &[put("a/old.txt", 1), put("gone/only.txt", 1)]).await;

    // In one batch: a file appears and another goes in one folder; a folder empties; a marker
    // comes with files under it; a key comes and goes; a key's events come in two updates.
    let batch = [
        put("a/new.txt", 2),
        remove("a/old.txt", 2),
        remove("gone/only.txt", 2),
        put("m/", 1),
        put("m/x.txt", 1),
        put("m/n/y.txt", 1),
        put("flash.txt", 1),
        remove("flash.txt", 2),
        remove("twice.txt", 3),
        put("twice.txt", 4),
    ];
    assert_eq!(apply(s, p.id, &batch).await, outcome(8, 0, 0, 2));
    assert_eq!(
        list(s, p.id, "").await,
        [
            entry("", "a/", folder(false, 1)),
            entry("", "m/", folder(true, 2)),
            entry("", "twice.txt", file(NULL_VERSION, 4))
        ]
    );
    assert_eq!(list(s, p.id, "a/").await, [entry("a/", "new.txt", file(NULL_VERSION, 2))]);
    assert_eq!(
        list(s, p.id, "m/").await,
        [entry("m/", "n/", folder(false, 1)), entry("m/", "x.txt", file(NULL_VERSION, 1))]
    );
    assert_eq!(list(s, p.id, "m/n/").await, [entry("m/n/", "y.txt", file(NULL_VERSION, 1))]);
    assert_eq!(get_entry(s, p.id, "gone/").await, None);
    assert_eq!(get_entry(s, p.id, "flash.txt").await, None);

    // Everything under the marker goes in one batch, the marker last in it: the folder goes too.
    let batch = [remove("m/x.txt", 2), remove("m/n/y.txt", 2), remove("m/", 2)];
    assert_eq!(apply(s, p.id, &batch).await, outcome(3, 0, 0, 3));
    assert_eq!(names(&list(s, p.id, "").await), ["a/", "twice.txt"]);
    assert_eq!(list(s, p.id, "m/").await, []);
    assert_eq!(list(s, p.id, "m/n/").await, []);
}

/// A folder's order: folders first, then files, each in byte order.
fn folders_first(a: &String, b: &String) -> std::cmp::Ordering {
    (!a.ends_with('/'), a.as_bytes()).cmp(&(!b.ends_with('/'), b.as_bytes()))
}

async fn entries_page_by_name(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    // Names in a scrambled order, some of them folders (which come first); byte order puts
    // "Z" before "a".
    let mut expected: Vec<String> = (0..250)
        .map(|i| match i % 5 {
            0 => format!("f{:03}.txt", (i * 37) % 1000),
            1 => format!("F{:03}", (i * 37) % 1000),
            2 => format!("f{:03}-x", (i * 37) % 1000),
            3 => format!("f{:03}/", (i * 37) % 1000),
            _ => format!("é{i}"),
        })
        .collect();
    let updates: Vec<KeyUpdate> = expected
        .iter()
        .map(|n| if n.ends_with('/') { put(&format!("big/{n}inner.txt"), 1) } else { put(&format!("big/{n}"), 1) })
        .collect();
    for batch in updates.chunks(60) {
        apply(s, p.id, batch).await;
    }
    expected.sort_unstable_by(folders_first);
    assert_eq!(get_entry(s, p.id, "big/").await, Some(entry("", "big/", folder(false, 250))));

    // A filter on the names' start keeps the order, folders first, on every page.
    let filtered = |prefix: &'static str, after: Option<&'static str>, limit| async move {
        let page = s.data.entries(p.id, "big/", after, prefix, limit).await;
        let page = page.unwrap_or_else(|e| panic!("prefix {prefix:?}: {e:?}"));
        page.into_iter().map(|e| e.name).collect::<Vec<String>>()
    };
    let starting =
        |prefix: &str| -> Vec<String> { expected.iter().filter(|n| n.starts_with(prefix)).cloned().collect() };
    assert_eq!(filtered("f0", None, 100).await, starting("f0"));
    assert_eq!(filtered("f0", None, 3).await, ["f031/", "f036/", "f066/"]);
    assert_eq!(filtered("f0", Some("f071/"), 3).await, ["f000.txt", "f029-x", "f030.txt"]);
    assert_eq!(filtered("f03", Some("f030.txt"), 10).await, ["f034-x", "f035.txt"]);
    assert_eq!(filtered("é1", None, 100).await, starting("é1"));
    assert_eq!(filtered("é", None, 100).await.len(), 50);
    assert_eq!(filtered("nothing", None, 100).await, Vec::<String>::new());

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s
            .data
            .entries(p.id, "big/", after.as_deref(), "", 100)
            .await
            .unwrap_or_else(|e| panic!("page after {after:?}: {e:?}"));
        pages += 1;
        assert!(page.len() <= 100);
        if pages == 1 {
            // New names while paging: before the cursor (never seen), after it (seen once).
            apply(s, p.id, &[put("big/!early", 2), put("big/zzz-late", 2), put("big/", 2)]).await;
        }
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        seen.extend(page.iter().map(|e| e.name.clone()));
        if page.len() < 100 {
            break;
        }
    }
    assert_eq!(pages, 3);
    let originals: Vec<String> = seen.iter().filter(|n| expected.contains(n)).cloned().collect();
    assert_eq!(originals, expected, "every name once, folders first, in byte order");
    expected.push("zzz-late".to_owned());
    expected.sort_unstable_by(folders_first);
    assert_eq!(seen, expected, "a name that came after the cursor is seen once, one before it never");
    assert_eq!(get_entry(s, p.id, "big/").await, Some(entry("", "big/", folder(true, 252))));
}

async fn big_batches_go_in_chunks(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    // More keys than one statement takes (500), over several folders.
    let keys: Vec<String> = (0..1_234).map(|i| format!("d{}/k{i:05}", i % 3)).collect();
    let batch: Vec<KeyUpdate> = keys.iter().map(|k| put(k, 1)).collect();
    assert_eq!(apply(s, p.id, &batch).await, outcome(1_234, 0, 0, 1));
    assert_eq!(
        list(s, p.id, "").await,
        [
            entry("", "d0/", folder(false, 412)),
            entry("", "d1/", folder(false, 411)),
            entry("", "d2/", folder(false, 411))
        ]
    );
    assert_eq!(apply(s, p.id, &batch).await, outcome(0, 1_234, 0, 2));
    let gone: Vec<KeyUpdate> = keys.iter().filter(|k| !k.starts_with("d2/")).map(|k| remove(k, 2)).collect();
    assert_eq!(apply(s, p.id, &gone).await, outcome(823, 0, 0, 3));
    assert_eq!(list(s, p.id, "").await, [entry("", "d2/", folder(false, 411))]);
    assert_eq!(all_keys(s, p.id).await.len(), 1_234);
}

async fn keys_page_in_byte_order_with_their_revisions(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    apply(s, p.id, &[put("k/3", 1), put("k/1", 1), put("k/2/x", 1), put("k/2", 1)]).await;
    apply(s, p.id, &[put("k/0", 1), put("k/3", 2)]).await;
    assert_eq!(s.data.keys(p.id, None, 0).await.map(|k| k.len()).ok(), Some(0));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.data.keys(p.id, after.as_deref(), 2).await.unwrap_or_else(|e| panic!("{e:?}"));
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        seen.extend(page.into_iter().map(|k| (k.key.clone(), k.revision, k.state.visible().map(|v| v.etag))));
    }
    let expected = [
        ("k/0", 2, "etag-1"),
        ("k/1", 1, "etag-1"),
        ("k/2", 1, "etag-1"),
        ("k/2/x", 1, "etag-1"),
        ("k/3", 2, "etag-2"),
    ]
    .map(|(k, r, e)| (k.to_owned(), r, Some(e.to_owned())));
    assert_eq!(seen, expected);
    let from = s.data.keys(p.id, Some("k/2"), 10).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(from.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["k/2/x", "k/3"]);
}

/// What a listing of `put_version(_, NULL_VERSION, n)` shows, in another storage class.
fn listed(key: &str, n: u32, storage_class: &str, fence: Option<i64>) -> KeyUpdate {
    KeyUpdate::Observed {
        key: key.to_owned(),
        observation: Observation {
            as_of_ms: BASE_MS + 1_000,
            versions: vec![ObservedVersion {
                version_id: NULL_VERSION.to_owned(),
                kind: VersionKind::Object {
                    size: u64::from(n) * 10,
                    etag: format!("etag-{n}"),
                    storage_class: Some(storage_class.to_owned()),
                },
                last_modified_ms: BASE_MS + i64::from(n),
                restore: None,
            }],
        },
        fence,
    }
}

async fn fenced_observations_are_skipped(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    apply(s, p.id, &[put("old.txt", 1)]).await;
    let fence = s.data.revision(p.id).await.unwrap_or_else(|e| panic!("{e:?}"));
    // A reconcile starts at `fence`; meanwhile an event changes new.txt.
    assert_eq!(apply(s, p.id, &[put("new.txt", 2)]).await.revision, fence + 1);

    let scan = [listed("new.txt", 2, "GLACIER", Some(fence)), listed("old.txt", 1, "GLACIER", Some(fence))];
    assert_eq!(apply(s, p.id, &scan).await, outcome(1, 1, 1, fence + 2));
    let storage_class = |e: Option<Entry>| match e.map(|e| e.kind) {
        Some(EntryKind::File(file)) => file.storage_class,
        other => panic!("not a file: {other:?}"),
    };
    assert_eq!(storage_class(get_entry(s, p.id, "new.txt").await), None, "the event's side stays");
    assert_eq!(storage_class(get_entry(s, p.id, "old.txt").await).as_deref(), Some("GLACIER"));
    assert_eq!(all_keys(s, p.id).await, [("new.txt".to_owned(), fence + 1), ("old.txt".to_owned(), fence + 2)]);

    // A fence at the key's revision, or none, lets the observation in.
    let again = [listed("new.txt", 2, "GLACIER", Some(fence + 1)), listed("old.txt", 1, "STANDARD_IA", None)];
    assert_eq!(apply(s, p.id, &again).await, outcome(2, 0, 0, fence + 3));
    assert_eq!(storage_class(get_entry(s, p.id, "new.txt").await).as_deref(), Some("GLACIER"));
    assert_eq!(storage_class(get_entry(s, p.id, "old.txt").await).as_deref(), Some("STANDARD_IA"));

    // An event earlier in the same batch fences the observation just as well.
    // (The write happens after the listings' time, or they would reflect it.)
    let mixed = [put("new.txt", 2_000), listed("new.txt", 2, "DEEP_ARCHIVE", Some(fence + 3))];
    assert_eq!(apply(s, p.id, &mixed).await, outcome(1, 0, 1, fence + 4));
    assert_eq!(get_entry(s, p.id, "new.txt").await, Some(entry("", "new.txt", file(NULL_VERSION, 2_000))));
}

async fn delete_markers_hide_and_unhide_versions(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let key = "docs/report.pdf";
    apply(s, p.id, &[put_version(key, "v1", 1)]).await;
    assert_eq!(get_entry(s, p.id, key).await, Some(entry("docs/", "report.pdf", file("v1", 1))));

    let marker = Change::DeleteMarkerCreated { version_id: "m1".to_owned(), sequencer: seq(2), at_ms: BASE_MS + 2 };
    assert_eq!(apply(s, p.id, &[changes(key, vec![marker])]).await, outcome(1, 0, 0, 2));
    assert_eq!(get_entry(s, p.id, key).await, None);
    assert_eq!(get_entry(s, p.id, "docs/").await, None, "its only file is hidden");
    assert_eq!(list(s, p.id, "").await, []);

    assert_eq!(apply(s, p.id, &[remove_version(key, "m1", 3)]).await, outcome(1, 0, 0, 3));
    assert_eq!(get_entry(s, p.id, key).await, Some(entry("docs/", "report.pdf", file("v1", 1))), "v1 is back");
    assert_eq!(list(s, p.id, "").await, [entry("", "docs/", folder(false, 1))]);

    // A newer version shows over v1; removing it shows v1 again, in place.
    apply(s, p.id, &[put_version(key, "v2", 4)]).await;
    assert_eq!(get_entry(s, p.id, key).await, Some(entry("docs/", "report.pdf", file("v2", 4))));
    apply(s, p.id, &[remove_version(key, "v2", 5)]).await;
    assert_eq!(get_entry(s, p.id, key).await, Some(entry("docs/", "report.pdf", file("v1", 1))));
    assert_eq!(get_entry(s, p.id, "docs/").await, Some(entry("", "docs/", folder(false, 1))));
}

async fn restores_show_on_their_files(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let key = "cold/archive.tar";
    apply(s, p.id, &[put_version(key, "v1", 1)]).await;
    let expires = Some("2026-12-01T00:00:00Z".to_owned());
    for (state, at) in [
        (RestoreState::InProgress, 10),
        (RestoreState::Restored { expires: expires.clone() }, 20),
        (RestoreState::Restored { expires: None }, 30),
        (RestoreState::Expired, 40),
    ] {
        let restore = Change::Restore { version_id: "v1".to_owned(), state: state.clone(), at_ms: BASE_MS + at };
        assert_eq!(apply(s, p.id, &[changes(key, vec![restore])]).await.changed, 1, "{state:?}");
        let got = get_entry(s, p.id, key).await.map(|e| e.kind);
        assert!(
            matches!(got, Some(EntryKind::File(FileEntry { ref restore, .. })) if *restore == Some(state.clone())),
            "{got:?}"
        );
    }
    // A newer version has no restore of its own.
    apply(s, p.id, &[put_version(key, "v2", 50)]).await;
    assert_eq!(get_entry(s, p.id, key).await, Some(entry("cold/", "archive.tar", file("v2", 50))));
}

async fn keys_and_names_sort_by_bytes(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let names_in_byte_order = ["B", "Z", "a", "b", "é", "ë", "中"];
    let mut updates = Vec::new();
    for n in ["é", "a", "中", "Z", "ë", "B", "b"] {
        updates.push(put(n, 1));
        updates.push(put(&format!("x/{n}"), 1));
    }
    apply(s, p.id, &updates).await;
    let mut expected: Vec<String> = names_in_byte_order.iter().map(|n| (*n).to_owned()).collect();
    expected.insert(0, "x/".to_owned());
    assert_eq!(names(&list(s, p.id, "").await), expected);
    assert_eq!(names(&list(s, p.id, "x/").await), names_in_byte_order);
    // Pages follow the same order.
    let page = s.data.entries(p.id, "x/", Some("Z"), "", 2).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(names(&page), ["a", "b"]);
    let page = s.data.entries(p.id, "x/", Some("b"), "", 10).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(names(&page), ["é", "ë", "中"]);

    let keys: Vec<String> = all_keys(s, p.id).await.into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(keys, sorted);
    assert_eq!(keys[..5], ["B", "Z", "a", "b", "x/B"]);
    let after: Vec<String> = s
        .data
        .keys(p.id, Some("x/Z"), 3)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .into_iter()
        .map(|k| k.key)
        .collect();
    assert_eq!(after, ["x/a", "x/b", "x/é"]);
}

async fn awkward_keys_round_trip(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let awkward = [
        "100% done.txt",
        "under_score/a_b.txt",
        "it's \"quoted\".txt",
        "back\\slash.txt",
        "semi;colon -- DROP TABLE entries.txt",
        "spaces in name/ file .txt",
        "ünïcödé/日本語.txt",
        "emoji 🦀.txt",
        "a//double.txt",
        "/leading.txt",
        "tab\there.txt",
    ];
    let updates: Vec<KeyUpdate> = awkward.iter().map(|k| put(k, 1)).collect();
    assert_eq!(apply(s, p.id, &updates).await.changed, 11);
    for key in awkward {
        let got = get_entry(s, p.id, key).await.unwrap_or_else(|| panic!("{key:?} is missing"));
        assert_eq!(got.path(), key);
        assert_eq!(got.kind, file(NULL_VERSION, 1), "{key:?}");
        let parent = got.parent.clone();
        assert!(names(&list(s, p.id, &parent).await).contains(&got.name.as_str()), "{key:?} in {parent:?}");
    }
    // `%` and `_` are no wildcards: a folder holds only its own children.
    assert_eq!(names(&list(s, p.id, "under_score/").await), ["a_b.txt"]);
    assert_eq!(list(s, p.id, "a/").await, [entry("a/", "/", folder(false, 1))]);
    assert_eq!(names(&list(s, p.id, "a//").await), ["double.txt"]);
    assert_eq!(names(&list(s, p.id, "/").await), ["leading.txt"]);
    let keys: Vec<String> = all_keys(s, p.id).await.into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<String> = awkward.iter().map(|k| (*k).to_owned()).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);

    // Overwritten: each key's stored state and each folder's row are read back by the store
    // (SQLite returns them as JSON text), and the overwrite finds them.
    let again: Vec<KeyUpdate> = awkward.iter().map(|k| put(k, 2)).collect();
    assert_eq!(apply(s, p.id, &again).await.changed, 11);
    for key in awkward {
        let got = get_entry(s, p.id, key).await.unwrap_or_else(|| panic!("{key:?} is missing"));
        assert_eq!(got.kind, file(NULL_VERSION, 2), "{key:?}");
    }
    let keys: Vec<String> = all_keys(s, p.id).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, expected, "no key twice");
    assert_eq!(names(&list(s, p.id, "under_score/").await), ["a_b.txt"]);

    // The project folder's own marker (the empty relative key) is kept, and shows as no entry.
    let root = list(s, p.id, "").await;
    apply(s, p.id, &[put("", 2)]).await;
    let keys = s.data.keys(p.id, None, 2).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(keys.first().map(|k| k.key.as_str()), Some(""), "the first key");
    assert_eq!(list(s, p.id, "").await, root, "root entries unchanged");
    assert_eq!(get_entry(s, p.id, "").await, None);
}

async fn concurrent_batches_keep_the_counts(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let batches: Vec<_> = (0..8)
        .map(|i| {
            let store = s.clone();
            let batch: Vec<KeyUpdate> = (0..10)
                .flat_map(|j| [put(&format!("shared/{i}-{j}"), 1), put(&format!("shared/{i}/{j}"), 1)])
                .collect();
            tokio::spawn(async move { store.data.apply(p.id, &batch).await })
        })
        .collect();
    let mut revisions = Vec::new();
    for batch in batches {
        let outcome = batch.await.unwrap().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((outcome.changed, outcome.unchanged), (20, 0));
        revisions.push(outcome.revision);
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=8).collect::<Vec<i64>>(), "one revision per batch");
    assert_eq!(get_entry(s, p.id, "shared/").await, Some(entry("", "shared/", folder(false, 88))));
    for i in 0..8 {
        assert_eq!(
            get_entry(s, p.id, &format!("shared/{i}/")).await,
            Some(entry("shared/", &format!("{i}/"), folder(false, 10)))
        );
    }
}

fn reconcile_run(project: Uuid, started_at: OffsetDateTime) -> ReconcileRun {
    ReconcileRun {
        id: Uuid::new_v4(),
        project_id: project,
        reason: "periodic".to_owned(),
        status: ReconcileStatus::Running,
        fence: 7,
        listed: 0,
        drift: Drift::default(),
        error: None,
        started_at,
        updated_at: started_at,
        finished_at: None,
        baseline: None,
    }
}

async fn reconcile_runs_round_trip(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    assert_eq!(s.sync.latest_reconcile(p.id).await.ok(), Some(None));
    let t = now();
    let mut first = reconcile_run(p.id, t);
    first.reason = "initial-import".to_owned();
    let later = reconcile_run(p.id, t + time::Duration::seconds(60));
    // Inserted out of order: the latest is the one that started last.
    s.sync.insert_reconcile(&later).await.unwrap();
    s.sync.insert_reconcile(&first).await.unwrap();
    assert_eq!(s.sync.get_reconcile(first.id).await.ok().as_ref(), Some(&first));
    assert_eq!(s.sync.latest_reconcile(p.id).await.ok(), Some(Some(later.clone())));

    let mut done = first.clone();
    done.status = ReconcileStatus::Finished;
    done.listed = 12_345;
    for i in 0..12 {
        done.drift.added(&format!("added/{i}"));
    }
    done.drift.removed("gone's \"key\"");
    done.drift.changed("changed/é");
    done.updated_at = t + time::Duration::seconds(30);
    done.finished_at = Some(t + time::Duration::seconds(30));
    done.baseline = Some("byos-inventory/b/byos/2026-11-30T00-00Z/manifest.json".to_owned());
    s.sync.update_reconcile(&done).await.unwrap();
    let got = s.sync.get_reconcile(first.id).await.unwrap();
    assert_eq!(got, done);
    assert_eq!((got.drift.added, got.drift.added_samples.len()), (12, Drift::SAMPLES));

    let mut failed = later.clone();
    failed.status = ReconcileStatus::Failed;
    failed.error = Some("access denied".to_owned());
    s.sync.update_reconcile(&failed).await.unwrap();
    assert_eq!(s.sync.latest_reconcile(p.id).await.ok(), Some(Some(failed)));

    let nowhere = reconcile_run(Uuid::new_v4(), t);
    assert!(matches!(s.sync.insert_reconcile(&nowhere).await, Err(StoreError::NotFound)));
    assert!(matches!(s.sync.update_reconcile(&nowhere).await, Err(StoreError::NotFound)));
    assert!(matches!(s.sync.get_reconcile(nowhere.id).await, Err(StoreError::NotFound)));
}

/// Runs left running by a holder that is gone end interrupted; other projects' runs stay.
async fn running_reconciles_are_interrupted(f: Fixture) {
    let s = &f.store;
    let p = stored_project_named(s, "orphaned", "orphaned").await;
    let other = stored_project_named(s, "busy", "busy").await;
    let t = now();
    let orphan = reconcile_run(p.id, t);
    let mut finished = reconcile_run(p.id, t - time::Duration::hours(1));
    finished.status = ReconcileStatus::Finished;
    finished.finished_at = Some(t - time::Duration::minutes(50));
    let elsewhere = reconcile_run(other.id, t);
    for run in [&orphan, &finished, &elsewhere] {
        s.sync.insert_reconcile(run).await.unwrap();
    }
    let later = t + time::Duration::seconds(5);
    let n = s.sync.interrupt_reconciles(p.id, "its replica stopped", later).await.unwrap();
    assert_eq!(n, 1);
    let got = s.sync.get_reconcile(orphan.id).await.unwrap();
    assert_eq!(
        (got.status, got.error.as_deref(), got.finished_at),
        (ReconcileStatus::Interrupted, Some("its replica stopped"), Some(later))
    );
    assert_eq!(s.sync.get_reconcile(finished.id).await.ok(), Some(finished));
    assert_eq!(s.sync.get_reconcile(elsewhere.id).await.ok(), Some(elsewhere));
}

/// One query finds the projects due by their latest run.
async fn due_reconciles_follow_the_latest_run(f: Fixture) {
    let s = &f.store;
    let t = now();
    let minutes = |m: i64| t - time::Duration::minutes(m);
    let schedule = ReconcileSchedule {
        created_before: minutes(1),
        running_stale_before: minutes(2),
        failed_before: minutes(3),
        finished_before: minutes(60),
    };
    // (name, the latest run's status, its last update or end in minutes ago, due)
    let cases = [
        ("never-run", None, 0, false),
        ("running-fresh", Some(ReconcileStatus::Running), 1, false),
        ("running-stale", Some(ReconcileStatus::Running), 5, true),
        ("failed-recently", Some(ReconcileStatus::Failed), 2, false),
        ("failed-long-ago", Some(ReconcileStatus::Failed), 4, true),
        ("interrupted", Some(ReconcileStatus::Interrupted), 4, true),
        ("finished-recently", Some(ReconcileStatus::Finished), 30, false),
        ("finished-long-ago", Some(ReconcileStatus::Finished), 61, true),
    ];
    let mut expected = Vec::new();
    for (n, status, ago, due) in cases {
        let p = stored_project_named(s, n, n).await;
        if let Some(status) = status {
            // An older run that would be due does not count: only the latest does.
            let mut old = reconcile_run(p.id, minutes(500));
            old.status = ReconcileStatus::Failed;
            old.finished_at = Some(minutes(499));
            s.sync.insert_reconcile(&old).await.unwrap();
            let mut run = reconcile_run(p.id, minutes(ago + 1));
            run.status = status;
            run.updated_at = minutes(ago);
            run.finished_at = (status != ReconcileStatus::Running).then(|| minutes(ago));
            s.sync.insert_reconcile(&run).await.unwrap();
        }
        if due {
            expected.push(p.id);
        }
    }
    // A project created long ago that never ran is due; the one above was created just now.
    let mut old_project = project("created-long-ago", &stored_configuration(s, "old").await, "old");
    old_project.created_at = minutes(10);
    s.projects.insert_project(&old_project).await.unwrap();
    expected.push(old_project.id);
    expected.sort();
    let mut due = s.sync.due_reconciles(&schedule).await.unwrap();
    due.sort();
    assert_eq!(due, expected);
}

/// A key with NUL, which PostgreSQL's text cannot hold, is refused by both stores alike, and the
/// rest of its batch is not applied either.
async fn keys_with_nul_are_refused(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let before = s.data.revision(p.id).await.unwrap();
    let batch = [put("fine.txt", 1), put("bad\0key.txt", 2)];
    let refused = s.data.apply(p.id, &batch).await;
    assert!(matches!(&refused, Err(StoreError::UnstorableKey(k)) if k == "bad\0key.txt"), "{refused:?}");
    assert_eq!(s.data.revision(p.id).await.ok(), Some(before));
    assert_eq!(get_entry(s, p.id, "fine.txt").await, None);
    assert!(!byos_catalog::storable_key("bad\0key.txt") && byos_catalog::storable_key("fine.txt"));
}

async fn dead_letters_are_kept(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.sync.count_dead_letters().await.ok(), Some(0));
    for i in 0..3 {
        let letter = DeadLetter {
            id: Uuid::new_v4(),
            queue: "https://sqs.eu-central-1.amazonaws.com/123456789012/byos-events".to_owned(),
            message_id: format!("message-{i}"),
            body: "{\"not\": \"an S3 event\"}".to_owned(),
            error: "missing field `Records`".to_owned(),
            received_at: now(),
        };
        s.sync.insert_dead_letter(&letter).await.unwrap();
    }
    assert_eq!(s.sync.count_dead_letters().await.ok(), Some(3));
}

async fn outside_changes_keep_the_latest_time_per_key(f: Fixture) {
    let s = &f.store;
    let change =
        |bucket: &str, key: &str, at_ms: i64| OutsideChange { bucket: bucket.to_owned(), key: key.to_owned(), at_ms };
    let keys = |found: Vec<OutsideChange>| found.into_iter().map(|c| (c.key, c.at_ms)).collect::<Vec<_>>();
    s.sync
        .note_outside_changes(&[
            change("b", "data/p/b.txt", 20),
            change("b", "data/p/a.txt", 10),
            // The same key twice in one call, and a key in another bucket.
            change("b", "data/p/b.txt", 25),
            change("b", "data/q/c.txt", 30),
            change("b", "data/p", 30),
            change("other", "data/p/z.txt", 40),
        ])
        .await
        .unwrap();
    // An older time changes nothing, a newer one wins.
    s.sync.note_outside_changes(&[change("b", "data/p/a.txt", 5), change("b", "data/p/é.txt", 50)]).await.unwrap();
    s.sync.note_outside_changes(&[change("b", "data/p/b.txt", 60)]).await.unwrap();

    let all = s.sync.outside_changes("b", "data/p/", 0, None, 100).await.unwrap();
    assert_eq!(
        keys(all),
        [("data/p/a.txt".to_owned(), 10), ("data/p/b.txt".to_owned(), 60), ("data/p/é.txt".to_owned(), 50)]
    );
    let recent = s.sync.outside_changes("b", "data/p/", 20, None, 100).await.unwrap();
    assert_eq!(keys(recent).len(), 2);
    // Pages in key order.
    let first = s.sync.outside_changes("b", "data/p/", 0, None, 1).await.unwrap();
    assert_eq!(first[0].key, "data/p/a.txt");
    let next = s.sync.outside_changes("b", "data/p/", 0, Some("data/p/a.txt"), 1).await.unwrap();
    assert_eq!(next[0].key, "data/p/b.txt");
    assert!(s.sync.outside_changes("b", "data/p/", 0, Some("data/p/é.txt"), 1).await.unwrap().is_empty());

    assert_eq!(s.sync.prune_outside_changes(30).await.unwrap(), 1);
    let left = s.sync.outside_changes("b", "data/", 0, None, 100).await.unwrap();
    assert_eq!(
        keys(left),
        [
            ("data/p".to_owned(), 30),
            ("data/p/b.txt".to_owned(), 60),
            ("data/p/é.txt".to_owned(), 50),
            ("data/q/c.txt".to_owned(), 30)
        ]
    );
}

/// A small deterministic generator (xorshift), so that a failing history repeats.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

/// Walks the tree from the root: every file's path, and every folder with the number of
/// entries it holds and its count.
async fn walk(s: &Store, project: Uuid) -> (std::collections::BTreeSet<String>, Vec<(String, u64, u64, bool)>) {
    let mut files = std::collections::BTreeSet::new();
    let mut folders = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(folder) = pending.pop() {
        let entries = list(s, project, &folder).await;
        if !folder.is_empty() {
            let Some(Entry { kind: EntryKind::Folder { marker, children }, .. }) = get_entry(s, project, &folder).await
            else {
                panic!("folder {folder:?} is listed but has no entry");
            };
            folders.push((folder.clone(), entries.len() as u64, children, marker));
        }
        for e in entries {
            match e.kind {
                EntryKind::File(_) => {
                    files.insert(e.path());
                }
                EntryKind::Folder { .. } => pending.push(e.path()),
            }
        }
    }
    (files, folders)
}

/// Random histories of writes and removals over a few nested keys and folder markers, applied
/// in random batches, out of order, with duplicates: after every batch the tree shows exactly
/// the keys whose state is visible, each folder counts exactly its entries, and no folder stays
/// that is empty without a marker.
async fn random_batches_keep_the_tree_true(f: Fixture) {
    const KEYS: [&str; 9] = ["a", "d/a", "d/b", "d/e/a", "d/e/", "d/", "x/y/z/w", "x/", "x/y/"];
    let s = &f.store;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..40 {
        let project = stored_project_named(s, &format!("random {round}"), &format!("r{round}")).await;
        // Each key's history, then all events shuffled and some repeated.
        let mut events = Vec::new();
        let mut n = 0;
        for key in KEYS {
            for _ in 0..rng.below(4) {
                n += 1;
                events.push(if rng.below(3) == 0 { remove(key, n) } else { put(key, n) });
            }
        }
        for i in (1..events.len()).rev() {
            events.swap(i, rng.below(i + 1));
        }
        for _ in 0..events.len() / 3 {
            let again = events[rng.below(events.len())].clone();
            events.push(again);
        }
        while !events.is_empty() {
            let batch: Vec<KeyUpdate> = events.drain(..1 + rng.below(events.len()).min(4)).collect();
            apply(s, project.id, &batch).await;
            let stored = s.data.keys(project.id, None, 10_000).await.unwrap_or_else(|e| panic!("keys: {e:?}"));
            let visible: std::collections::BTreeSet<String> = stored
                .iter()
                .filter(|k| !k.key.ends_with('/') && k.state.visible().is_some())
                .map(|k| k.key.clone())
                .collect();
            let markers: std::collections::BTreeSet<String> = stored
                .iter()
                .filter(|k| k.key.ends_with('/') && k.state.visible().is_some())
                .map(|k| k.key.clone())
                .collect();
            let (files, folders) = walk(s, project.id).await;
            assert_eq!(files, visible, "round {round}: the files are the visible keys");
            for (folder, held, children, marker) in folders {
                assert_eq!(held, children, "round {round}: {folder:?} counts its entries");
                assert_eq!(marker, markers.contains(&folder), "round {round}: {folder:?}'s marker");
                assert!(held > 0 || marker, "round {round}: {folder:?} is empty and has no marker");
            }
            for marker in &markers {
                assert!(get_entry(s, project.id, marker).await.is_some(), "round {round}: marker {marker:?} shows");
            }
        }
    }
}

async fn stored_project_named(s: &Store, name: &str, folder: &str) -> Project {
    let configuration = stored_configuration(s, name).await;
    let p = project(name, &configuration, folder);
    s.projects.insert_project(&p).await.unwrap_or_else(|e| panic!("insert project: {e:?}"));
    p
}

/// Writes of one statement (a lease renewal, a dead letter) are not starved by large batches
/// committed back to back: on SQLite they queue for the write connection instead of retrying in
/// SQLite's busy handler, which sleeps on a timer and can miss every short gap between two
/// transactions, for as many batches as come.
///
/// Starvation is counted, not timed: while the appliers keep the store busy, each renewal may
/// wait for the batches queued before it, never for more.
async fn small_writes_get_their_turn_between_big_batches(mut f: Fixture) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const APPLIERS: usize = 3;
    const RENEWALS: usize = 5;
    // Long enough for any machine: the count below is what fails a starved renewal.
    f.options.connect_timeout = Duration::from_secs(60);
    f.reopen().await;
    let s = f.store.clone();
    let p = stored_project(&s).await;
    // The appliers' batches are made beforehand, so that a batch always waits for the write lock
    // and takes it the moment another commits.
    let batches: Vec<Vec<KeyUpdate>> = (0..40_u32)
        .map(|b| (0..6_000).map(|i| put(&format!("d{:02}/k{b:03}-{i:05}", i % 50), b * 6_000 + i)).collect())
        .collect();
    let batches = Arc::new(batches);
    let (next, committed, stop) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let mut appliers = tokio::task::JoinSet::new();
    for _ in 0..APPLIERS {
        let (s, batches, next, committed, stop) =
            (s.clone(), batches.clone(), next.clone(), committed.clone(), stop.clone());
        appliers.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let b = next.fetch_add(1, Ordering::SeqCst) % batches.len();
                s.data.apply(p.id, &batches[b]).await.unwrap_or_else(|e| panic!("a batch: {e}"));
                committed.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // The renewals start once batches are flowing, and the appliers go on until they are done.
    while committed.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for renewal in 0..RENEWALS {
        let before = committed.load(Ordering::SeqCst);
        let held = s.leases.try_lease("busy", "me", Duration::from_secs(60)).await;
        let waited = committed.load(Ordering::SeqCst) - before;
        assert_eq!(held.ok(), Some(true), "renewal {renewal} failed while batches were committed");
        // The batch running and those queued before the renewal, and one counted late.
        assert!(
            waited <= APPLIERS + 1,
            "renewal {renewal} waited for {waited} batches to commit: it does not get its turn"
        );
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(done) = appliers.join_next().await {
        done.unwrap();
    }
}

fn upload(project: Uuid, path: &str, created_at: OffsetDateTime, expires_in: time::Duration) -> Upload {
    Upload {
        id: Uuid::new_v4(),
        project_id: project,
        path: path.to_owned(),
        multipart_id: Some(format!("multipart-{path}")),
        size: 5 * 1024 * 1024 * 1024 * 1024,
        part_size: 550 * 1024 * 1024,
        part_count: 10_000,
        content_type: Some("application/octet-stream".to_owned()),
        created_by: Uuid::new_v4(),
        created_at,
        expires_at: created_at + expires_in,
    }
}

async fn uploads_round_trip_and_expire(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let now = now();
    let old = upload(p.id, "reads/a.bam", now - time::Duration::hours(30), time::Duration::hours(24));
    let mut new = upload(p.id, "reads/b.bam", now, time::Duration::hours(24));
    new.multipart_id = None;
    new.content_type = None;
    (new.size, new.part_size, new.part_count) = (10, 10, 1);
    for u in [&new, &old] {
        s.uploads.insert_upload(u).await.unwrap();
    }
    assert_eq!(s.uploads.get_upload(p.id, old.id).await.unwrap(), old, "5 TiB round-trips");
    assert!(
        matches!(s.uploads.get_upload(Uuid::new_v4(), old.id).await, Err(StoreError::NotFound)),
        "another project's"
    );
    assert_eq!(s.uploads.list_uploads(p.id).await.unwrap(), vec![old.clone(), new.clone()], "oldest first");
    assert_eq!(s.uploads.expired_uploads(now, 10).await.unwrap(), vec![old.clone()]);
    assert_eq!(s.uploads.expired_uploads(now + time::Duration::days(2), 1).await.unwrap(), vec![old.clone()]);

    s.uploads.delete_upload(old.id).await.unwrap();
    assert!(matches!(s.uploads.delete_upload(old.id).await, Err(StoreError::NotFound)), "one completion wins");
    let orphan = upload(Uuid::new_v4(), "x", now, time::Duration::hours(1));
    assert!(matches!(s.uploads.insert_upload(&orphan).await, Err(StoreError::NotFound)), "no such project");
    // A project's delete takes its uploads.
    s.projects.delete_project(p.id).await.unwrap();
    assert_eq!(s.uploads.list_uploads(p.id).await.unwrap(), Vec::<Upload>::new());
    assert_eq!(s.uploads.expired_uploads(now + time::Duration::days(2), 10).await.unwrap(), Vec::<Upload>::new());
}

async fn jobs_run_and_end_once(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let now = now();
    let delete = JobSpec::DeleteFolder { folder: "runs/42/".to_owned() };
    let older = Job::queued(p.id, delete.clone(), Uuid::new_v4(), now - time::Duration::minutes(5));
    let move_spec = JobSpec::MoveFolder { from: "a/".to_owned(), to: "b/ü/".to_owned(), overwrite: true };
    let newer = Job::queued(p.id, move_spec, Uuid::new_v4(), now);
    for job in [&newer, &older] {
        s.jobs.insert_job(job).await.unwrap();
    }
    assert_eq!(s.jobs.get_job(older.id).await.unwrap(), older);
    assert_eq!(s.jobs.list_jobs(Some(p.id), 10).await.unwrap(), vec![newer.clone(), older.clone()], "newest first");
    assert_eq!(s.jobs.list_jobs(None, 1).await.unwrap(), vec![newer.clone()]);
    assert_eq!(s.jobs.list_jobs(Some(Uuid::new_v4()), 10).await.unwrap(), Vec::<Job>::new());
    assert_eq!(s.jobs.unfinished_jobs(10).await.unwrap(), vec![older.clone(), newer.clone()], "oldest first");

    // The older one runs: progress, then a cancel request its runner sees, then its end.
    let progress = JobProgress {
        objects_total: Some(2_500),
        objects_done: 1_000,
        bytes_total: Some(5 << 40),
        bytes_done: 1 << 40,
        ..JobProgress::default()
    };
    let later = now + time::Duration::seconds(1);
    assert!(!s.jobs.record_job_progress(older.id, &progress, later).await.unwrap(), "nobody asked it to stop");
    let running = s.jobs.get_job(older.id).await.unwrap();
    assert_eq!((running.status, running.progress, running.started_at), (JobStatus::Running, progress, Some(later)));
    let asked = s.jobs.cancel_job(older.id, later).await.unwrap();
    assert_eq!((asked.status, asked.cancel_requested), (JobStatus::Running, true), "its runner stops it");
    assert!(s.jobs.record_job_progress(older.id, &progress, later).await.unwrap(), "the runner hears of it");
    let stopped = JobProgress { objects_done: 1_200, ..progress };
    let problem = byos_domain::Problem::restore(byos_domain::ErrorCode::Internal, "Internal error e-1".to_owned());
    s.jobs.finish_job(older.id, JobStatus::Cancelled, &stopped, Some(&problem), later).await.unwrap();
    let ended = s.jobs.get_job(older.id).await.unwrap();
    assert_eq!(
        (ended.status, ended.progress, ended.error.clone(), ended.finished_at),
        (JobStatus::Cancelled, stopped, Some(problem), Some(later))
    );
    assert!(s.jobs.record_job_progress(older.id, &progress, later).await.unwrap(), "an ended job stays ended");
    assert_eq!(s.jobs.get_job(older.id).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(s.jobs.cancel_job(older.id, later).await.unwrap(), ended, "cancelling an ended job changes nothing");

    // A queued job ends at its cancel; a runner that took it up late hears so.
    let cancelled = s.jobs.cancel_job(newer.id, later).await.unwrap();
    assert_eq!((cancelled.status, cancelled.finished_at), (JobStatus::Cancelled, Some(later)));
    assert!(s.jobs.record_job_progress(newer.id, &JobProgress::default(), later).await.unwrap());
    assert_eq!(s.jobs.unfinished_jobs(10).await.unwrap(), Vec::<Job>::new());

    let orphan = Job::queued(Uuid::new_v4(), delete, Uuid::new_v4(), now);
    assert!(matches!(s.jobs.insert_job(&orphan).await, Err(StoreError::NotFound)), "no such project");
    assert!(matches!(s.jobs.get_job(orphan.id).await, Err(StoreError::NotFound)));
    // A project's delete takes its jobs.
    s.projects.delete_project(p.id).await.unwrap();
    assert_eq!(s.jobs.list_jobs(None, 10).await.unwrap(), Vec::<Job>::new());
    assert!(matches!(s.jobs.record_job_progress(older.id, &progress, later).await, Err(StoreError::NotFound)));
}

async fn copy_plans_resume_and_report(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let now = now();
    let spec = CopySpec {
        source_project: p.id,
        paths: vec!["runs/".to_owned(), "a b.txt".to_owned()],
        destination: "in/ü/".to_owned(),
        on_conflict: OnConflict::Skip,
        include: vec!["**/*.txt".to_owned()],
        exclude: Vec::new(),
        dry_run: false,
    };
    let job = Job::queued(p.id, JobSpec::Copy(spec.clone()), Uuid::new_v4(), now);
    s.jobs.insert_job(&job).await.unwrap();
    assert_eq!(s.jobs.get_job(job.id).await.unwrap(), job, "the spec round-trips");
    let report = ValidationReport {
        checked_at: "2026-12-01T00:00:00Z".to_owned(),
        checks: vec![ValidationCheck {
            name: "source:objects-listable".to_owned(),
            result: CheckResult::Passed,
            detail: "listed".to_owned(),
            fix: None,
        }],
    };
    s.jobs.record_job_preflight(job.id, &report).await.unwrap();

    // The plan grows a page at a time, the totals with it; 1,200 objects span three inserts.
    let object = |seq: u64| JobObject {
        seq,
        source_key: format!("runs/{seq:05}'ü.txt"),
        version_id: seq.is_multiple_of(2).then(|| format!("v{seq}")),
        size: seq * 10,
        etag: format!("e{seq}"),
        destination_key: format!("in/ü/runs/{seq:05}.txt"),
        result: ObjectResult::Pending,
        error: None,
    };
    let first: Vec<JobObject> = (0..1_200).map(object).collect();
    let plan = JobPlan { path: 0, after: Some("runs/01199.txt".to_owned()), done: false, objects: 1_200 };
    let progress = JobProgress { objects_total: Some(1_200), bytes_total: Some(1_199 * 600), ..JobProgress::default() };
    let later = now + time::Duration::seconds(1);
    assert!(!s.jobs.plan_job_objects(job.id, &first, &plan, &progress, later).await.unwrap());
    let planned = s.jobs.get_job(job.id).await.unwrap();
    assert_eq!(
        (planned.status, planned.plan.as_ref(), planned.progress, planned.preflight.as_ref()),
        (JobStatus::Running, Some(&plan), progress, Some(&report))
    );
    let done = JobPlan { path: 2, after: None, done: true, objects: 1_201 };
    s.jobs.plan_job_objects(job.id, &[object(1_200)], &done, &progress, later).await.unwrap();
    assert_eq!(s.jobs.get_job(job.id).await.unwrap().plan, Some(done));
    // Planning the same seq again is refused: a plan never repeats an object.
    assert!(s.jobs.plan_job_objects(job.id, &[object(3)], &plan, &progress, later).await.is_err());

    // Results land with the progress; pending pages skip what is done.
    let results: Vec<(u64, ObjectResult, Option<String>)> = (0..600)
        .map(|seq| match seq {
            7 => (seq, ObjectResult::Failed, Some("AccessDenied: no".to_owned())),
            8 => (seq, ObjectResult::Skipped, None),
            _ => (seq, ObjectResult::Copied, None),
        })
        .collect();
    // Two replicas record halves of a page: the counters grow by each one's objects and bytes.
    let (first_half, second_half) = results.split_at(300);
    let bytes =
        |range: std::ops::Range<u64>| range.filter(|seq| ![7, 8].contains(seq)).map(|seq| seq * 10).sum::<u64>();
    let half = s.jobs.record_job_objects(job.id, first_half, later).await.unwrap();
    let halfway =
        JobProgress { objects_done: 298, objects_skipped: 1, objects_failed: 1, bytes_done: bytes(0..300), ..progress };
    assert_eq!(half, byos_catalog::Recorded { progress: halfway, cancel: false });
    let copied = JobProgress { objects_done: 598, bytes_done: bytes(0..600), ..halfway };
    let recorded = s.jobs.record_job_objects(job.id, second_half, later).await.unwrap();
    assert_eq!((recorded.progress, recorded.cancel), (copied, false));
    assert_eq!(s.jobs.get_job(job.id).await.unwrap().progress, copied);
    // An object recorded again (a replica that lost its range's lease) counts once, and keeps
    // its first result.
    let again =
        s.jobs.record_job_objects(job.id, &[(5, ObjectResult::Copied, None), (7, ObjectResult::Copied, None)], later);
    assert_eq!(again.await.unwrap().progress, copied);
    let pending = s.jobs.job_objects(job.id, None, true, 2).await.unwrap();
    assert_eq!(pending, vec![object(600), object(601)]);
    let tail = s.jobs.job_objects(job.id, Some(1_199), true, 10).await.unwrap();
    assert_eq!(tail, vec![object(1_200)]);
    let report_rows = s.jobs.job_objects(job.id, Some(5), false, 4).await.unwrap();
    let failed = JobObject { result: ObjectResult::Failed, error: Some("AccessDenied: no".to_owned()), ..object(7) };
    let skipped = JobObject { result: ObjectResult::Skipped, ..object(8) };
    assert_eq!(
        report_rows,
        vec![
            JobObject { result: ObjectResult::Copied, ..object(6) },
            failed,
            skipped,
            JobObject { result: ObjectResult::Copied, ..object(9) }
        ]
    );
    // A cancel is heard through either record.
    s.jobs.cancel_job(job.id, later).await.unwrap();
    assert!(s.jobs.record_job_objects(job.id, &[(600, ObjectResult::Copied, None)], later).await.unwrap().cancel);
    // A project's delete takes the job's objects with it.
    s.projects.delete_project(p.id).await.unwrap();
    assert_eq!(s.jobs.job_objects(job.id, None, false, 10).await.unwrap(), Vec::<JobObject>::new());
}

async fn folder_totals_count_every_level(f: Fixture) {
    let s = &f.store;
    let p = stored_project(s).await;
    let inside = [("a/b/x", 1), ("a/b/c/y", 2), ("a/b/c/d/ü", 3), ("a/b/", 0)];
    let beside = [("a/b.txt", 4), ("a/b-1/w", 5), ("a/b0/z", 6), ("a/bz", 7), ("b/x", 8), ("a/b", 9)];
    let updates: Vec<KeyUpdate> = inside.iter().chain(&beside).map(|(key, n)| put(key, *n)).collect();
    apply(s, p.id, &updates).await;
    // Sizes are ten times `n`; the marker `a/b/` is a folder's, not a file.
    let totals = s.data.folder_totals(p.id, "a/b/").await.unwrap();
    assert_eq!(totals, FolderTotals { files: 3, bytes: 60 });
    assert_eq!(s.data.folder_totals(p.id, "a/b/c/").await.unwrap(), FolderTotals { files: 2, bytes: 50 });
    assert_eq!(s.data.folder_totals(p.id, "nothing/").await.unwrap(), FolderTotals::default());
    apply(s, p.id, &[remove("a/b/c/y", 20)]).await;
    assert_eq!(s.data.folder_totals(p.id, "a/b/").await.unwrap(), FolderTotals { files: 2, bytes: 40 });
}

fn audit_event(at: OffsetDateTime, actor: &AuditActor, action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        at,
        actor: actor.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        status: 201,
        source_ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("byos/0.1".to_owned()),
        request_id: Uuid::new_v4().to_string(),
        detail: Some(serde_json::json!({"access": "read", "expiresAt": "2026-12-01T11:00:00Z"})),
    }
}

/// Every page of `query`, ten events at a time, through the cursor of each page's last event.
async fn audit_pages(s: &Store, query: AuditQuery) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    let mut query = query;
    loop {
        let page = s.audit.audit_events(&query, 10).await.unwrap();
        let Some(last) = page.last() else { return all };
        query.after = Some(AuditCursor { at: last.at, id: last.id });
        let full = page.len() == 10;
        all.extend(page);
        if !full {
            return all;
        }
    }
}

async fn audit_events_page_newest_first_by_filter(f: Fixture) {
    let s = &f.store;
    let ada = AuditActor { token: Uuid::new_v4(), name: "ada".to_owned() };
    let ci = AuditActor { token: Uuid::new_v4(), name: "ci".to_owned() };
    let start = now();
    // 25 events, several in the same millisecond, so that pages split ties by id.
    let mut events = Vec::new();
    for n in 0..25i64 {
        let at = start + time::Duration::milliseconds(n / 3);
        let (actor, action) = if n % 2 == 0 { (&ada, "create_project") } else { (&ci, "delete_data") };
        let target = format!("/api/v1/projects/{}_%/data?path=/ü{n}", n % 5);
        events.push(audit_event(at, actor, action, &target));
    }
    for event in &events {
        s.audit.record_audit(event).await.unwrap();
    }
    let newest_first = |mut selected: Vec<AuditEvent>| {
        selected.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        selected
    };
    let all = audit_pages(s, AuditQuery::default()).await;
    assert_eq!(all, newest_first(events.clone()));

    let by_token = AuditQuery { actor: Some(ActorFilter::Token(ci.token)), ..AuditQuery::default() };
    let expected: Vec<_> = events.iter().filter(|e| e.actor == ci).cloned().collect();
    assert_eq!(audit_pages(s, by_token).await, newest_first(expected.clone()));
    let by_name = AuditQuery { actor: Some(ActorFilter::Name("ci".to_owned())), ..AuditQuery::default() };
    assert_eq!(audit_pages(s, by_name).await, newest_first(expected));

    let by_action = AuditQuery { action: Some("create_project".to_owned()), ..AuditQuery::default() };
    let expected: Vec<_> = events.iter().filter(|e| e.action == "create_project").cloned().collect();
    assert_eq!(audit_pages(s, by_action).await, newest_first(expected));

    // A target is a prefix, with `_` and `%` taken as themselves.
    let prefix = "/api/v1/projects/3_%/";
    let by_target = AuditQuery { target: Some(prefix.to_owned()), ..AuditQuery::default() };
    let expected: Vec<_> = events.iter().filter(|e| e.target.starts_with(prefix)).cloned().collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(audit_pages(s, by_target).await, newest_first(expected));
    let wildcard = AuditQuery { target: Some("/api/v1/projects/_".to_owned()), ..AuditQuery::default() };
    assert_eq!(audit_pages(s, wildcard).await, Vec::new());

    // `since` is inclusive, `until` exclusive.
    let (since, until) = (start + time::Duration::milliseconds(2), start + time::Duration::milliseconds(5));
    let window = AuditQuery { since: Some(since), until: Some(until), ..AuditQuery::default() };
    let expected: Vec<_> = events.iter().filter(|e| e.at >= since && e.at < until).cloned().collect();
    assert_eq!(expected.len(), 9);
    assert_eq!(audit_pages(s, window).await, newest_first(expected));
}

async fn audit_events_are_pruned_by_age(f: Fixture) {
    let s = &f.store;
    let actor = AuditActor { token: Uuid::new_v4(), name: "ops".to_owned() };
    let cutoff = now();
    let old: Vec<_> = (1..=7)
        .map(|days| audit_event(cutoff - time::Duration::days(days), &actor, "delete_token", "/api/v1/tokens/x"))
        .collect();
    let recent = audit_event(cutoff, &actor, "create_token", "/api/v1/tokens");
    for event in old.iter().chain([&recent]) {
        s.audit.record_audit(event).await.unwrap();
    }
    // In chunks: 5, then the last 2, then nothing; the event at the cutoff stays.
    assert_eq!(s.audit.prune_audit(cutoff, 5).await.unwrap(), 5);
    assert_eq!(s.audit.prune_audit(cutoff, 5).await.unwrap(), 2);
    assert_eq!(s.audit.prune_audit(cutoff, 5).await.unwrap(), 0);
    assert_eq!(audit_pages(s, AuditQuery::default()).await, vec![recent]);
}
