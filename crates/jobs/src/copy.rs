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
//!    and leaves the object pending for the next pass, rather than failing it.
//!
//! The copy runs with the storage credential both configurations share: one IAM identity
//! allowed on both buckets. Configurations on different credentials need the region's
//! cross-account role, which the preflight names as the missing piece.

use std::sync::Arc;
use std::time::Duration;

use byos_aws::{AwsError, BucketAccess, PageMarker};
use byos_catalog::{CopySpec, JobObject, ObjectResult, OnConflict, Project};
use byos_domain::{
    CheckResult, Problem, ServerSideEncryption, ValidationCheck, ValidationReport, VersioningState, is_probe_key,
};
use globset::{Glob, GlobSet, GlobSetBuilder};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::moves::{CopyError, CopySettings, Source, copy_verified, verify};
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
    let sides = Sides::open(run, destination, spec).await?;
    if run.job.preflight.is_none() {
        let report = preflight(&sides, spec, remove_sources).await;
        run.record_preflight(&report).await?;
        if let Some(failed) = report.checks.iter().find(|c| c.result == CheckResult::Failed) {
            return Err(Stop::Failed(Problem::copy_preflight_failed(&failed.name, &failed.detail)));
        }
    }
    plan(run, &sides, spec).await?;
    let first_failure = copy_planned(run, &sides, spec, remove_sources).await?;
    if !spec.dry_run {
        // The catalog shows the copies (and a move's sources gone) without waiting for events.
        for path in &spec.paths {
            let target = destination_path(spec, path);
            if target.ends_with('/') {
                run.inner.sync.refresh_folder(destination, &target).await?;
                if remove_sources {
                    run.inner.sync.refresh_folder(&sides.source, path).await?;
                }
            } else {
                run.inner.sync.observe(destination, &target).await?;
                if remove_sources {
                    run.inner.sync.observe(&sides.source, path).await?;
                }
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

/// Both projects, the access that copies, and what the copy needs of each configuration.
struct Sides {
    source: Project,
    destination: Project,
    access: BucketAccess,
    /// The source bucket keeps versions: the plan pins each object's.
    source_versioned: bool,
    source_kms: Option<String>,
    /// The destination configuration's encryption, applied to every copy.
    sse: Option<ServerSideEncryption>,
    /// Both configurations use one storage credential, the identity that copies.
    shared_credential: bool,
}

impl Sides {
    async fn open(run: &Run<'_>, destination: &Project, spec: &CopySpec) -> Result<Sides, Stop> {
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
            Some(ServerSideEncryption::Kms(key)) => Some(key.as_str().to_owned()),
            _ => None,
        };
        Ok(Sides {
            source_versioned: from.configuration.versioning == Some(VersioningState::Enabled),
            source_kms: kms(&from.configuration.spec.server_side_encryption),
            sse: to.configuration.spec.server_side_encryption.clone(),
            shared_credential: from.configuration.spec.credential_id == to.configuration.spec.credential_id,
            access: to.access,
            source,
            destination: destination.clone(),
        })
    }

    fn source_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.source.key_prefix)
    }

    fn destination_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.destination.key_prefix)
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

    if sides.shared_credential {
        checks.passed("copy-identity", "both configurations use one storage credential, which copies".to_owned());
    } else {
        checks.failed(
            "copy-identity",
            format!(
                "the configurations of '{}' and '{}' use different storage credentials, and copies between them go through the region's cross-account role, which this server does not assume",
                source.name, destination.name
            ),
            "Copy between projects whose configurations share a storage credential (one IAM identity allowed on both buckets: grant it the other bucket's prefix with `byos aws iam-policy`), or download and upload the data.".to_owned(),
        );
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
            Some(key) => match access.kms_round_trip(key).await {
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

/// Lists the sources into the job's plan, from where it stopped.
async fn plan(run: &mut Run<'_>, sides: &Sides, spec: &CopySpec) -> Result<(), Stop> {
    let mut plan = run.job.plan.clone().unwrap_or_default();
    let filter = Filter::new(spec).map_err(|e| Stop::Internal(Box::new(e)))?;
    let from = sides.source.bucket.as_str();
    while !plan.done {
        let Some(path) = spec.paths.get(plan.path) else {
            plan.done = true;
            run.record_plan(&[], &plan).await?;
            break;
        };
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
        let progress = run.progress();
        progress.objects_total = Some(progress.objects_total.unwrap_or(0) + objects.len() as u64);
        progress.bytes_total = Some(progress.bytes_total.unwrap_or(0) + objects.iter().map(|o| o.size).sum::<u64>());
        progress.objects_failed += objects.iter().filter(|o| o.result == ObjectResult::Failed).count() as u64;
        run.record_plan(&objects, &plan).await?;
    }
    Ok(())
}

/// What one object's copy needs, shared by the copies in flight.
struct Copier {
    access: BucketAccess,
    source_bucket: String,
    source_prefix: String,
    destination_bucket: String,
    destination_prefix: String,
    sse: Option<ServerSideEncryption>,
    copies: CopySettings,
    on_conflict: OnConflict,
    dry_run: bool,
    remove_sources: bool,
}

/// What became of one object: an end, or a failure that may pass (it stays pending).
enum Outcome {
    Done(ObjectResult, Option<String>),
    Later(AwsError),
}

impl Copier {
    async fn copy(&self, object: &JobObject) -> Outcome {
        let source = Source {
            bucket: self.source_bucket.clone(),
            key: format!("{}{}", self.source_prefix, object.source_key),
            version_id: object.version_id.clone(),
            size: object.size,
            etag: object.etag.clone(),
        };
        let to = format!("{}{}", self.destination_prefix, object.destination_key);
        match self.copy_source(&source, &to).await {
            Ok(outcome) => outcome,
            Err(CopyError::Aws(e)) if e.retryable() => Outcome::Later(e),
            Err(CopyError::Aws(e)) => {
                Outcome::Done(ObjectResult::Failed, Some(format!("{}: {}", e.operation, e.message)))
            }
            Err(e) => Outcome::Done(ObjectResult::Failed, Some(e.to_string())),
        }
    }

    async fn copy_source(&self, source: &Source, to: &str) -> Result<Outcome, CopyError> {
        let bucket = self.destination_bucket.as_str();
        let copied = if self.on_conflict == OnConflict::Overwrite && !self.dry_run {
            false
        } else if let Some(there) = self.access.head(bucket, to, None).await? {
            // The job's own copy, made before a stop, counts as made; anything else conflicts.
            match verify(&self.access, source, &there, self.copies.in_parts(source.size)).await {
                Ok(()) => true,
                Err(CopyError::Mismatch(_)) => match self.on_conflict {
                    OnConflict::Skip => return Ok(Outcome::Done(ObjectResult::Skipped, None)),
                    OnConflict::Fail => {
                        return Ok(Outcome::Done(
                            ObjectResult::Failed,
                            Some("the destination holds another object, and the job does not overwrite".to_owned()),
                        ));
                    }
                    OnConflict::Overwrite => false,
                },
                Err(e) => return Err(e),
            }
        } else {
            false
        };
        if self.dry_run {
            return Ok(Outcome::Done(if copied { ObjectResult::Copied } else { ObjectResult::Planned }, None));
        }
        if !copied {
            copy_verified(&self.access, source, bucket, to, self.sse.as_ref(), &self.copies).await?;
        }
        if !self.remove_sources {
            return Ok(Outcome::Done(ObjectResult::Copied, None));
        }
        // The copy is verified: its source may go (on a versioned bucket, behind a delete marker).
        self.access.delete_object(&source.bucket, &source.key, None).await?;
        Ok(Outcome::Done(ObjectResult::Moved, None))
    }
}

/// Copies the plan's pending objects, pass after pass until none is left that S3 may still
/// take; answers the first failure of this run (its source key and reason).
async fn copy_planned(
    run: &mut Run<'_>,
    sides: &Sides,
    spec: &CopySpec,
    remove_sources: bool,
) -> Result<Option<(String, String)>, Stop> {
    let settings = &run.inner.settings;
    let most = settings.copies_at_once.max(1);
    let copier = Arc::new(Copier {
        access: sides.access.clone(),
        source_bucket: sides.source.bucket.as_str().to_owned(),
        source_prefix: sides.source.key_prefix.as_str().to_owned(),
        destination_bucket: sides.destination.bucket.as_str().to_owned(),
        destination_prefix: sides.destination.key_prefix.as_str().to_owned(),
        sse: sides.sse.clone(),
        copies: settings.copies,
        on_conflict: spec.on_conflict,
        dry_run: spec.dry_run,
        remove_sources,
    });
    let mut window = Window::new(most);
    let mut first_failure = None;
    loop {
        let mut after = None;
        let mut recorded = 0usize;
        let mut left: Option<AwsError> = None;
        loop {
            let page = run.inner.store.jobs.job_objects(run.job.id, after, true, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            let mut in_flight = JoinSet::new();
            let mut results: Vec<(u64, ObjectResult, Option<String>)> = Vec::new();
            let mut sizes: Vec<u64> = Vec::new();
            let mut objects = page.into_iter();
            loop {
                while in_flight.len() < window.size {
                    let Some(object) = objects.next() else { break };
                    run.pace().await;
                    run.paced(1);
                    let copier = copier.clone();
                    in_flight.spawn(async move {
                        let outcome = copier.copy(&object).await;
                        (object, outcome)
                    });
                }
                let Some(done) = in_flight.join_next().await else { break };
                let (object, outcome) = done.map_err(|e| Stop::Internal(Box::new(e)))?;
                match outcome {
                    Outcome::Done(result, error) => {
                        window.grow();
                        if let (ObjectResult::Failed, Some(reason), None) = (result, &error, &first_failure) {
                            first_failure = Some((object.source_key.clone(), reason.clone()));
                        }
                        results.push((object.seq, result, error));
                        sizes.push(object.size);
                    }
                    Outcome::Later(e) => {
                        let pause = window.shrink();
                        tracing::info!(job = %run.job.id, key = object.source_key, error = %e, copies = window.size, "S3 asks the copy to slow down");
                        tokio::time::sleep(pause).await;
                        left = Some(e);
                    }
                }
                if results.len() >= RECORD_EVERY {
                    recorded += results.len();
                    record(run, &mut results, &mut sizes).await?;
                }
            }
            recorded += results.len();
            record(run, &mut results, &mut sizes).await?;
        }
        match left {
            None => return Ok(first_failure),
            // Some objects wait for S3: another pass takes them, unless this one did nothing.
            Some(e) if recorded == 0 => return Err(aws_stop(e, &sides.destination)),
            Some(_) => {}
        }
    }
}

/// Records results with the progress they make, and empties them.
async fn record(
    run: &mut Run<'_>,
    results: &mut Vec<(u64, ObjectResult, Option<String>)>,
    sizes: &mut Vec<u64>,
) -> Result<(), Stop> {
    if results.is_empty() {
        return Ok(());
    }
    let progress = run.progress();
    for ((_, result, _), size) in results.iter().zip(sizes.iter()) {
        match result {
            ObjectResult::Copied | ObjectResult::Moved | ObjectResult::Planned => {
                progress.objects_done += 1;
                progress.bytes_done += size;
            }
            ObjectResult::Skipped => progress.objects_skipped += 1,
            ObjectResult::Failed => progress.objects_failed += 1,
            ObjectResult::Pending => {}
        }
    }
    run.record_objects(results).await?;
    results.clear();
    sizes.clear();
    Ok(())
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
