//! The store: one small trait per aggregate ([`CredentialStore`], [`ConfigurationStore`],
//! [`TokenStore`], [`LeaseStore`], [`MetaStore`], [`ProjectStore`], [`DataStore`],
//! [`SyncStore`], [`UploadStore`], [`JobStore`], [`AuditStore`]), each implemented on SQLite (the embedded default) and on
//! PostgreSQL (for several replicas). [`Store::open`] picks one from the database URL and applies
//! that database's forward-only migrations.
//!
//! Both implementations share their SQL (it is written in the dialect both accept) and run one
//! conformance suite (`tests/conformance.rs`). This is the only crate that names sqlx.

mod data;
mod error;
mod lease;
mod model;
mod sql;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use byos_domain::ValidationReport;
use time::OffsetDateTime;
use uuid::Uuid;

pub use data::{ApplyOutcome, Entry, EntryKind, FileEntry, KeyUpdate, StoredKey, storable_key};
pub use error::{Conflict, StoreError};
pub use lease::{Lease, LeaseLost};
pub use model::{
    ActorFilter, AuditActor, AuditCursor, AuditEvent, AuditQuery, Configuration, ConfigurationSpec, CopySpec,
    Credential, CredentialIdentity, DeadLetter, Drift, Job, JobObject, JobPlan, JobProgress, JobSpec, JobStatus,
    NewSession, NewToken, ObjectResult, OnConflict, OutsideChange, Project, ProjectGrant, ReconcileRun,
    ReconcileStatus, Session, Token, Upload,
};
pub use sql::migrations::Migrations;

/// A future compiled where it is made (see [`Store::open`]).
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Storage credentials.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn insert_credential(&self, credential: &Credential) -> Result<()>;
    async fn get_credential(&self, id: Uuid) -> Result<Credential>;
    async fn list_credentials(&self) -> Result<Vec<Credential>>;
    /// Replaces a credential's identity and sealed secret (a rotation).
    async fn rotate_credential(&self, credential: &Credential) -> Result<()>;
    /// Deletes a credential that no configuration uses; otherwise [`Conflict::InUse`].
    async fn delete_credential(&self, id: Uuid) -> Result<()>;
}

/// Storage configurations.
#[async_trait]
pub trait ConfigurationStore: Send + Sync {
    /// Inserts a new configuration. Its credential must exist; its name is unique; at most one
    /// configuration is the default of a region.
    async fn insert_configuration(&self, configuration: &Configuration) -> Result<()>;
    async fn get_configuration(&self, id: Uuid) -> Result<Configuration>;
    async fn list_configurations(&self) -> Result<Vec<Configuration>>;
    /// The configurations on one bucket, oldest first.
    async fn configurations_on_bucket(&self, bucket: &str) -> Result<Vec<Configuration>>;
    /// Records the outcome of a validation and when the next one is due.
    async fn record_validation(&self, id: Uuid, outcome: &ValidationOutcome) -> Result<()>;
    /// The configurations whose next validation is due at `now`, most overdue first.
    async fn due_configurations(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Uuid>>;
    async fn delete_configuration(&self, id: Uuid) -> Result<()>;
}

/// Projects.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Inserts a project. Its name is unique ([`Conflict::NameTaken`]), its configuration
    /// exists ([`StoreError::NotFound`]), and its prefix overlaps no other project's on the
    /// bucket ([`Conflict::ProjectPrefixOverlap`]).
    async fn insert_project(&self, project: &Project) -> Result<()>;
    async fn get_project(&self, id: Uuid) -> Result<Project>;
    /// Every project, by name.
    async fn list_projects(&self) -> Result<Vec<Project>>;
    /// Deletes a project and its catalog (the bucket's data stays where it is).
    async fn delete_project(&self, id: Uuid) -> Result<()>;
}

