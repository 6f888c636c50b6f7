//! Copy and move jobs: objects of one project copied server-side into a folder of another (or
//! of the same one), in three durable phases.
//!
//! 1. **Preflight**, before any byte moves: both buckets where their configurations say, the
//!    sources listable and readable, a probe object written and deleted under the destination
//!    (and, for a move, under the source), both KMS keys usable. Every check is recorded with
//!    its detail and fix; one failure ends the job `copy-preflight-failed`, nothing copied.
//! 2. **Plan**: each source path listed a page at a time (versions pinned on a versioned
//!    source: the copy is of the object as it was listed), filtered by the globs, into the
//!    job's objects in the store together with where the listing stopped, so a plan taken up
//!    again neither loses nor repeats an object and memory stays bounded.
//! 3. **Copy**: the pending objects a page at a time, up to `jobs.copies_at_once` in flight,
//!    each copied (CopyObject, or UploadPartCopy parts above the threshold) with the
//!    destination's encryption, verified, and for a move its source deleted after that. Results
//!    are recorded with the job's progress in one transaction, so a job taken up after a crash
//!    copies only what is still pending. A throttled or failing S3 halves the copies in flight
//!    and leaves the object pending for the next pass, rather than failing it. The first copies
//!    start while the plan is still listed, and those under way end before the plan is recorded
//!    complete, which is when other replicas may help.
//!
//! The catalogs follow as the objects land: on a bucket that keeps no versions, the answer of a
//! copy (or of its verifying HEAD) and of a move's delete is all S3 holds for the key, and is
//! applied with the results it comes with; a side that keeps versions is refreshed from one
//! listing at the job's end, as an answer names only the version its request made.
//!
//! Which identity copies: the storage credential both configurations share (one IAM identity
//! allowed on both buckets), or else the destination region's cross-account copy role, assumed
//! by the platform in a session whose policy narrows it to this job's source paths and
//! destination folder. For the role, the preflight also reads each bucket's policy, each KMS
//! key's policy and the destination's Object Ownership with that side's own credential, and
//! evaluates them for the role where the bucket is in another account: a missing grant is named
//! with the statement to add and the `byos aws` command that prints it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use byos_aws::{AwsError, AwsErrorKind, BucketAccess, Head, PageMarker};
use byos_buckets::OpenBucket;
use byos_catalog::{CopySpec, Job, JobObject, JobPlan, JobSpec, JobStatus, Lease, ObjectResult, OnConflict, Project};
use byos_domain::iam::{Access, Policies, PolicyDocument, Request, ResourcePolicy};
use byos_domain::session::{CopyScope, copy_session_policy, session_name, session_policy_text};
use byos_domain::{
    CheckResult, KmsKeyArn, Problem, RoleArn, ServerSideEncryption, ValidationCheck, ValidationReport, VersioningState,
    is_probe_key, policies,
};
use byos_sync::Answer;
use globset::{Glob, GlobSet, GlobSetBuilder};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::moves::{CopyError, CopySettings, Source, copy_verified, holds_copy};
use crate::worker::{Run, Stop, aws_stop};

/// Objects a listing page or a page of the plan holds.
const PAGE: u32 = 1_000;

/// Results recorded together: a crash loses at most these (they are copied again).
const RECORD_EVERY: usize = 256;

/// The longest pause after S3 asked the job to slow down.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Runs a copy (`remove_sources: false`) or a move job into `destination`, the job's project.
pub(crate) async fn copy(
    run: &mut Run<'_>,
    destination: &Project,
    spec: &CopySpec,
    remove_sources: bool,
) -> Result<(), Stop> {
    let sides = Sides::open(run, destination, spec, remove_sources).await?;
    if run.job.preflight.is_none() {
        let report = preflight(&sides, spec, remove_sources).await;
        run.record_preflight(&report).await?;
        if let Some(failed) = report.checks.iter().find(|c| c.result == CheckResult::Failed) {
            return Err(Stop::Failed(Problem::copy_preflight_failed(&failed.name, &failed.detail)));
        }
    } else if let Identity::Unavailable { detail, .. } = &sides.identity {
        // Taken up again after the configurations changed under it.
        return Err(Stop::Failed(Problem::copy_preflight_failed("copy-identity", detail)));
    }
    let copier = Arc::new(Copier::new(run, &sides, spec, remove_sources));
    let mut window = Window::new(run.inner.settings.copies_at_once.max(1));
    let mut first_failure = None;
    plan(run, &sides, spec, &mut Flight::new(&copier, &mut window, &mut first_failure)).await?;
    copy_planned(run, &sides, &copier, &mut window, &mut first_failure, Share::Runner).await?;
    // Every replica's results.
    run.refresh().await?;
    if !spec.dry_run {
        // The catalog of a side that keeps no versions took each copy (and each source gone) as
        // it landed, from the requests' answers. One that keeps versions shows them now, without
        // waiting for events: an answer names only the version its request made.
        let refresh_destination = !answers_suffice(&sides.to);
        let refresh_source = remove_sources && !answers_suffice(&sides.from);
        for path in &spec.paths {
            let target = destination_path(spec, path);
            if refresh_destination {
                refresh(run, destination, &target).await?;
            }
            if refresh_source {
                refresh(run, &sides.source, path).await?;
            }
        }
    }
    let progress = run.progress();
    progress.objects_total = Some(progress.objects_done + progress.objects_skipped + progress.objects_failed);
    if progress.objects_failed == 0 {
        return Ok(());
    }
    let (key, reason) = first_failure
        .unwrap_or_else(|| ("(an earlier run's)".to_owned(), "the job's report names each object".to_owned()));
    Err(Stop::Failed(Problem::objects_not_copied(progress.objects_failed, &format!("/{key}"), &reason)))
}

/// Brings the catalog of `path` (a folder or a file) of `project` in line with its bucket.
async fn refresh(run: &Run<'_>, project: &Project, path: &str) -> Result<(), Stop> {
    if path.ends_with('/') {
        run.inner.sync.refresh_folder(project, path).await?;
    } else {
        run.inner.sync.observe(project, path).await?;
    }
    Ok(())
}

/// Whether the answers of the requests that write and delete a side's keys are all its catalog
/// needs: on a bucket that keeps no versions, one answer is all S3 holds for its key.
fn answers_suffice(side: &OpenBucket) -> bool {
    side.configuration.versioning == Some(VersioningState::Unversioned)
}

/// Whether another replica may help with `job`: a copy or move whose plan is complete and whose
/// preflight passed, so that its objects wait in the store to be copied.
pub(crate) fn shared(job: &Job) -> bool {
    matches!(job.spec, JobSpec::Copy(_) | JobSpec::Move(_))
        && job.status == JobStatus::Running
        && job.plan.as_ref().is_some_and(|plan| plan.done)
        && job.preflight.as_ref().is_some_and(|report| report.checks.iter().all(|c| c.result != CheckResult::Failed))
}

