//! The records the store keeps. Fields hold domain types: a row that no longer parses is
//! reported as [`StoreError::Corrupt`](crate::StoreError::Corrupt), never passed on.

use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, ConfigurationStatus, KeyPrefix, Problem, ProjectAccess, ProjectFolder,
    ResourceName, Role, RoleArn, ServerSideEncryption, TokenName, ValidationReport, VersioningState,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The public half of a storage credential; the secret half is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialIdentity {
    AwsUser { access_key_id: AccessKeyId },
    AwsRole { role_arn: RoleArn },
}

/// A storage credential. `sealed_secret` holds the secret access key (`aws-user`) or the
/// external id (`aws-role`), sealed under the master key with the credential's id as context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: Uuid,
    pub name: ResourceName,
    pub identity: CredentialIdentity,
    pub sealed_secret: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a new storage configuration is made of: the parameters, all validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationSpec {
    pub name: ResourceName,
    /// The AWS region id; one of the region table's.
    pub region: AwsRegion,
    pub bucket: BucketName,
    pub key_prefix: Option<KeyPrefix>,
    pub credential_id: Uuid,
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub default_for_region: bool,
}

/// A storage configuration and what the platform knows of its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    pub id: Uuid,
    pub spec: ConfigurationSpec,
    pub status: ConfigurationStatus,
    pub versioning: Option<VersioningState>,
    pub validation: Option<ValidationReport>,
    /// The catalogue entry of the last failure, while `status` is `error`.
    pub error: Option<Problem>,
    pub last_verified_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the next validation is due; `None` for at once.
    pub next_check_at: Option<OffsetDateTime>,
    /// Validations in a row that ended in `error`: the retry backoff grows with it.
    pub check_failures: u32,
    /// The AWS account that owns the bucket, once a validation learned it.
    pub bucket_account: Option<String>,
}

impl Configuration {
    /// A new configuration, `initializing` and due for validation at once.
    pub fn new(id: Uuid, spec: ConfigurationSpec, now: OffsetDateTime) -> Configuration {
        Configuration {
            id,
            spec,
            status: ConfigurationStatus::Initializing,
            versioning: None,
            validation: None,
            error: None,
            last_verified_at: None,
            last_used_at: None,
            created_at: now,
            updated_at: now,
            next_check_at: None,
            check_failures: 0,
            bucket_account: None,
        }
    }
}

/// A project a member token reaches, and what it may do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectGrant {
    pub id: Uuid,
    pub access: ProjectAccess,
}

/// An API token. Only the hash of its value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: Uuid,
    pub name: TokenName,
    pub role: Role,
    /// The projects a member token reaches, each with its access; empty for admins.
    pub projects: Vec<ProjectGrant>,
    /// The first characters of the token, to tell tokens apart.
    pub hint: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    /// When the token stops working; never when `None`.
    pub expires_at: Option<OffsetDateTime>,
}

impl Token {
    /// Whether the token no longer works at `now`: it expires at the instant it names.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A token to store: the record and the hash of its value.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: Token,
    pub hash: String,
}

/// A console session to store: a browser signed in with a token, known by the hash of its
/// cookie's value.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub hash: String,
    pub token_id: Uuid,
    /// What the console's script sends back in `X-CSRF-Token` on every change.
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A console session that has not expired, and the token it acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: Token,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

/// A project: a folder of a storage configuration's bucket whose data the catalog keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub name: ResourceName,
    /// The AWS region id; the configuration's.
    pub region: AwsRegion,
    pub configuration_id: Uuid,
    pub folder: ProjectFolder,
    /// The configuration's bucket.
    pub bucket: BucketName,
    /// Where the project's data lives: the configuration's prefix, the folder and `/`.
    pub key_prefix: KeyPrefix,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Why a reconcile runs, and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileStatus {
    Running,
    Finished,
    Failed,
    /// Stopped before its end: the server shut down, its lease was lost, or its replica died
    /// (found by the next holder of the project's lease).
    Interrupted,
}

impl ReconcileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileStatus::Running => "running",
            ReconcileStatus::Finished => "finished",
            ReconcileStatus::Failed => "failed",
            ReconcileStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<ReconcileStatus> {
        match s {
            "running" => Some(ReconcileStatus::Running),
            "finished" => Some(ReconcileStatus::Finished),
            "failed" => Some(ReconcileStatus::Failed),
            "interrupted" => Some(ReconcileStatus::Interrupted),
            _ => None,
        }
    }
}