/// The catalog of the projects' data, kept by the sync engine and read by browsing.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Applies a batch of updates to one project's keys in one transaction: the keys' states
    /// under the domain's rules, the visible files and folders, and the project's revision.
    /// Batches of one project are serialised (on PostgreSQL by the project's row lock), so
    /// replicas applying events of one key never interleave.
    async fn apply(&self, project: Uuid, updates: &[KeyUpdate]) -> Result<ApplyOutcome>;
    /// The project's revision: it grows with every batch applied.
    async fn revision(&self, project: Uuid) -> Result<i64>;
    /// Up to `limit` keys after `after`, in byte order (the reconcile's side of its diff).
    async fn keys(&self, project: Uuid, after: Option<&str>, limit: u32) -> Result<Vec<StoredKey>>;
    /// Up to `limit` entries of `folder` (`""` or `a/b/`) whose names start with `prefix`
    /// (`""` for all), in the folder's order: folders first, each kind by name (byte order).
    /// `after` is the name of the last entry of the previous page (a folder's ends with `/`).
    async fn entries(
        &self,
        project: Uuid,
        folder: &str,
        after: Option<&str>,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<Entry>>;
    /// One entry by its relative path (`a/b/c.txt`, or `a/b/` for a folder).
    async fn entry(&self, project: Uuid, path: &str) -> Result<Entry>;
    /// The files in `folder` (`a/b/`) and every folder below it: how many, and their bytes.
    async fn folder_totals(&self, project: Uuid, folder: &str) -> Result<FolderTotals>;
}

/// Reconcile runs, and messages that could not be read.
#[async_trait]
pub trait SyncStore: Send + Sync {
    async fn insert_reconcile(&self, run: &ReconcileRun) -> Result<()>;
    /// Stores a run's progress or its end.
    async fn update_reconcile(&self, run: &ReconcileRun) -> Result<()>;
    async fn get_reconcile(&self, id: Uuid) -> Result<ReconcileRun>;
    /// The project's latest run, if it ever had one.
    async fn latest_reconcile(&self, project: Uuid) -> Result<Option<ReconcileRun>>;
    /// Ends the project's runs still marked running as interrupted, with `error` saying why;
    /// returns how many. Called by whoever holds the project's reconcile lease: a run left
    /// running then has no holder any more (its replica stopped or crashed).
    async fn interrupt_reconciles(&self, project: Uuid, error: &str, now: OffsetDateTime) -> Result<u64>;
    /// The projects due for a reconcile under `schedule`, judged by each one's latest run: in one
    /// query, whatever the number of projects.
    async fn due_reconciles(&self, schedule: &ReconcileSchedule) -> Result<Vec<Uuid>>;
    /// Keeps a message that could not be read, with why, for an operator to look at.
    async fn insert_dead_letter(&self, letter: &DeadLetter) -> Result<()>;
    async fn count_dead_letters(&self) -> Result<u64>;
    /// Notes keys that changed while no project held them (their events reached no project),
    /// each with the time of its change; a key noted again keeps its latest time.
    async fn note_outside_changes(&self, changes: &[OutsideChange]) -> Result<()>;
    /// Up to `limit` keys of `bucket` under `prefix` that changed at `since_ms` or later, in key
    /// order, after the key `after`.
    async fn outside_changes(
        &self,
        bucket: &str,
        prefix: &str,
        since_ms: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutsideChange>>;
    /// Forgets the changes older than `before_ms`; answers how many.
    async fn prune_outside_changes(&self, before_ms: i64) -> Result<u64>;
}

/// Uploads in progress, per project.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// `NotFound` when the project is gone.
    async fn insert_upload(&self, upload: &Upload) -> Result<()>;
    /// The project's upload `id`; `NotFound` for another project's.
    async fn get_upload(&self, project: Uuid, id: Uuid) -> Result<Upload>;
    /// The project's uploads, oldest first.
    async fn list_uploads(&self, project: Uuid) -> Result<Vec<Upload>>;
    /// Forgets an upload (completed or aborted); `NotFound` when it is already gone, so that
    /// of two racing completions only one wins.
    async fn delete_upload(&self, id: Uuid) -> Result<()>;
    /// Up to `limit` uploads that expired at `now`, the longest expired first.
    async fn expired_uploads(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Upload>>;
}

/// What a folder holds, with every folder below it: [`DataStore::folder_totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderTotals {
    pub files: u64,
    pub bytes: u64,
}