/// Copies the free ranges of a copy or move job that another replica runs; answers how many
/// objects it recorded. The job's runner ends it.
pub(crate) async fn help(run: &mut Run<'_>) -> Result<u64, Stop> {
    let (spec, remove_sources) = match &run.job.spec {
        JobSpec::Copy(spec) => (spec.clone(), false),
        JobSpec::Move(spec) => (spec.clone(), true),
        _ => return Ok(0),
    };
    let destination = run.inner.store.projects.get_project(run.job.project_id).await?;
    let sides = Sides::open(run, &destination, &spec, remove_sources).await?;
    if let Identity::Unavailable { .. } = sides.identity {
        return Ok(0);
    }
    let copier = Arc::new(Copier::new(run, &sides, &spec, remove_sources));
    let mut window = Window::new(run.inner.settings.copies_at_once.max(1));
    copy_planned(run, &sides, &copier, &mut window, &mut None, Share::Helper).await
}

/// Both projects, the access that copies, and what the copy needs of each configuration.
struct Sides {
    source: Project,
    destination: Project,
    /// Each side's configuration and access with its own credential: what reads the bucket's
    /// and the key's policies for a copy by the role.
    from: OpenBucket,
    to: OpenBucket,
    /// The access that copies: the shared credential's, or the copy role's session.
    access: BucketAccess,
    identity: Identity,
    /// The source bucket keeps versions: the plan pins each object's.
    source_versioned: bool,
    source_kms: Option<KmsKeyArn>,
    /// The destination configuration's encryption, applied to every copy.
    sse: Option<ServerSideEncryption>,
}

/// Who copies.
enum Identity {
    /// The storage credential both configurations use.
    Shared,
    /// The destination region's cross-account copy role, in a session named `session`.
    Role { role: RoleArn, session: String, region: String },
    /// Configurations on different credentials, and no copy role to assume.
    Unavailable { detail: String, fix: String },
}

impl Sides {
    async fn open(run: &Run<'_>, destination: &Project, spec: &CopySpec, remove_sources: bool) -> Result<Sides, Stop> {
        let inner = run.inner;
        let source = match inner.store.projects.get_project(spec.source_project).await {
            Ok(source) => source,
            Err(byos_catalog::StoreError::NotFound) => {
                return Err(Stop::Failed(Problem::not_found("Project", &spec.source_project.to_string())));
            }
            Err(e) => return Err(e.into()),
        };
        let from = inner.buckets.open(source.configuration_id).await?;
        let to = inner.buckets.open(destination.configuration_id).await?;
        let kms = |sse: &Option<ServerSideEncryption>| match sse {
            Some(ServerSideEncryption::Kms(key)) => Some(key.clone()),
            _ => None,
        };
        let source_kms = kms(&from.configuration.spec.server_side_encryption);
        let sse = to.configuration.spec.server_side_encryption.clone();
        let (identity, access) = if from.configuration.spec.credential_id == to.configuration.spec.credential_id {
            (Identity::Shared, to.access.clone())
        } else {
            let region = to.configuration.spec.region.as_str();
            let role = inner.regions.get(region).map(|r| RoleArn::parse(&r.cross_account_role_arn));
            let policy = copy_session_policy(
                &scope(&source, &spec.paths, source_kms.as_ref()),
                &scope(destination, std::slice::from_ref(&spec.destination), kms(&sse).as_ref()),
                remove_sources,
            );
            let unavailable =
                |detail: String, fix: &str| (Identity::Unavailable { detail, fix: fix.to_owned() }, to.access.clone());
            match (role, policy) {
                (Some(Ok(role)), Ok(policy)) => {
                    let session = session_name(&["byos-copy", &run.job.id.simple().to_string()[..12]], 64);
                    let text = session_policy_text(&policy);
                    let access = inner
                        .buckets
                        .aws()
                        .role_session_access(&role, &session, &text, &to.configuration.spec.region)
                        .await;
                    (Identity::Role { role, session, region: region.to_owned() }, access)
                }
                (None, _) => unavailable(
                    format!(
                        "the configurations of '{}' and '{}' use different storage credentials, and the region table has no copy role for {region}",
                        source.name, destination.name
                    ),
                    "Add the region to the server's region table with its crossAccountRoleArn, or copy between projects whose configurations share a storage credential.",
                ),
                (Some(Err(e)), _) => unavailable(
                    format!("the region table's copy role for {region}: {e}"),
                    "Fix the region's crossAccountRoleArn in the server's region table.",
                ),
                (_, Err(e)) => unavailable(e.to_string(), "Copy fewer paths at once, or paths with shorter names."),
            }
        };
        Ok(Sides {
            source_versioned: from.configuration.versioning == Some(VersioningState::Enabled),
            source_kms,
            sse,
            access,
            identity,
            source,
            destination: destination.clone(),
            from,
            to,
        })
    }

    fn source_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.source.key_prefix)
    }

    fn destination_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.destination.key_prefix)
    }

    fn destination_kms(&self) -> Option<&KmsKeyArn> {
        match &self.sse {
            Some(ServerSideEncryption::Kms(key)) => Some(key),
            _ => None,
        }
    }
}

/// One side of the job as its session policy scopes it: `paths` under the project's prefix.
fn scope<'a>(project: &'a Project, paths: &[String], kms_key: Option<&'a KmsKeyArn>) -> CopyScope<'a> {
    CopyScope {
        bucket: &project.bucket,
        prefixes: paths.iter().map(|p| format!("{}{p}", project.key_prefix)).collect(),
        kms_key,
    }
}

/// Where a source path lands: under the destination folder, with its last segment (`a/` and
/// `x/b.txt` into `in/` give `in/a/` and `in/b.txt`; the project's root gives its contents).
pub fn destination_path(spec: &CopySpec, path: &str) -> String {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
    match (name.is_empty(), path.ends_with('/')) {
        (true, _) => spec.destination.clone(),
        (false, true) => format!("{}{name}/", spec.destination),
        (false, false) => format!("{}{name}", spec.destination),
    }
}

/// One check of the preflight, and what to do when it fails.
struct Checks {
    checks: Vec<ValidationCheck>,
}

impl Checks {
    fn passed(&mut self, name: &str, detail: String) {
        self.checks.push(ValidationCheck { name: name.to_owned(), result: CheckResult::Passed, detail, fix: None });
    }

    fn failed(&mut self, name: &str, detail: String, fix: String) {
        self.checks.push(ValidationCheck {
            name: name.to_owned(),
            result: CheckResult::Failed,
            detail,
            fix: Some(fix),
        });
    }

    fn skipped(&mut self, name: &str, detail: String) {
        self.checks.push(ValidationCheck { name: name.to_owned(), result: CheckResult::Skipped, detail, fix: None });
    }

    fn any_failed(&self) -> bool {
        self.checks.iter().any(|c| c.result == CheckResult::Failed)
    }
}

