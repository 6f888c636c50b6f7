//! Changing a project's data in place: folders, deletes of files, and reading a file's
//! versions. Each change goes to S3 first; the catalog then reads the key back from S3 and
//! applies it through the per-key rules (`SyncEngine::observe`), so the change shows at once and
//! the event that follows changes nothing.

use byos_aws::{ListedVersion, MAX_COPY_OBJECT_BYTES, RestoreTier};
use byos_buckets::OpenBucket;
use byos_catalog::{Entry, EntryKind, Job, JobSpec, Project, StoreError};
use byos_domain::{Problem, VersioningState};

use crate::data::{ArchiveState, archive_state, relative, relative_in};
use crate::error::internal;
use crate::transfers::{aws_problem, open_bucket};
use crate::{Internal, ProjectScope, Read, ReadWrite, ServiceError, Services, required};

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// The file is gone (behind a delete marker on a versioned bucket).
    File,
    /// A job deletes the folder: it is queued.
    Folder(Box<Job>),
}

/// The longest a restored copy may be kept, in days.
pub(crate) const MAX_RESTORE_DAYS: u64 = 365;

/// What a move did.
#[derive(Debug)]
pub enum Moved {
    /// The file is at its new path: its entry.
    File(Box<Entry>),
    /// A job moves the folder: it is queued.
    Folder(Box<Job>),
}

/// The operations that change a project's data in place.
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a> {
    services: &'a Services,
}