/// Jobs: long operations on projects' data, run by the workers.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// `NotFound` when the project is gone.
    async fn insert_job(&self, job: &Job) -> Result<()>;
    async fn get_job(&self, id: Uuid) -> Result<Job>;
    /// Up to `limit` jobs, newest first: the project's, or every project's.
    async fn list_jobs(&self, project: Option<Uuid>, limit: u32) -> Result<Vec<Job>>;
    /// Up to `limit` jobs that have not ended (queued or running), oldest first: the ones a
    /// worker may take up, when it gets their lease.
    async fn unfinished_jobs(&self, limit: u32) -> Result<Vec<Job>>;
    /// Records that a job runs (its `started_at` the first time), and its progress. Answers
    /// whether someone asked it to stop; `NotFound` when it is gone (its project was deleted).
    async fn record_job_progress(&self, id: Uuid, progress: &JobProgress, now: OffsetDateTime) -> Result<bool>;
    /// Records a job's end: `status` is final.
    async fn finish_job(
        &self,
        id: Uuid,
        status: JobStatus,
        progress: &JobProgress,
        error: Option<&byos_domain::Problem>,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Asks a job to stop: a queued one is `cancelled` at once, a running one when its runner
    /// next looks; an ended one is left as it is. Answers the job as it is then.
    async fn cancel_job(&self, id: Uuid, now: OffsetDateTime) -> Result<Job>;
    /// Records what a copy's preflight found.
    async fn record_job_preflight(&self, id: Uuid, report: &ValidationReport) -> Result<()>;
    /// Adds the next objects of a copy's plan (their `seq` numbers follow the ones before) and
    /// where the plan stands now, in one transaction with the job's progress (its totals so
    /// far), so a plan taken up again neither loses nor repeats an object. Answers whether
    /// someone asked the job to stop, as [`JobStore::record_job_progress`] does.
    async fn plan_job_objects(
        &self,
        id: Uuid,
        objects: &[JobObject],
        plan: &JobPlan,
        progress: &JobProgress,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Up to `limit` objects of a copy's plan after `after` (a `seq`) in plan order: only the
    /// ones still `pending` when `pending` is set.
    async fn job_objects(&self, id: Uuid, after: Option<u64>, pending: bool, limit: u32) -> Result<Vec<JobObject>>;
    /// Records what became of some objects of a copy (by `seq`: result and error), in one
    /// transaction with the progress they make: the job's counters grow by the objects that
    /// were still pending (several replicas share one job's objects, and an object recorded
    /// twice counts once). Answers the job's progress then, and whether someone asked it to
    /// stop.
    async fn record_job_objects(
        &self,
        id: Uuid,
        results: &[(u64, ObjectResult, Option<String>)],
        now: OffsetDateTime,
    ) -> Result<Recorded>;
}

/// What [`JobStore::record_job_objects`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The job's progress, with every replica's results so far.
    pub progress: JobProgress,
    /// Someone asked the job to stop.
    pub cancel: bool,
}

/// What a validation found, as [`ConfigurationStore::record_validation`] stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOutcome {
    pub status: byos_domain::ConfigurationStatus,
    pub versioning: Option<byos_domain::VersioningState>,
    pub report: ValidationReport,
    pub error: Option<byos_domain::Problem>,
    pub verified_at: OffsetDateTime,
    pub next_check_at: OffsetDateTime,
    /// Validations in a row that failed, this one included.
    pub failures: u32,
    /// The AWS account that owns the bucket, when this validation learned it; `None` keeps
    /// the one known before.
    pub bucket_account: Option<String>,
}

/// When a project is due for a reconcile, by its latest run: [`SyncStore::due_reconciles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSchedule {
    /// A project that never had a run, created before this (its import is its creator's).
    pub created_before: OffsetDateTime,
    /// A run still marked running that has not recorded progress since: its holder may be
    /// gone, and the project's lease decides.
    pub running_stale_before: OffsetDateTime,
    /// A run that failed or was interrupted, ended before this.
    pub failed_before: OffsetDateTime,
    /// A run that finished before this.
    pub finished_before: OffsetDateTime,
}

/// Leases: a named piece of work that one holder at a time may do, until the lease expires.
/// With several replicas on one PostgreSQL database, this is how exactly one of them
/// validates a configuration or reconciles a project. Work holds a [`Lease`], which renews
/// itself; this trait is its storage.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease `name` for `holder` for `ttl` from now, by the database's clock, if it is
    /// free, expired, or already `holder`'s (a renewal). Returns whether `holder` has it.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;
    /// Gives the lease up, if `holder` has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}