/// The checks before any byte moves, in order; after the first failure the rest are skipped.
async fn preflight(sides: &Sides, spec: &CopySpec, remove_sources: bool) -> ValidationReport {
    let mut checks = Checks { checks: Vec::new() };
    let (access, source, destination) = (&sides.access, &sides.source, &sides.destination);
    let (from, to) = (source.bucket.as_str(), destination.bucket.as_str());
    let denied = |e: &AwsError| format!("{}: {}", e.operation, e.message);

    match &sides.identity {
        Identity::Shared => {
            checks.passed("copy-identity", "both configurations use one storage credential, which copies".to_owned());
        }
        Identity::Role { role, .. } => match access.caller_identity().await {
            Ok(session) => checks.passed(
                "copy-identity",
                format!("the configurations use different storage credentials: the region's copy role {role} copies, as {} in a session limited to this job's paths", session.arn),
            ),
            Err(e) => checks.failed(
                "copy-identity",
                format!("the platform cannot assume the region's copy role {role}: {}", denied(&e)),
                format!("Let the platform's identity assume {role} (the role's trust policy), or set the region table's crossAccountRoleArn for {} to a role it may assume.", sides.to.configuration.spec.region),
            ),
        },
        Identity::Unavailable { detail, fix } => checks.failed("copy-identity", detail.clone(), fix.clone()),
    }
    for (side, project) in [("source", source), ("destination", destination)] {
        if checks.any_failed() {
            break;
        }
        let name = format!("{side}:bucket-in-region");
        match access.bucket_region(project.bucket.as_str()).await {
            Ok(region) if region == project.region.as_str() => {
                checks.passed(&name, format!("{} is in {region}", project.bucket));
            }
            Ok(region) => checks.failed(
                &name,
                format!("{} is in {region}, its configuration says {}", project.bucket, project.region),
                "Fix the configuration's region; S3 copies between regions, but the platform's events come only from the configuration's.".to_owned(),
            ),
            Err(e) => checks.failed(
                &name,
                denied(&e),
                format!("Check that the bucket {} exists and that the credential may call s3:GetBucketLocation on it (`byos aws doctor`).", project.bucket),
            ),
        }
    }

    if let Identity::Role { role, session, region } = &sides.identity
        && !checks.any_failed()
    {
        granted_to_role(&mut checks, sides, spec, remove_sources, role, session, region).await;
    }

    // The sources can be listed, and the first one read.
    let mut first_source = None;
    if !checks.any_failed() {
        let first = spec.paths.first().map(String::as_str).unwrap_or_default();
        let prefix = sides.source_key(if first.ends_with('/') { first } else { "" });
        match access.list_one(from, &prefix).await {
            Ok(found) => {
                checks.passed("source:objects-listable", format!("s3:ListBucket on s3://{from}/{prefix}"));
                first_source = if first.ends_with('/') || first.is_empty() { found } else { Some(sides.source_key(first)) };
            }
            Err(e) => checks.failed(
                "source:objects-listable",
                denied(&e),
                format!("Grant the credential s3:ListBucket on {from} for the prefix {} (`byos aws iam-policy` prints the statement).", source.key_prefix),
            ),
        }
    }
    if !checks.any_failed() {
        match &first_source {
            None => checks.skipped("source:objects-readable", "nothing to read under the first source path".to_owned()),
            Some(key) => match access.head(from, key, None).await {
                Ok(_) => checks.passed("source:objects-readable", format!("s3:GetObject on s3://{from}/{key}")),
                Err(e) => checks.failed(
                    "source:objects-readable",
                    denied(&e),
                    format!("Grant the credential s3:GetObject (and s3:GetObjectTagging) on arn:aws:s3:::{from}/{}* (`byos aws iam-policy`).", source.key_prefix),
                ),
            },
        }
    }
    if !checks.any_failed() {
        match &sides.source_kms {
            None => checks.skipped("source:kms-key-usable", "the source's configuration does not encrypt with KMS".to_owned()),
            Some(key) => match access.kms_round_trip(key.as_str()).await {
                Ok(()) => checks.passed("source:kms-key-usable", format!("kms:Decrypt with {key}")),
                Err(e) => checks.failed(
                    "source:kms-key-usable",
                    denied(&e),
                    format!("Allow the credential kms:Decrypt in the policy of {key} (`byos aws kms-policy` prints the statement)."),
                ),
            },
        }
    }

    // A probe object written and deleted under the destination folder (and under the source,
    // for a move, whose sources are deleted): the writes the copy makes, with its encryption.
    let mut probes = vec![("destination", to, sides.destination_key(&spec.destination), sides.sse.as_ref())];
    if remove_sources {
        probes.push(("source", from, sides.source_key(""), None));
    }
    for (side, bucket, folder, sse) in probes {
        if checks.any_failed() {
            break;
        }
        let key = format!("{folder}{}{}", byos_domain::PROBE_MARKER, uuid::Uuid::new_v4().simple());
        let (writable, deletable) = (format!("{side}:probe-writable"), format!("{side}:probe-deletable"));
        match access.put_object(bucket, &key, Vec::new(), sse).await {
            Ok(put) => {
                checks.passed(&writable, format!("s3:PutObject on s3://{bucket}/{key}"));
                match access.delete_object(bucket, &key, put.version_id.as_deref()).await {
                    Ok(()) => checks.passed(&deletable, format!("s3:DeleteObject on s3://{bucket}/{key}")),
                    Err(e) => checks.failed(
                        &deletable,
                        denied(&e),
                        format!("Grant the credential s3:DeleteObject (and s3:DeleteObjectVersion on a versioned bucket) on arn:aws:s3:::{bucket}/{folder}* (`byos aws iam-policy`); delete s3://{bucket}/{key} by hand."),
                    ),
                }
            }
            Err(e) => checks.failed(
                &writable,
                denied(&e),
                format!("Grant the credential s3:PutObject on arn:aws:s3:::{bucket}/{folder}* (and kms:GenerateDataKey on the bucket's key for SSE-KMS): `byos aws iam-policy` and `byos aws kms-policy` print the statements."),
            ),
        }
    }
    let checked_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    ValidationReport { checked_at, checks: checks.checks }
}