/// What a reconcile found the catalog had missed: counts, and the first keys of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drift {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub added_samples: Vec<String>,
    pub removed_samples: Vec<String>,
    pub changed_samples: Vec<String>,
    /// Keys the store cannot keep ([`crate::storable_key`]), left out of the catalog with a dead
    /// letter each. Runs recorded before this count existed read as none.
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub skipped_samples: Vec<String>,
}

impl Drift {
    /// How many keys of each kind a report keeps as samples.
    pub const SAMPLES: usize = 10;

    fn note(count: &mut u64, samples: &mut Vec<String>, key: &str) {
        *count += 1;
        if samples.len() < Drift::SAMPLES {
            samples.push(key.to_owned());
        }
    }

    pub fn added(&mut self, key: &str) {
        Drift::note(&mut self.added, &mut self.added_samples, key);
    }

    pub fn removed(&mut self, key: &str) {
        Drift::note(&mut self.removed, &mut self.removed_samples, key);
    }

    pub fn changed(&mut self, key: &str) {
        Drift::note(&mut self.changed, &mut self.changed_samples, key);
    }

    pub fn skipped(&mut self, key: &str) {
        Drift::note(&mut self.skipped, &mut self.skipped_samples, key);
    }
}

/// One reconcile of a project: a streaming listing of its prefix, diffed against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRun {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `initial-import`, `periodic` or `requested`.
    pub reason: String,
    pub status: ReconcileStatus,
    /// The project's revision when the run started: keys changed after it are left to events.
    pub fence: i64,
    /// Keys listed so far.
    pub listed: u64,
    pub drift: Drift,
    pub error: Option<String>,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// The S3 Inventory report the run started from (its manifest's key), instead of a listing
    /// of the prefix.
    pub baseline: Option<String>,
}

/// A queue message that could not be read as S3 events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: Uuid,
    pub queue: String,
    pub message_id: String,
    pub body: String,
    pub error: String,
    pub received_at: OffsetDateTime,
}

/// A key that changed while no project held it: its event reached the queue but no project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideChange {
    pub bucket: String,
    /// The whole key, prefix included.
    pub key: String,
    /// When it changed (the event's time), in milliseconds.
    pub at_ms: i64,
}

/// An upload a client started and has not completed or aborted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The file's key relative to the project.
    pub path: String,
    /// S3's UploadId of a multipart upload; `None` for a single presigned PUT.
    pub multipart_id: Option<String>,
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
    pub content_type: Option<String>,
    /// The token that started it.
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
    /// When the server aborts it if nobody completed it.
    pub expires_at: OffsetDateTime,
}

/// A long operation on a project's data, run by the workers under the lease `job:{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: Uuid,
    /// The project whose data it changes.
    pub project_id: Uuid,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub progress: JobProgress,
    /// Why it failed.
    pub error: Option<byos_domain::Problem>,
    /// Someone asked it to stop; the runner stops at its next step and records it `cancelled`.
    pub cancel_requested: bool,
    /// The token that started it.
    pub created_by: Uuid,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// How far a copy's plan got; `None` before it starts, and for the other jobs.
    pub plan: Option<JobPlan>,
    /// What a copy's preflight found, once it ran.
    pub preflight: Option<byos_domain::ValidationReport>,
}

impl Job {
    /// A job queued now.
    pub fn queued(project_id: Uuid, spec: JobSpec, created_by: Uuid, now: OffsetDateTime) -> Job {
        Job {
            id: Uuid::new_v4(),
            project_id,
            spec,
            status: JobStatus::Queued,
            progress: JobProgress::default(),
            error: None,
            cancel_requested: false,
            created_by,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            plan: None,
            preflight: None,
        }
    }
}

/// What a job does. Paths are keys relative to the project; folders end with `/`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum JobSpec {
    /// Every object under `folder` deleted (on a versioned bucket: hidden by delete markers).
    DeleteFolder { folder: String },
    /// Every object under `from` copied to the same place under `to`, verified, then deleted.
    MoveFolder { from: String, to: String, overwrite: bool },
    /// Objects copied from another project (or this one) into this one, server-side.
    Copy(CopySpec),
    /// A copy whose sources are deleted once their copies are verified.
    Move(CopySpec),
}