impl<'a> Changes<'a> {
    pub(crate) fn new(services: &'a Services) -> Changes<'a> {
        Changes { services }
    }

    /// Creates a folder (a marker object `a/b/`, with the configuration's encryption), which
    /// stays while it is empty; answers its entry.
    pub async fn create_folder(
        &self,
        scope: &ProjectScope<ReadWrite>,
        path: Option<&str>,
    ) -> Result<Entry, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        let relative = relative(path)?;
        if relative.is_empty() || !relative.ends_with('/') {
            return Err(Problem::invalid_request(&format!(
                "path: {path:?} is not a folder below the root; a folder's path ends with '/'"
            ))
            .into());
        }
        let bucket = open_bucket(self.services, &project).await?;
        let sse = bucket.configuration.spec.server_side_encryption.as_ref();
        let key = format!("{}{relative}", project.key_prefix);
        bucket
            .access
            .put_object(project.bucket.as_str(), &key, Vec::new(), sse)
            .await
            .map_err(|e| aws_problem(&e, &project))?;
        self.observe(&project, relative).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), folder = relative, "folder created");
        self.services.store().data.entry(project.id, relative).await.map_err(internal)
    }

    /// Deletes a file at once, or a folder with everything in it by a job: on a versioned bucket
    /// S3 keeps the versions behind delete markers.
    pub async fn delete(&self, scope: &ProjectScope<ReadWrite>, path: Option<&str>) -> Result<Deleted, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        let relative = relative(path)?;
        if relative.is_empty() {
            return Err(Problem::invalid_request(&format!(
                "path: {path:?} is the project's root; delete its folders and files, or the project"
            ))
            .into());
        }
        if relative.ends_with('/') {
            self.folder(&project, path, relative).await?;
            let spec = JobSpec::DeleteFolder { folder: relative.to_owned() };
            let job = self.services.jobs().submit(scope, spec).await?;
            tracing::info!(project = %project.id, token = %scope.caller().token(), folder = relative, job = %job.id, "folder delete queued");
            return Ok(Deleted::Folder(Box::new(job)));
        }
        self.delete_file(scope, &project, path, relative).await?;
        Ok(Deleted::File)
    }

    async fn delete_file(
        &self,
        scope: &ProjectScope<ReadWrite>,
        project: &Project,
        path: &str,
        relative: &str,
    ) -> Result<(), ServiceError> {
        self.file(project, path, relative).await?;
        let bucket = open_bucket(self.services, project).await?;
        let key = format!("{}{relative}", project.key_prefix);
        bucket.access.delete_object(project.bucket.as_str(), &key, None).await.map_err(|e| aws_problem(&e, project))?;
        self.observe(project, relative).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), file = relative, "file deleted");
        Ok(())
    }

    /// Every version and delete marker of a file, newest first, from S3. An unversioned bucket
    /// keeps none: `bucket-not-versioned`.
    pub async fn versions(
        &self,
        scope: &ProjectScope<Read>,
        path: Option<&str>,
    ) -> Result<Vec<ListedVersion>, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        Ok(self.versioned_file(&project, path).await?.versions)
    }

    /// Moves a file at once (a copy, verified, then the source deleted) and answers its new
    /// entry; or a folder with everything in it by a job. `to` is the file's new path (a path
    /// ending with `/` keeps its name in that folder), or the folder's new path: `/a/` moved to
    /// `/b/` puts `/a/x` at `/b/x`. A destination that exists is refused unless `overwrite`.
    pub async fn move_path(
        &self,
        scope: &ProjectScope<ReadWrite>,
        from: Option<&str>,
        to: Option<&str>,
        overwrite: bool,
    ) -> Result<Moved, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let from_path = required("from", from).map_err(|e| Problem::invalid_request(&e))?;
        let to_path = required("to", to).map_err(|e| Problem::invalid_request(&e))?;
        let from = relative_in("from", from_path)?;
        let to = relative_in("to", to_path)?;
        if from.is_empty() {
            return Err(
                Problem::invalid_request("from: the project's root cannot move; move its folders and files").into()
            );
        }
        let data = &self.services.store().data;
        if from.ends_with('/') {
            if !to.ends_with('/') {
                return Err(Problem::invalid_request(&format!(
                    "to: {to_path:?} is not a folder; a folder moves to a folder, whose path ends with '/'"
                ))
                .into());
            }
            if to.starts_with(from) || from.starts_with(to) {
                return Err(Problem::invalid_request(&format!(
                    "to: {to_path:?} and {from_path:?} hold one another; a folder cannot move into itself or its parent's place"
                ))
                .into());
            }
            self.folder(&project, from_path, from).await?;
            if !overwrite && !to.is_empty() && data.entry(project.id, to).await.is_ok() {
                return Err(Problem::file_exists(to_path).into());
            }
            let spec = JobSpec::MoveFolder { from: from.to_owned(), to: to.to_owned(), overwrite };
            let job = self.services.jobs().submit(scope, spec).await?;
            tracing::info!(project = %project.id, token = %scope.caller().token(), from, to, job = %job.id, "folder move queued");
            return Ok(Moved::Folder(Box::new(job)));
        }
        // A file into a folder keeps its name.
        let to = if to.is_empty() || to.ends_with('/') {
            format!("{to}{}", from.rsplit('/').next().unwrap_or(from))
        } else {
            to.to_owned()
        };
        let to_shown = format!("/{to}");
        if to == from {
            return Err(Problem::invalid_request(&format!("to: {to_shown:?} is where the file is")).into());
        }
        self.file(&project, from_path, from).await?;
        if !overwrite && data.entry(project.id, &to).await.is_ok() {
            return Err(Problem::file_exists(&to_shown).into());
        }
        let bucket = open_bucket(self.services, &project).await?;
        let name = project.bucket.as_str();
        let (from_key, to_key) = (format!("{}{from}", project.key_prefix), format!("{}{to}", project.key_prefix));
        let head = bucket.access.head(name, &from_key, None).await.map_err(|e| aws_problem(&e, &project))?;
        let head = head.ok_or_else(|| Problem::file_not_found(from_path, "nothing is there"))?;
        let source = byos_jobs::Source {
            bucket: name.to_owned(),
            key: from_key.clone(),
            version_id: None,
            size: head.size,
            etag: head.etag,
        };
        let sse = bucket.configuration.spec.server_side_encryption.as_ref();
        let copies = &self.services.job_engine().settings().copies;
        byos_jobs::copy_verified(&bucket.access, &source, name, &to_key, sse, copies).await.map_err(|e| match e {
            byos_jobs::CopyError::Aws(e) => aws_problem(&e, &project),
            e => Problem::objects_not_moved(1, from_path, from_path, &e.to_string()).into(),
        })?;
        bucket.access.delete_object(name, &from_key, None).await.map_err(|e| aws_problem(&e, &project))?;
        self.observe(&project, from).await?;
        self.observe(&project, &to).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), from, to, "file moved");
        let entry = data.entry(project.id, &to).await.map_err(internal)?;
        Ok(Moved::File(Box::new(entry)))
    }

    /// Asks S3 to restore an archived file (GLACIER, DEEP_ARCHIVE) for `days` days at `tier`
    /// (`Standard` when not given). Answers the file's entry: its `archiveState` goes to
    /// `restoring`, then `restored`, as S3's restore events (or a read of the key) show.
    pub async fn archive_restore(
        &self,
        scope: &ProjectScope<ReadWrite>,
        path: Option<&str>,
        days: Option<u64>,
        tier: Option<&str>,
    ) -> Result<Entry, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        let relative = relative(path)?;
        let days = match days {
            None => return Err(Problem::invalid_request("days: required").into()),
            Some(d) if (1..=MAX_RESTORE_DAYS).contains(&d) => d,
            Some(d) => {
                return Err(Problem::invalid_request(&format!("days: {d} is not 1 to {MAX_RESTORE_DAYS}")).into());
            }
        };
        let tier_name = tier.unwrap_or("Standard");
        let tier = RestoreTier::parse(tier_name).ok_or_else(|| {
            Problem::invalid_request(&format!("tier: {tier_name:?} is not Standard, Bulk or Expedited"))
        })?;
        let entry = self.file(&project, path, relative).await?;
        let EntryKind::File(file) = &entry.kind else {
            return Err(Problem::file_not_found(path, "it is a folder").into());
        };
        let class = file.storage_class.as_deref().unwrap_or("STANDARD");
        match archive_state(file) {
            None => return Err(Problem::not_archived(path, class).into()),
            Some(ArchiveState::Restoring) => return Err(Problem::restore_in_progress(path).into()),
            Some(ArchiveState::Archived | ArchiveState::Restored) => {}
        }
        if tier == RestoreTier::Expedited && class == "DEEP_ARCHIVE" {
            return Err(Problem::invalid_request(
                "tier: Expedited is not offered for DEEP_ARCHIVE; use Standard or Bulk",
            )
            .into());
        }
        let bucket = open_bucket(self.services, &project).await?;
        let key = format!("{}{relative}", project.key_prefix);
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        bucket.access.restore_object(project.bucket.as_str(), &key, days, tier).await.map_err(|e| {
            match e.code.as_deref() {
                Some("RestoreAlreadyInProgress") => Problem::restore_in_progress(path).into(),
                Some("InvalidObjectState") => Problem::not_archived(path, class).into(),
                _ => aws_problem(&e, &project),
            }
        })?;
        self.observe(&project, relative).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), file = relative, days, tier = tier_name, "archive restore asked");
        self.services.store().data.entry(project.id, relative).await.map_err(internal)
    }

    /// Makes version `version_id` of a file its current one again: a copy of it onto the same
    /// key (with the configuration's encryption), so the history is kept. Answers the entry.
    pub async fn restore_version(
        &self,
        scope: &ProjectScope<ReadWrite>,
        path: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<Entry, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        let version_id = required("versionId", version_id).map_err(|e| Problem::invalid_request(&e))?;
        let VersionedFile { bucket, relative, key, versions } = self.versioned_file(&project, path).await?;
        let Some(version) = versions.iter().find(|v| v.version_id.as_deref() == Some(version_id)) else {
            return Err(Problem::file_not_found(path, &format!("it has no version {version_id}")).into());
        };
        if version.delete_marker {
            return Err(Problem::file_not_found(path, &format!("version {version_id} is a delete marker")).into());
        }
        if version.size > MAX_COPY_OBJECT_BYTES {
            return Err(Problem::invalid_request(&format!(
                "versionId: version {version_id} holds {} bytes, more than one copy request takes (5 GiB); copies in \
                 parts come with jobs",
                version.size
            ))
            .into());
        }
        let sse = bucket.configuration.spec.server_side_encryption.as_ref();
        bucket
            .access
            .copy_version_to_current(project.bucket.as_str(), &key, version_id, sse)
            .await
            .map_err(|e| aws_problem(&e, &project))?;
        self.observe(&project, &relative).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), file = relative, version = version_id, "version restored");
        self.file(&project, path, &relative).await
    }

    /// Brings a deleted file back: removes the delete marker that is its latest version, so the
    /// version before it is current again. Answers the entry.
    pub async fn undelete(&self, scope: &ProjectScope<ReadWrite>, path: Option<&str>) -> Result<Entry, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", path).map_err(|e| Problem::invalid_request(&e))?;
        let VersionedFile { bucket, relative, key, versions } = self.versioned_file(&project, path).await?;
        let Some(latest) = versions.iter().find(|v| v.is_latest) else {
            return Err(Problem::file_not_found(path, "no version of it is kept").into());
        };
        if !latest.delete_marker {
            return Err(Problem::not_deleted(path).into());
        }
        bucket
            .access
            .delete_object(project.bucket.as_str(), &key, latest.version_id.as_deref())
            .await
            .map_err(|e| aws_problem(&e, &project))?;
        self.observe(&project, &relative).await?;
        tracing::info!(project = %project.id, token = %scope.caller().token(), file = relative, "file undeleted");
        self.file(&project, path, &relative).await
    }

    /// A file's versions and delete markers on a bucket that keeps versions; "not found" when
    /// it has none.
    async fn versioned_file(&self, project: &Project, path: &str) -> Result<VersionedFile, ServiceError> {
        let relative = file_path(path)?.to_owned();
        let bucket = open_bucket(self.services, project).await?;
        versioned(&bucket, project)?;
        let key = format!("{}{relative}", project.key_prefix);
        let versions =
            bucket.access.key_versions(project.bucket.as_str(), &key).await.map_err(|e| aws_problem(&e, project))?;
        if versions.is_empty() {
            return Err(Problem::file_not_found(path, "no version of it is kept").into());
        }
        Ok(VersionedFile { bucket, relative, key, versions })
    }

    /// The file at `relative`, or why there is none.
    async fn file(&self, project: &Project, path: &str, relative: &str) -> Result<Entry, ServiceError> {
        let data = &self.services.store().data;
        match data.entry(project.id, relative).await {
            Ok(entry) => Ok(entry),
            Err(StoreError::NotFound) => {
                let folder = data.entry(project.id, &format!("{relative}/")).await.is_ok();
                Err(Problem::file_not_found(path, if folder { "it is a folder" } else { "nothing is there" }).into())
            }
            Err(e) => Err(internal(e)),
        }
    }

    /// Refuses a folder path the catalog does not hold as a folder.
    async fn folder(&self, project: &Project, path: &str, relative: &str) -> Result<(), ServiceError> {
        match self.services.store().data.entry(project.id, relative).await {
            Ok(Entry { kind: EntryKind::Folder { .. }, .. }) => Ok(()),
            Ok(_) | Err(StoreError::NotFound) => Err(Problem::file_not_found(path, "there is no such folder").into()),
            Err(e) => Err(internal(e)),
        }
    }

    async fn observe(&self, project: &Project, relative: &str) -> Result<(), ServiceError> {
        self.services.sync().observe(project, relative).await.map_err(|e| internal(Internal::Sync(e)))
    }
}

/// A file of a bucket that keeps versions, with them.
struct VersionedFile {
    bucket: OpenBucket,
    /// The file's key relative to the project.
    relative: String,
    /// Its key in the bucket.
    key: String,
    /// Newest first.
    versions: Vec<ListedVersion>,
}

/// The relative key of a file's `path`, refusing a folder's.
fn file_path(path: &str) -> Result<&str, ServiceError> {
    let relative = relative(path)?;
    if relative.is_empty() || relative.ends_with('/') {
        return Err(Problem::file_not_found(path, "it is a folder").into());
    }
    Ok(relative)
}

/// Refuses a bucket that keeps no versions, saying its state.
fn versioned(bucket: &OpenBucket, project: &Project) -> Result<(), ServiceError> {
    match bucket.configuration.versioning {
        Some(VersioningState::Enabled | VersioningState::Suspended) => Ok(()),
        state => {
            let state = state.map_or("not known yet", VersioningState::as_str);
            Err(Problem::bucket_not_versioned(project.bucket.as_str(), state).into())
        }
    }
}