/// For a copy by the region's role: whether each bucket's policy, each KMS key's policy and the
/// destination's Object Ownership let the role's session do what the copy does, read with that
/// side's own credential and evaluated with byos's IAM evaluator. A side in the role's own
/// account is left to the role's IAM policies (and to the probes); a policy the credential may
/// not read, or that holds a condition byos cannot evaluate, is left to the probes too.
async fn granted_to_role(
    checks: &mut Checks,
    sides: &Sides,
    spec: &CopySpec,
    remove_sources: bool,
    role: &RoleArn,
    session: &str,
    region: &str,
) {
    let role_name = role.as_str().rsplit('/').next().unwrap_or_default();
    let principal = format!("arn:aws:sts::{}:assumed-role/{role_name}/{session}", role.account());
    let (from, to) = (&sides.source, &sides.destination);
    let first = spec.paths.first().map(String::as_str).unwrap_or_default();
    let source_object = format!("arn:aws:s3:::{}/{}", from.bucket, sides.source_key(first));
    let destination_object = format!("arn:aws:s3:::{}/{}", to.bucket, sides.destination_key(&spec.destination));
    let request = |action: &str, resource: &str| Request::new(action, resource).with_principal(principal.as_str());

    let mut source_wants = vec![
        request("s3:ListBucket", &format!("arn:aws:s3:::{}", from.bucket))
            .with_context("s3:prefix", sides.source_key(first)),
        request("s3:GetObject", &source_object),
        request("s3:GetObjectTagging", &source_object),
    ];
    if sides.source_versioned {
        source_wants.push(request("s3:GetObjectVersion", &source_object));
    }
    if remove_sources {
        source_wants.extend([request("s3:PutObject", &source_object), request("s3:DeleteObject", &source_object)]);
    }
    let destination_wants = vec![
        request("s3:ListBucket", &format!("arn:aws:s3:::{}", to.bucket)),
        request("s3:PutObject", &destination_object),
        request("s3:PutObjectTagging", &destination_object),
        request("s3:GetObject", &destination_object),
        request("s3:DeleteObject", &destination_object),
    ];
    for (side, open, wants) in [("source", &sides.from, source_wants), ("destination", &sides.to, destination_wants)] {
        if checks.any_failed() {
            return;
        }
        let name = format!("{side}:bucket-policy");
        let bucket = open.configuration.spec.bucket.as_str();
        let account = open.configuration.bucket_account.as_deref();
        if let Some(skipped) = in_role_account(account, role, &format!("s3://{bucket}")) {
            checks.skipped(&name, skipped);
            continue;
        }
        let document = match open.access.bucket_policy(bucket).await {
            Ok(None) => None,
            Ok(Some(text)) => match PolicyDocument::parse(&text) {
                Ok(document) => Some(document),
                Err(e) => {
                    checks.skipped(
                        &name,
                        format!(
                            "the bucket policy of {bucket} does not parse here ({e}); the probes below check access"
                        ),
                    );
                    continue;
                }
            },
            Err(e) => {
                checks.skipped(&name, format!("the configuration's credential may not read the bucket policy of {bucket} ({}: {}); the probes below check access", e.operation, e.message));
                continue;
            }
        };
        let versioning = open.configuration.versioning.unwrap_or(VersioningState::Unversioned);
        let statement = policies::cross_account_bucket_policy(&open.configuration.spec.bucket, role, versioning);
        let versioned = if versioning == VersioningState::Unversioned { "" } else { " --versioned" };
        let fix = format!(
            "As the owner of {bucket}, add these statements to its bucket policy: {}. `byos aws bucket-policy --bucket {bucket} --cross-account {region} --role {role}{versioned}` prints them.",
            statement["Statement"]
        );
        let resource = document.as_ref().map_or(ResourcePolicy::Absent, ResourcePolicy::Standard);
        match refused(resource, &wants) {
            Refusal::None => checks
                .passed(&name, format!("the bucket policy of {bucket} allows the copy role {role} what the copy does")),
            Refusal::Denied(request, why) => checks.failed(
                &name,
                format!(
                    "the bucket policy of {bucket} does not allow the copy role {role} {} on {}{why}",
                    request.action, request.resource
                ),
                if why.is_empty() { fix } else { format!("Exempt {role} from the statement that denies it. {fix}") },
            ),
            Refusal::Unknown(detail) => checks.skipped(&name, format!("{detail}; the probes below check access")),
        }
    }

    let keys = [
        ("source", &sides.from, sides.source_kms.as_ref(), &["kms:Decrypt"][..]),
        ("destination", &sides.to, sides.destination_kms(), &["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"][..]),
    ];
    for (side, open, key, actions) in keys {
        if checks.any_failed() {
            return;
        }
        let name = format!("{side}:kms-key-policy");
        let Some(key) = key else {
            checks.skipped(&name, format!("the {side}'s configuration does not encrypt with KMS"));
            continue;
        };
        let key_account = key.as_str().split(':').nth(4);
        if let Some(skipped) = in_role_account(key_account, role, key.as_str()) {
            checks.skipped(&name, skipped);
            continue;
        }
        let document = match open.access.kms_key_policy(key.as_str()).await.map(|text| PolicyDocument::parse(&text)) {
            Ok(Ok(document)) => document,
            Ok(Err(e)) => {
                checks.skipped(
                    &name,
                    format!("the policy of {key} does not parse here ({e}); the probes below check the key"),
                );
                continue;
            }
            Err(e) => {
                checks.skipped(&name, format!("the configuration's credential may not read the policy of {key} ({}: {}); the probes below check the key", e.operation, e.message));
                continue;
            }
        };
        let wants: Vec<Request> = actions.iter().map(|action| request(action, key.as_str())).collect();
        let fix = format!(
            "As the owner of {key}, add this statement to its key policy: {}. `byos aws kms-policy --region {region} --role {role}` prints it.",
            policies::kms_key_policy_statement(role)
        );
        match refused(ResourcePolicy::KmsKey(&document), &wants) {
            Refusal::None => {
                checks.passed(&name, format!("the policy of {key} allows the copy role {role} {}", actions.join(", ")));
            }
            Refusal::Denied(request, why) => checks.failed(
                &name,
                format!("the policy of {key} does not allow the copy role {role} {}{why}", request.action),
                if why.is_empty() { fix } else { format!("Exempt {role} from the statement that denies it. {fix}") },
            ),
            Refusal::Unknown(detail) => checks.skipped(&name, format!("{detail}; the probes below check the key")),
        }
    }

    if checks.any_failed() {
        return;
    }
    let name = "destination:object-ownership";
    let bucket = sides.to.configuration.spec.bucket.as_str();
    if let Some(skipped) =
        in_role_account(sides.to.configuration.bucket_account.as_deref(), role, &format!("s3://{bucket}"))
    {
        checks.skipped(name, skipped);
        return;
    }
    let fix = format!(
        "As the owner of {bucket}, make it own every object written into it: aws s3api put-bucket-ownership-controls --bucket {bucket} --ownership-controls 'Rules=[{{ObjectOwnership=BucketOwnerEnforced}}]'"
    );
    match sides.to.access.object_ownership(bucket).await {
        Ok(Some(setting)) if setting == "BucketOwnerEnforced" => {
            checks.passed(name, format!("{bucket} owns every object written into it (BucketOwnerEnforced)"));
        }
        Ok(setting) => checks.failed(
            name,
            format!(
                "{bucket}'s Object Ownership is {}: the copies the role writes would belong to the platform's account {}, not to the bucket's owner",
                setting.as_deref().unwrap_or("not set (ObjectWriter)"),
                role.account()
            ),
            fix,
        ),
        Err(e) => checks.skipped(name, format!("the configuration's credential may not read the Object Ownership of {bucket} ({}: {})", e.operation, e.message)),
    }
}

/// Why a side's policy need not be read: its account is the role's (the role's own IAM
/// policies grant access there), or not known.
fn in_role_account(account: Option<&str>, role: &RoleArn, what: &str) -> Option<String> {
    match account {
        Some(account) if account == role.account() => Some(format!(
            "{what} is in the copy role's own account ({account}): the role's IAM policies grant access there, and the probes below check them"
        )),
        Some(_) => None,
        None => Some(format!(
            "the account of {what} is not known yet (a validation learns it); the probes below check access"
        )),
    }
}

/// The first of `wants` that a resource's policy does not grant the copy role.
enum Refusal {
    None,
    /// Refused, with the statement that denies it, if one does.
    Denied(Request, String),
    /// A statement byos cannot evaluate decides.
    Unknown(String),
}