/// What a copy or move job copies, and where. The job's project is the destination's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySpec {
    pub source_project: Uuid,
    /// Paths in the source project, relative: a folder ends with `/`, and keeps its last segment
    /// under the destination (`a/` into `in/` gives `in/a/...`).
    pub paths: Vec<String>,
    /// The destination folder, relative (`""` for the project's root, otherwise ending with `/`).
    pub destination: String,
    pub on_conflict: OnConflict,
    /// Globs over the path an object gets under the destination folder (`run/lane-1/a.txt` for
    /// `run/` into `in/`), `*` matching across `/` too; empty: everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Plans and reports without copying.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a copy does with a destination key that already holds an object (other than its own
/// earlier copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// The object is left out, and counted skipped.
    Skip,
    /// The copy replaces it.
    Overwrite,
    /// The object is not copied and counts as failed, and so does the job.
    Fail,
}

impl OnConflict {
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Skip => "skip",
            OnConflict::Overwrite => "overwrite",
            OnConflict::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<OnConflict> {
        [OnConflict::Skip, OnConflict::Overwrite, OnConflict::Fail].into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a copy's plan stands: the listing of `paths[path]` goes on after the key `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPlan {
    pub path: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Every object is planned.
    pub done: bool,
    /// Objects planned so far: the next one's `seq`.
    pub objects: u64,
}

/// One object of a copy's plan, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobObject {
    /// Its place in the plan, from 0.
    pub seq: u64,
    /// Relative to the source project.
    pub source_key: String,
    /// The version copied, on a versioned source.
    pub version_id: Option<String>,
    pub size: u64,
    /// As listed, without quotes.
    pub etag: String,
    /// Relative to the destination project.
    pub destination_key: String,
    pub result: ObjectResult,
    pub error: Option<String>,
}

/// What became of one object of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectResult {
    /// Not copied yet.
    Pending,
    /// A dry run would copy it.
    Planned,
    /// Copied and verified.
    Copied,
    /// Copied, verified, and its source deleted.
    Moved,
    /// Left out: its destination held something else (`onConflict: skip`).
    Skipped,
    Failed,
}

impl ObjectResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectResult::Pending => "pending",
            ObjectResult::Planned => "planned",
            ObjectResult::Copied => "copied",
            ObjectResult::Moved => "moved",
            ObjectResult::Skipped => "skipped",
            ObjectResult::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectResult> {
        [
            ObjectResult::Pending,
            ObjectResult::Planned,
            ObjectResult::Copied,
            ObjectResult::Moved,
            ObjectResult::Skipped,
            ObjectResult::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl JobSpec {
    /// The job's type, as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::DeleteFolder { .. } => "delete-folder",
            JobSpec::MoveFolder { .. } => "move-folder",
            JobSpec::Copy(_) => "copy",
            JobSpec::Move(_) => "move",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Whether it has ended (and will not change again).
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// How far a job has got. The totals are `None` until the job knows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub objects_total: Option<u64>,
    pub objects_done: u64,
    pub objects_skipped: u64,
    pub objects_failed: u64,
    pub bytes_total: Option<u64>,
    pub bytes_done: u64,
}

/// One state-changing call of the API, as the audit log keeps it. No secret ever goes in.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// The token that made the call, named as it was then.
    pub actor: AuditActor,
    /// The operation: its id in the OpenAPI document (`create_project`).
    pub action: String,
    /// What it acted on: the resource's path in the API, with the query
    /// (`/api/v1/projects/{id}/data?path=/a.txt`).
    pub target: String,
    /// The HTTP status of the answer.
    pub status: u16,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The `x-request-id` of the call, as in the server's log.
    pub request_id: String,
    /// What the call adds about itself, a JSON object (a vended credential's access and expiry).
    pub detail: Option<serde_json::Value>,
}

/// Who made a call: a token's id and its name at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub token: Uuid,
    pub name: String,
}

/// Which events of the audit log to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<ActorFilter>,
    pub action: Option<String>,
    /// Events whose target starts with this.
    pub target: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Before this time (exclusive).
    pub until: Option<OffsetDateTime>,
    /// The page after this event: the last one of the previous page.
    pub after: Option<AuditCursor>,
}

/// An actor to look for: a token's id, or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorFilter {
    Token(Uuid),
    Name(String),
}

/// Where a page of the audit log ends: its last event's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}