/// API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &NewToken) -> Result<()>;
    /// The token whose value hashes to `hash`, expired or not ([`Token::is_expired`]). A read
    /// only: its use is noted apart ([`TokenStore::note_token_uses`]), so that checking a token
    /// never waits for the store's writer.
    async fn authenticate(&self, hash: &str) -> Result<Token>;
    /// Notes when tokens were last used, in one transaction: each token's `last_used_at` moves
    /// forward to the time given, never back. Tokens deleted since are skipped.
    async fn note_token_uses(&self, uses: &[(Uuid, OffsetDateTime)]) -> Result<()>;
    async fn get_token(&self, id: Uuid) -> Result<Token>;
    async fn list_tokens(&self) -> Result<Vec<Token>>;
    /// Deletes a token, unless it is the last admin token that does not expire
    /// ([`Conflict::LastAdminToken`]).
    async fn delete_token(&self, id: Uuid) -> Result<()>;
    async fn count_tokens(&self) -> Result<u64>;
    /// Stores a console session, and forgets the sessions that expired before it began.
    async fn insert_session(&self, session: &NewSession) -> Result<()>;
    /// The session whose cookie hashes to `hash`, with its token, unless it has expired at
    /// `now` ([`StoreError::NotFound`] then, as for a session that never was). The token may
    /// have expired: the caller says so.
    async fn session(&self, hash: &str, now: OffsetDateTime) -> Result<Session>;
    /// Ends a session; ending one that is not there is no error.
    async fn delete_session(&self, hash: &str) -> Result<()>;
}

/// The audit log: appended to, read a page at a time, pruned by age.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Up to `limit` events that `query` selects, newest first (by time, then id).
    async fn audit_events(&self, query: &AuditQuery, limit: u32) -> Result<Vec<AuditEvent>>;
    /// Deletes up to `limit` of the events from before `before`; returns how many it deleted.
    async fn prune_audit(&self, before: OffsetDateTime, limit: u32) -> Result<u64>;
}

/// Facts about the store itself, and its health.
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` to `value` if it has no value yet; returns the value it has afterwards.
    async fn init_meta(&self, key: &str, value: &str) -> Result<String>;
    /// Answers when the database does.
    async fn ping(&self) -> Result<()>;
}

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store, one handle per aggregate. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    pub credentials: Arc<dyn CredentialStore>,
    pub configurations: Arc<dyn ConfigurationStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub meta: Arc<dyn MetaStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub data: Arc<dyn DataStore>,
    pub sync: Arc<dyn SyncStore>,
    pub uploads: Arc<dyn UploadStore>,
    pub jobs: Arc<dyn JobStore>,
    pub audit: Arc<dyn AuditStore>,
    backend: Backend,
    closer: Arc<dyn Closer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

#[async_trait]
trait Closer: Send + Sync {
    async fn close(&self);
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `postgres://...` for PostgreSQL; `None` for SQLite in the data directory.
    pub url: Option<String>,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Store {
    /// The file name of the SQLite database inside the data directory.
    pub const SQLITE_FILE: &'static str = "byos.sqlite3";

    /// Connects (creating the SQLite file if needed) and applies pending migrations.
    ///
    /// A plain function returning a boxed future, not an `async fn`: the body of an `async fn`
    /// is compiled in the crate that awaits it, and this one makes the store's trait objects,
    /// which would take the whole SQL layer, both backends, into the binary's crate and every
    /// test's. This way it is compiled once, here.
    pub fn open<'a>(options: &'a StoreOptions, data_dir: &'a Path) -> BoxFuture<'a, Result<Store, OpenError>> {
        Box::pin(async move {
            match options.url.as_deref() {
                None => sql::sqlite::open(&data_dir.join(Store::SQLITE_FILE), options).await,
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    sql::postgres::open(url, options).await
                }
                Some(url) if url.starts_with("sqlite:") => {
                    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                    sql::sqlite::open(Path::new(path), options).await
                }
                Some(url) => Err(OpenError::UnsupportedUrl(redact_url(url))),
            }
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.closer.close().await;
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("database URL {0:?} is neither postgres://... nor sqlite:...")]
    UnsupportedUrl(String),
    #[error("could not connect to the database at {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not apply the database migrations")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A URL with its password replaced, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => {
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            (base, format!("?{}", redacted.join("&")))
        }
        None => (url, String::new()),
    };
    let base = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    format!("{base}{query}")
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(table: &'static str, ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt { table, reason: format!("timestamp {ms}: {e}") })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=u&password=secret&sslmode=require"),
            "postgres://db/x?user=u&password=***&sslmode=require"
        );
    }
}