fn refused(resource: ResourcePolicy<'_>, wants: &[Request]) -> Refusal {
    for want in wants {
        // The role is in another account: only the resource's own policy can let it in.
        let decision = Policies { identity: &[], boundary: None, resource }.decide(want);
        match decision.effect {
            Access::Allowed => {}
            Access::ExplicitlyDenied => {
                let statement = decision.deciding.map(|d| format!(" ({} denies it)", d.statement)).unwrap_or_default();
                return Refusal::Denied(want.clone(), statement);
            }
            Access::ImplicitlyDenied => return Refusal::Denied(want.clone(), String::new()),
            Access::Undetermined => {
                let unevaluated = decision
                    .unevaluated
                    .first()
                    .map(|u| format!("{} ({})", u.statement, u.unsupported))
                    .unwrap_or_default();
                return Refusal::Unknown(format!(
                    "whether the copy role may {} depends on {unevaluated}, which byos cannot evaluate",
                    want.action
                ));
            }
        }
    }
    Refusal::None
}

/// `include` / `exclude` over the path an object gets under the destination folder (its source
/// path's last segment and what is below it: `run/lane-1/a.txt`), `*` matching across `/` too,
/// as the CLI's transfers (and `aws s3 cp`) read them.
struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    fn new(spec: &CopySpec) -> Result<Filter, globset::Error> {
        fn set(globs: &[String]) -> Result<Option<GlobSet>, globset::Error> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for glob in globs {
                builder.add(glob_of(glob)?);
            }
            builder.build().map(Some)
        }
        Ok(Filter { include: set(&spec.include)?, exclude: set(&spec.exclude)? })
    }

    fn keeps(&self, relative: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(relative))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(relative))
    }
}

/// A glob as jobs read it.
pub fn glob_of(glob: &str) -> Result<Glob, globset::Error> {
    Glob::new(glob)
}

/// Lists the sources into the job's plan, from where it stopped, and copies planned objects
/// meanwhile: the plan goes at the listing's pace, and the copies that start while it goes take
/// the objects it planned in order, from up to a page of them held here.
async fn plan(run: &mut Run<'_>, sides: &Sides, spec: &CopySpec, flight: &mut Flight<'_>) -> Result<(), Stop> {
    let mut plan = run.job.plan.clone().unwrap_or_default();
    let filter = Filter::new(spec).map_err(|e| Stop::Internal(Box::new(e)))?;
    // Planned objects waiting for a copy; those that do not fit wait in the store.
    let mut waiting: VecDeque<JobObject> = VecDeque::new();
    while !plan.done {
        if spec.paths.get(plan.path).is_none() {
            // Other replicas help once the plan is done, each with ranges of it: the copies
            // under way here end first, and the objects waiting are copied by range.
            flight.drain(run).await?;
            plan.done = true;
            run.record_plan(&[], &plan).await?;
            break;
        }
        let (objects, next) = {
            let page = plan_page(sides, spec, &filter, &plan);
            tokio::pin!(page);
            loop {
                let room = flight.has_room() && !waiting.is_empty();
                tokio::select! {
                    page = &mut page => break page?,
                    Some(joined) = flight.copies.join_next() => flight.take(run, joined).await?,
                    () = run.pace(), if room => flight.start(run, waiting.pop_front()),
                }
            }
        };
        plan = next;
        let progress = run.progress();
        progress.objects_total = Some(progress.objects_total.unwrap_or(0) + objects.len() as u64);
        progress.bytes_total = Some(progress.bytes_total.unwrap_or(0) + objects.iter().map(|o| o.size).sum::<u64>());
        progress.objects_failed += objects.iter().filter(|o| o.result == ObjectResult::Failed).count() as u64;
        run.record_plan(&objects, &plan).await?;
        let room = (PAGE as usize).saturating_sub(waiting.len());
        waiting.extend(objects.into_iter().filter(|o| o.result == ObjectResult::Pending).take(room));
    }
    Ok(())
}

/// The objects of the plan's next page (a page of a folder's listing, or a file), and where the
/// plan stands after them.
async fn plan_page(
    sides: &Sides,
    spec: &CopySpec,
    filter: &Filter,
    plan: &JobPlan,
) -> Result<(Vec<JobObject>, JobPlan), Stop> {
    let mut plan = plan.clone();
    let Some(path) = spec.paths.get(plan.path) else { return Ok((Vec::new(), plan)) };
    let from = sides.source.bucket.as_str();
    let target = destination_path(spec, path);
    // What the globs read: the path under the destination folder.
    let kept = target.strip_prefix(spec.destination.as_str()).unwrap_or(&target).to_owned();
    let mut objects = Vec::new();
    if path.ends_with('/') || path.is_empty() {
        let prefix = sides.source_key(path);
        let after = plan.after.clone().map(|key| PageMarker::After { key: sides.source_key(&key) });
        let max = i32::try_from(PAGE).unwrap_or(i32::MAX);
        let listed = if sides.source_versioned {
            sides.access.list_versions_page(from, &prefix, after.as_ref(), max).await
        } else {
            sides.access.list_objects_page(from, &prefix, after.as_ref(), max).await
        };
        let page = listed.map_err(|e| aws_stop(e, &sides.source))?;
        for entry in &page.entries {
            let Some(relative) = entry.key.strip_prefix(&prefix) else { continue };
            let skip = !entry.is_latest || entry.delete_marker || is_probe_key(&entry.key);
            if skip || !filter.keeps(&format!("{kept}{relative}")) {
                continue;
            }
            objects.push(JobObject {
                seq: plan.objects + objects.len() as u64,
                source_key: format!("{path}{relative}"),
                version_id: entry.version_id.clone().filter(|v| v != "null"),
                size: entry.size,
                etag: entry.etag.clone(),
                destination_key: format!("{target}{relative}"),
                result: ObjectResult::Pending,
                error: None,
            });
        }
        let last = page.entries.last().and_then(|e| e.key.strip_prefix(sides.source.key_prefix.as_str()));
        match (&page.next, last) {
            (Some(_), Some(last)) => plan.after = Some(last.to_owned()),
            _ => (plan.path, plan.after) = (plan.path + 1, None),
        }
    } else {
        let head = sides.access.head(from, &sides.source_key(path), None).await;
        match head.map_err(|e| aws_stop(e, &sides.source))? {
            Some(head) if filter.keeps(&kept) => objects.push(JobObject {
                seq: plan.objects,
                source_key: path.clone(),
                version_id: head.version_id.filter(|v| sides.source_versioned && v != "null"),
                size: head.size,
                etag: head.etag,
                destination_key: target,
                result: ObjectResult::Pending,
                error: None,
            }),
            Some(_) => {}
            // Gone since the job was asked for: the report says so.
            None => objects.push(JobObject {
                seq: plan.objects,
                source_key: path.clone(),
                version_id: None,
                size: 0,
                etag: String::new(),
                destination_key: target,
                result: ObjectResult::Failed,
                error: Some("the source is gone".to_owned()),
            }),
        }
        (plan.path, plan.after) = (plan.path + 1, None);
    }
    plan.objects += objects.len() as u64;
    Ok((objects, plan))
}

/// What one object's copy needs, shared by the copies in flight.
struct Copier {
    access: BucketAccess,
    /// The projects whose catalogs take the answers, where those suffice ([`answers_suffice`]).
    answer_destination: Option<Project>,
    answer_source: Option<Project>,
    source_bucket: String,
    source_prefix: String,
    destination_bucket: String,
    destination_prefix: String,
    sse: Option<ServerSideEncryption>,
    copies: CopySettings,
    on_conflict: OnConflict,
    dry_run: bool,
    remove_sources: bool,
    /// When the job first started (its milliseconds since the epoch): only a copy written since
    /// can be the job's own without proof by ETag or checksum.
    since_ms: i64,
}

/// What became of one object: an end, or a failure that may pass (it stays pending).
enum Outcome {
    Done(Box<Done>),
    Later(AwsError),
}

/// An object's end, and what its requests answered of the keys they wrote and deleted.
struct Done {
    result: ObjectResult,
    error: Option<String>,
    destination: Option<Answer>,
    source: Option<Answer>,
}

impl Done {
    fn new(result: ObjectResult, error: Option<String>) -> Done {
        Done { result, error, destination: None, source: None }
    }
}

impl Copier {
    fn new(run: &Run<'_>, sides: &Sides, spec: &CopySpec, remove_sources: bool) -> Copier {
        let answers = !spec.dry_run;
        Copier {
            access: sides.access.clone(),
            answer_destination: Some(sides.destination.clone()).filter(|_| answers && answers_suffice(&sides.to)),
            answer_source: Some(sides.source.clone())
                .filter(|_| answers && remove_sources && answers_suffice(&sides.from)),
            source_bucket: sides.source.bucket.as_str().to_owned(),
            source_prefix: sides.source.key_prefix.as_str().to_owned(),
            destination_bucket: sides.destination.bucket.as_str().to_owned(),
            destination_prefix: sides.destination.key_prefix.as_str().to_owned(),
            sse: sides.sse.clone(),
            copies: run.inner.settings.copies,
            on_conflict: spec.on_conflict,
            dry_run: spec.dry_run,
            remove_sources,
            since_ms: run.started_ms(),
        }
    }

    async fn copy(&self, object: &JobObject) -> Outcome {
        let source = Source {
            bucket: self.source_bucket.clone(),
            key: format!("{}{}", self.source_prefix, object.source_key),
            version_id: object.version_id.clone(),
            size: object.size,
            etag: object.etag.clone(),
        };
        let to = format!("{}{}", self.destination_prefix, object.destination_key);
        match self.copy_source(object, &source, &to).await {
            Ok(done) => Outcome::Done(Box::new(done)),
            Err(CopyError::Aws(e)) if e.retryable() => Outcome::Later(e),
            Err(CopyError::Aws(e)) => Outcome::Done(Box::new(Done::new(
                ObjectResult::Failed,
                Some(format!("{}: {}", e.operation, e.message)),
            ))),
            Err(e) => Outcome::Done(Box::new(Done::new(ObjectResult::Failed, Some(e.to_string())))),
        }
    }

    async fn copy_source(&self, object: &JobObject, source: &Source, to: &str) -> Result<Done, CopyError> {
        let bucket = self.destination_bucket.as_str();
        let started_ms = Answer::now_ms();
        let answer = |project: &Option<Project>, key: &str, started_ms: i64, head: Option<Head>| {
            // A version other than the null one: the bucket keeps versions after all, and the
            // answer is not all it holds for the key (the project's next reconcile sees them).
            let unversioned = head.as_ref().is_none_or(|h| h.version_id.as_deref().is_none_or(|v| v == "null"));
            project.as_ref().filter(|_| unversioned).map(|_| Answer { key: key.to_owned(), started_ms, head })
        };
        let destination =
            |head: Head| answer(&self.answer_destination, &object.destination_key, started_ms, Some(head));
        let there = if self.on_conflict == OnConflict::Overwrite && !self.dry_run {
            None
        } else if let Some(there) = self.access.head(bucket, to, None).await? {
            // The job's own copy, made before a stop, counts as made, as do the same bytes
            // copied earlier; anything else conflicts.
            let in_parts = self.copies.in_parts(source.size);
            if holds_copy(&self.access, source, bucket, to, &there, in_parts, self.since_ms).await? {
                Some(there)
            } else {
                match self.on_conflict {
                    OnConflict::Skip => {
                        let done = Done::new(ObjectResult::Skipped, None);
                        return Ok(Done { destination: destination(there), ..done });
                    }
                    OnConflict::Fail => {
                        let done = Done::new(
                            ObjectResult::Failed,
                            Some("the destination holds another object, and the job does not overwrite".to_owned()),
                        );
                        return Ok(Done { destination: destination(there), ..done });
                    }
                    OnConflict::Overwrite => None,
                }
            }
        } else {
            None
        };
        if self.dry_run {
            let result = if there.is_some() { ObjectResult::Copied } else { ObjectResult::Planned };
            return Ok(Done::new(result, None));
        }
        let copy = match there {
            Some(there) => there,
            None => match copy_verified(&self.access, source, bucket, to, self.sse.as_ref(), &self.copies).await {
                Ok(copy) => copy,
                // A move taken up again after a stop that lost this object's end: its source
                // went once its copy was verified, and the copy is there.
                Err(CopyError::Aws(e)) if self.remove_sources && e.kind == AwsErrorKind::NoSuchKey => {
                    let in_parts = self.copies.in_parts(source.size);
                    match self.access.head(bucket, to, None).await? {
                        Some(there)
                            if holds_copy(&self.access, source, bucket, to, &there, in_parts, self.since_ms)
                                .await? =>
                        {
                            let gone = answer(&self.answer_source, &object.source_key, started_ms, None);
                            let done = Done::new(ObjectResult::Moved, None);
                            return Ok(Done { destination: destination(there), source: gone, ..done });
                        }
                        _ => return Err(CopyError::Aws(e)),
                    }
                }
                Err(e) => return Err(e),
            },
        };
        let done = Done { destination: destination(copy), ..Done::new(ObjectResult::Copied, None) };
        if !self.remove_sources {
            return Ok(done);
        }
        // The copy is verified: its source may go (on a versioned bucket, behind a delete marker).
        let deleting_ms = Answer::now_ms();
        if let Some(pinned) = source.version_id.as_deref() {
            // The copy is of the version the plan listed: one written since must not go behind
            // the delete marker uncopied. One deleted since leaves nothing to delete.
            match self.access.head(&source.bucket, &source.key, None).await? {
                None => return Ok(Done { result: ObjectResult::Moved, ..done }),
                Some(current) if current.version_id.as_deref() != Some(pinned) => {
                    let why = "copied, but its source stays: a newer version was written after the job listed it";
                    return Ok(Done { result: ObjectResult::Failed, error: Some(why.to_owned()), ..done });
                }
                Some(_) => {}
            }
        }
        self.access.delete_object(&source.bucket, &source.key, None).await?;
        let gone = answer(&self.answer_source, &object.source_key, deleting_ms, None);
        Ok(Done { result: ObjectResult::Moved, source: gone, ..done })
    }
}

/// Who copies a job's planned objects here: the job's runner, which waits for ranges other
/// replicas hold and ends the job, or a helper, which takes what is free and leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    Runner,
    Helper,
}

/// What one pass over the ranges did.
#[derive(Default)]
struct Pass {
    recorded: u64,
    /// A failure that may pass left objects pending.
    left: Option<AwsError>,
    /// Another replica held a range's lease.
    elsewhere: bool,
}

/// Copies the plan's pending objects, range by range (`jobs.copy_range_objects` objects, each
/// range under the lease `job:{id}:objects:{n}`, so that replicas share a job without copying
/// one object twice), pass after pass until none is left that S3 may still take. Notes the
/// first failure of this run (its source key and reason); answers how many objects it recorded.
async fn copy_planned(
    run: &mut Run<'_>,
    sides: &Sides,
    copier: &Arc<Copier>,
    window: &mut Window,
    first_failure: &mut Option<(String, String)>,
    share: Share,
) -> Result<u64, Stop> {
    let range = run.inner.settings.copy_range_objects.max(1);
    let ranges = run.job.plan.as_ref().map_or(0, |plan| plan.objects).div_ceil(range);
    let mut total = 0;
    // Ranges whose every object has its result: the plan is complete, so they stay so, and
    // later passes (a runner waiting for other replicas' ranges) need not take their leases.
    let mut finished = vec![false; usize::try_from(ranges).unwrap_or(usize::MAX)];
    loop {
        let mut pass = Pass::default();
        for (n, finished) in (0..ranges).zip(finished.iter_mut()) {
            if *finished {
                continue;
            }
            let inner = run.inner;
            let name = format!("job:{}:objects:{n}", run.job.id);
            let Some(lease) =
                Lease::take(&inner.store.leases, &name, &inner.settings.replica, inner.settings.lease).await?
            else {
                pass.elsewhere = true;
                continue;
            };
            let lease = RangeLease(Some(lease));
            let seqs = n * range..(n + 1) * range;
            let mut flight = Flight::new(copier, window, first_failure);
            let copied = lease.hold(copy_range(run, &mut flight, seqs)).await;
            drop(lease);
            copied.map_err(Stop::LeaseLost)??;
            pass.recorded += flight.recorded;
            match flight.left {
                None => *finished = true,
                Some(_) => pass.left = flight.left,
            }
        }
        total += pass.recorded;
        match (pass.left, pass.elsewhere, share) {
            (None, false, _) | (None, true, Share::Helper) => return Ok(total),
            // Some objects wait for S3: another pass takes them, unless this one did nothing.
            (Some(e), _, _) if pass.recorded == 0 => {
                if share == Share::Helper {
                    return Ok(total);
                }
                if !pass.elsewhere {
                    return Err(aws_stop(e, &sides.destination));
                }
            }
            _ => {}
        }
        if pass.elsewhere && pass.recorded == 0 {
            // Other replicas copy the rest: the runner waits for them (or for their leases to
            // expire, when one died) and hears a cancel meanwhile.
            tokio::time::sleep(run.inner.settings.tick.min(Duration::from_secs(1))).await;
            run.refresh().await?;
        }
    }
}

/// A range's lease, given back however its work ends: a stop drops the work mid-range, and the
/// next start (on this replica or another) must not wait for the lease to expire.
struct RangeLease(Option<Lease>);

impl RangeLease {
    async fn hold<F: std::future::Future>(&self, work: F) -> Result<F::Output, byos_catalog::LeaseLost> {
        match &self.0 {
            Some(lease) => lease.hold(work).await,
            None => unreachable!("a range's lease is held until it is dropped"),
        }
    }
}

impl Drop for RangeLease {
    fn drop(&mut self) {
        if let (Some(lease), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(lease.release());
        }
    }
}

/// Copies the pending objects of one range of the plan, read a page at a time.
async fn copy_range(run: &mut Run<'_>, flight: &mut Flight<'_>, seqs: std::ops::Range<u64>) -> Result<(), Stop> {
    let mut after = seqs.start.checked_sub(1);
    loop {
        let mut page: VecDeque<JobObject> =
            run.inner.store.jobs.job_objects(run.job.id, after, true, PAGE).await?.into();
        page.retain(|object| seqs.contains(&object.seq));
        let Some(last) = page.back() else { break };
        after = Some(last.seq);
        while !page.is_empty() {
            flight.start_from(run, &mut page).await;
            flight.next(run).await?;
        }
    }
    flight.drain(run).await
}

/// Copies of objects under way, as many at once as the window allows, and the ends not
/// recorded yet (recorded together every [`RECORD_EVERY`]).
struct Flight<'a> {
    copier: &'a Arc<Copier>,
    window: &'a mut Window,
    first_failure: &'a mut Option<(String, String)>,
    copies: JoinSet<(JobObject, Outcome)>,
    results: Results,
    /// Ends recorded.
    recorded: u64,
    /// The last failure that may pass: its object stays pending.
    left: Option<AwsError>,
}

impl<'a> Flight<'a> {
    fn new(
        copier: &'a Arc<Copier>,
        window: &'a mut Window,
        first_failure: &'a mut Option<(String, String)>,
    ) -> Flight<'a> {
        Flight {
            copier,
            window,
            first_failure,
            copies: JoinSet::new(),
            results: Results::default(),
            recorded: 0,
            left: None,
        }
    }

    fn has_room(&self) -> bool {
        self.copies.len() < self.window.size
    }

    /// Starts copies of `objects`, from the front, while the window has room.
    async fn start_from(&mut self, run: &mut Run<'_>, objects: &mut VecDeque<JobObject>) {
        while self.has_room() && !objects.is_empty() {
            run.pace().await;
            self.start(run, objects.pop_front());
        }
    }

    /// Starts a copy of `object` now (its time under `jobs.objects_per_second` has come).
    fn start(&mut self, run: &mut Run<'_>, object: Option<JobObject>) {
        let Some(object) = object else { return };
        run.paced(1);
        let copier = self.copier.clone();
        self.copies.spawn(async move {
            let outcome = copier.copy(&object).await;
            (object, outcome)
        });
    }

    /// Waits for a copy to end, and takes its end; does nothing when none is under way.
    async fn next(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        match self.copies.join_next().await {
            Some(joined) => self.take(run, joined).await,
            None => Ok(()),
        }
    }

    /// Waits for every copy under way, and records all the ends.
    async fn drain(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        while !self.copies.is_empty() {
            self.next(run).await?;
        }
        self.recorded += self.results.record(run, self.copier).await?;
        Ok(())
    }

    async fn take(
        &mut self,
        run: &mut Run<'_>,
        joined: Result<(JobObject, Outcome), tokio::task::JoinError>,
    ) -> Result<(), Stop> {
        let (object, outcome) = joined.map_err(|e| Stop::Internal(Box::new(e)))?;
        match outcome {
            Outcome::Done(done) => {
                self.window.grow();
                if let (ObjectResult::Failed, Some(reason), None) = (done.result, &done.error, &self.first_failure) {
                    *self.first_failure = Some((object.source_key.clone(), reason.clone()));
                }
                self.results.push(object.seq, *done);
            }
            Outcome::Later(e) => {
                let pause = self.window.shrink();
                tracing::info!(job = %run.job.id, key = object.source_key, error = %e, copies = self.window.size, "S3 asks the copy to slow down");
                tokio::time::sleep(pause).await;
                self.left = Some(e);
            }
        }
        if self.results.objects.len() >= RECORD_EVERY {
            self.recorded += self.results.record(run, self.copier).await?;
        }
        Ok(())
    }
}

/// Objects' ends not recorded yet, with what their requests answered for the catalogs.
#[derive(Default)]
struct Results {
    objects: Vec<(u64, ObjectResult, Option<String>)>,
    destination: Vec<Answer>,
    source: Vec<Answer>,
}

impl Results {
    fn push(&mut self, seq: u64, done: Done) {
        self.objects.push((seq, done.result, done.error));
        self.destination.extend(done.destination);
        self.source.extend(done.source);
    }

    /// Applies the answers to the catalogs, then records the ends with the job's progress:
    /// a crash between the two copies those objects again, which changes nothing. Answers how
    /// many ends it recorded.
    async fn record(&mut self, run: &mut Run<'_>, copier: &Copier) -> Result<u64, Stop> {
        if let Some(project) = &copier.answer_destination {
            run.inner.sync.answered(project, &self.destination).await?;
        }
        if let Some(project) = &copier.answer_source {
            run.inner.sync.answered(project, &self.source).await?;
        }
        if !self.objects.is_empty() {
            run.record_objects(&self.objects).await?;
        }
        let recorded = self.objects.len() as u64;
        *self = Results::default();
        Ok(recorded)
    }
}

/// The copies in flight: halved (with a pause that doubles) when S3 asks to slow down, grown by
/// one per object done, up to `jobs.copies_at_once` (additive increase, multiplicative decrease,
/// as TCP and S3's own SDKs pace themselves).
struct Window {
    size: usize,
    most: usize,
    pause: Duration,
}

impl Window {
    fn new(most: usize) -> Window {
        Window { size: most, most, pause: Duration::ZERO }
    }

    fn grow(&mut self) {
        self.size = (self.size + 1).min(self.most);
        self.pause = Duration::ZERO;
    }

    /// Halves the window; the pause to make before going on.
    fn shrink(&mut self) -> Duration {
        self.size = (self.size / 2).max(1);
        self.pause = (self.pause * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
        self.pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(destination: &str) -> CopySpec {
        CopySpec {
            source_project: uuid::Uuid::nil(),
            paths: Vec::new(),
            destination: destination.to_owned(),
            on_conflict: OnConflict::Skip,
            include: vec!["run/*.txt".to_owned(), "*.csv".to_owned()],
            exclude: vec!["run/tmp/*".to_owned()],
            dry_run: false,
        }
    }

    #[test]
    fn a_source_keeps_its_last_segment() {
        let into = spec("in/");
        assert_eq!(destination_path(&into, "runs/a/"), "in/a/");
        assert_eq!(destination_path(&into, "runs/b.txt"), "in/b.txt");
        assert_eq!(destination_path(&into, "top.txt"), "in/top.txt");
        assert_eq!(destination_path(&into, ""), "in/", "the root's contents");
        assert_eq!(destination_path(&spec(""), "a/"), "a/", "into the destination's root");
    }

    #[test]
    fn globs_match_across_folders() {
        let filter = Filter::new(&spec("")).unwrap();
        assert!(filter.keeps("a.csv") && filter.keeps("x/a.csv"), "`*` crosses folders, as `aws s3 cp`'s does");
        assert!(filter.keeps("run/x/y/a.txt") && filter.keeps("run/a.txt"));
        assert!(!filter.keeps("other/a.txt"), "not included");
        assert!(!filter.keeps("run/tmp/a.txt") && !filter.keeps("run/tmp/x/a.txt"), "excluded");
        assert!(!filter.keeps("run/a.bam"), "not included");
        let everything = Filter::new(&CopySpec { include: Vec::new(), exclude: Vec::new(), ..spec("") }).unwrap();
        assert!(everything.keeps("any/thing"));
    }

    #[test]
    fn a_bucket_policy_names_what_it_refuses_the_copy_role() {
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/byos-copy").unwrap();
        let bucket = byos_domain::BucketName::parse("partner-bucket").unwrap();
        let session = "arn:aws:sts::123456789012:assumed-role/byos-copy/byos-copy@0123";
        let put = Request::new("s3:PutObject", "arn:aws:s3:::partner-bucket/lab/in/a").with_principal(session);
        let listing = Request::new("s3:ListBucket", "arn:aws:s3:::partner-bucket").with_principal(session);
        let wants = [listing, put];

        assert!(
            matches!(refused(ResourcePolicy::Absent, &wants), Refusal::Denied(r, why) if r.action == "s3:ListBucket" && why.is_empty())
        );
        let granted = policies::cross_account_bucket_policy(&bucket, &role, VersioningState::Unversioned);
        let granted = PolicyDocument::parse(&granted.to_string()).unwrap();
        assert!(matches!(refused(ResourcePolicy::Standard(&granted), &wants), Refusal::None));

        // The owner's deny-all without an exception for the role wins over the grant.
        let mut both = policies::cross_account_bucket_policy(&bucket, &role, VersioningState::Unversioned);
        let deny = policies::deny_all_bucket_policy(&bucket, "111111111111", "platform");
        both["Statement"].as_array_mut().unwrap().push(deny["Statement"][0].clone());
        let both = PolicyDocument::parse(&both.to_string()).unwrap();
        let Refusal::Denied(request, why) = refused(ResourcePolicy::Standard(&both), &wants) else {
            panic!("the deny applies")
        };
        assert_eq!(
            (request.action.as_str(), why.as_str()),
            ("s3:ListBucket", r#" (Statement[2] (Sid "DenyAllButThePlatform") denies it)"#)
        );

        // A key policy that delegates to its own account only does not let the role in.
        let delegated = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#;
        let delegated = PolicyDocument::parse(delegated).unwrap();
        let key = "arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let decrypt = [Request::new("kms:Decrypt", key).with_principal(session)];
        assert!(matches!(refused(ResourcePolicy::KmsKey(&delegated), &decrypt), Refusal::Denied(..)));
        let statement = policies::kms_key_policy_statement(&role);
        let with_role = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
        let with_role = PolicyDocument::parse(&with_role).unwrap();
        assert!(matches!(refused(ResourcePolicy::KmsKey(&with_role), &decrypt), Refusal::None));
    }

    #[test]
    fn sides_in_the_roles_account_are_left_to_its_policies() {
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/byos-copy").unwrap();
        assert!(in_role_account(Some("123456789012"), &role, "s3://a").unwrap().contains("own account"));
        assert!(in_role_account(None, &role, "s3://a").unwrap().contains("not known yet"));
        assert_eq!(in_role_account(Some("111111111111"), &role, "s3://a"), None);
    }

    #[test]
    fn the_window_halves_and_grows_back() {
        let mut window = Window::new(64);
        assert_eq!(window.shrink(), Duration::from_millis(100));
        assert_eq!(window.size, 32);
        assert_eq!(window.shrink(), Duration::from_millis(200), "pauses double");
        assert_eq!(window.size, 16);
        for _ in 0..100 {
            window.grow();
        }
        assert_eq!(window.size, 64, "up to the most");
        for _ in 0..20 {
            window.shrink();
        }
        assert_eq!((window.size, window.pause), (1, MAX_BACKOFF));
    }
}
