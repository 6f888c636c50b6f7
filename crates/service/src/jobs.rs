//! Jobs as their callers see them: a job belongs to its project, so whoever may read the
//! project may follow its jobs, and whoever may change its data may cancel them; the others are
//! told no such job exists.

use byos_catalog::{CopySpec, Entry, EntryKind, Job, JobObject, JobSpec, OnConflict, StoreError};
use byos_domain::Problem;
use uuid::Uuid;

use crate::data::relative_in;
use crate::error::{internal, store_error};
use crate::{Caller, ProjectScope, Read, ReadWrite, ServiceError, Services, now};

/// The most source paths one copy job takes.
pub const MAX_COPY_PATHS: usize = 1_000;

/// The most globs of each kind one copy job takes.
const MAX_GLOBS: usize = 100;

/// A copy or move job, as asked for: paths as the API writes them (from the project's root,
/// `/a/` for a folder).
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// A move: each source is deleted once its copy is verified.
    pub remove_sources: bool,
    pub source_project: Option<String>,
    pub paths: Vec<String>,
    pub destination_project: Option<String>,
    /// A folder (`/in/`), or the project's root (`/`).
    pub destination_path: Option<String>,
    /// `skip`, `overwrite` or `fail` (the default: nothing is overwritten unasked).
    pub on_conflict: Option<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub dry_run: bool,
}

/// One page of a copy job's report.
#[derive(Debug)]
pub struct ReportPage {
    pub job: Job,
    /// Keys relative to the source and destination projects.
    pub objects: Vec<JobObject>,
}

/// The most jobs a list shows: the newest.
pub(crate) const MAX_LISTED_JOBS: u32 = 100;

/// What a "not found" job is called.
const JOB: &str = "Job";

/// The jobs of the projects a caller may see.
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'a> {
    services: &'a Services,
}

impl<'a> Jobs<'a> {
    pub(crate) fn new(services: &'a Services) -> Jobs<'a> {
        Jobs { services }
    }

    /// The job `id`, when the caller may read its project.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Job, ServiceError> {
        let job = self.find(id).await?;
        caller.project::<Read>(job.project_id).map_err(|_| not_found(id))?;
        Ok(job)
    }

    /// The newest jobs of `project` (an id), or of every project the caller may see.
    pub async fn list(&self, caller: &Caller, project: Option<&str>) -> Result<Vec<Job>, ServiceError> {
        let store = &self.services.store().jobs;
        if let Some(project) = project {
            let id: Uuid = project
                .parse()
                .map_err(|_| Problem::invalid_request(&format!("projectId: {project:?} is not a project id")))?;
            let scope = caller.project::<Read>(id)?;
            return store.list_jobs(Some(scope.project()), MAX_LISTED_JOBS).await.map_err(internal);
        }
        if caller.is_admin() {
            return store.list_jobs(None, MAX_LISTED_JOBS).await.map_err(internal);
        }
        let mut jobs = Vec::new();
        for project in self.services.projects().list(caller).await? {
            jobs.extend(store.list_jobs(Some(project.id), MAX_LISTED_JOBS).await.map_err(internal)?);
        }
        jobs.sort_by_key(|job| std::cmp::Reverse((job.created_at, job.id)));
        jobs.truncate(MAX_LISTED_JOBS as usize);
        Ok(jobs)
    }

    /// Asks the job `id` to stop: a queued job ends at once, a running one at its next step. A
    /// job that has ended stays as it is.
    pub async fn cancel(&self, caller: &Caller, id: Uuid) -> Result<Job, ServiceError> {
        let job = self.find(id).await?;
        if !caller.sees_project(job.project_id) {
            return Err(not_found(id));
        }
        let scope = caller.project::<ReadWrite>(job.project_id)?;
        let job =
            self.services.store().jobs.cancel_job(job.id, now()).await.map_err(|e| store_error(e, JOB, job.id))?;
        tracing::info!(job = %job.id, token = %scope.caller().token(), status = job.status.as_str(), "job cancel asked");
        Ok(job)
    }

    /// Queues a copy (or move) job into the destination project: the caller needs read access
    /// to the source (read-write for a move) and read-write access to the destination. The
    /// paths must be in the source's catalog; a destination inside a source folder of the same
    /// project is refused (the copy would copy its own copies).
    pub async fn copy(&self, caller: &Caller, request: CopyRequest) -> Result<Job, ServiceError> {
        let invalid = |why: String| ServiceError::from(Problem::invalid_request(&why));
        let project_id = |field: &str, value: &Option<String>| -> Result<Uuid, ServiceError> {
            let value = value.as_deref().ok_or_else(|| invalid(format!("{field}: required")))?;
            value.parse().map_err(|_| invalid(format!("{field}: {value:?} is not a project id")))
        };
        let source_id = project_id("source.projectId", &request.source_project)?;
        let destination_id = project_id("destination.projectId", &request.destination_project)?;
        // Both are checked before anything is said about either's contents.
        if request.remove_sources {
            caller.project::<ReadWrite>(source_id)?;
        } else {
            caller.project::<Read>(source_id)?;
        }
        let scope = caller.project::<ReadWrite>(destination_id)?;
        let on_conflict = match request.on_conflict.as_deref() {
            None => OnConflict::Fail,
            Some(value) => OnConflict::parse(value)
                .ok_or_else(|| invalid(format!("onConflict: {value:?} is not skip, overwrite or fail")))?,
        };
        if request.paths.is_empty() || request.paths.len() > MAX_COPY_PATHS {
            return Err(invalid(format!("source.paths: 1 to {MAX_COPY_PATHS} paths, not {}", request.paths.len())));
        }
        for (field, globs) in [("include", &request.include), ("exclude", &request.exclude)] {
            if globs.len() > MAX_GLOBS {
                return Err(invalid(format!("{field}: at most {MAX_GLOBS} globs")));
            }
            for glob in globs {
                byos_jobs::glob_of(glob).map_err(|e| invalid(format!("{field}: {glob:?} is not a glob: {e}")))?;
            }
        }
        let destination_path = request.destination_path.as_deref().unwrap_or("/");
        let destination = relative_in("destination.path", destination_path)?;
        if !destination.is_empty() && !destination.ends_with('/') {
            return Err(invalid(format!(
                "destination.path: {destination_path:?} is not a folder; sources go into a folder, whose path ends with '/'"
            )));
        }
        let data = &self.services.store().data;
        let mut paths = Vec::with_capacity(request.paths.len());
        for (i, path) in request.paths.iter().enumerate() {
            let relative = relative_in(&format!("source.paths[{i}]"), path)?;
            let found = if relative.is_empty() { None } else { Some(data.entry(source_id, relative).await) };
            match (found, relative.ends_with('/')) {
                (None, _) | (Some(Ok(Entry { kind: EntryKind::Folder { .. }, .. })), true) => {}
                (Some(Ok(Entry { kind: EntryKind::File(_), .. })), false) => {}
                (Some(Ok(_) | Err(StoreError::NotFound)), folder) => {
                    let why = if folder { "there is no such folder" } else { "nothing is there" };
                    return Err(Problem::file_not_found(path, why).into());
                }
                (Some(Err(e)), _) => return Err(internal(e)),
            }
            paths.push(relative.to_owned());
        }
        let spec = CopySpec {
            source_project: source_id,
            paths,
            destination: destination.to_owned(),
            on_conflict,
            include: request.include,
            exclude: request.exclude,
            dry_run: request.dry_run,
        };
        // Two sources landing on one key: the second copy would replace the first (and a move
        // delete both sources), so paths whose destinations overlap go in separate jobs.
        let targets: Vec<String> = spec.paths.iter().map(|path| byos_jobs::destination_path(&spec, path)).collect();
        for (i, (path, target)) in spec.paths.iter().zip(&targets).enumerate() {
            let holds = |other: &String| {
                other == target || (target.is_empty() || target.ends_with('/')) && other.starts_with(target.as_str())
            };
            if let Some(j) = targets.iter().enumerate().position(|(j, other)| j != i && holds(other)) {
                return Err(invalid(format!(
                    "source.paths: /{} and /{path} would both land in /{target}; copy them in separate jobs or into different folders",
                    spec.paths[j]
                )));
            }
        }
        if source_id == destination_id {
            for path in &spec.paths {
                let target = byos_jobs::destination_path(&spec, path);
                if target == *path || (path.ends_with('/') || path.is_empty()) && target.starts_with(path.as_str()) {
                    return Err(invalid(format!(
                        "destination.path: {destination_path:?} is inside /{path}; a folder cannot be copied into itself, nor a file onto itself"
                    )));
                }
            }
        }
        let spec = if request.remove_sources { JobSpec::Move(spec) } else { JobSpec::Copy(spec) };
        let job = self.submit(&scope, spec).await?;
        tracing::info!(job = %job.id, source = %source_id, destination = %destination_id, token = %caller.token(), r#type = job.spec.kind(), "copy job queued");
        Ok(job)
    }

    /// A page of a copy job's report: up to `limit` of its objects after `after` (a `seq`), in
    /// the plan's order, with what became of each. Other jobs have an empty report.
    pub async fn report(
        &self,
        caller: &Caller,
        id: Uuid,
        after: Option<u64>,
        limit: u32,
    ) -> Result<ReportPage, ServiceError> {
        let job = self.get(caller, id).await?;
        let objects = match job.spec {
            JobSpec::Copy(_) | JobSpec::Move(_) => {
                self.services.store().jobs.job_objects(id, after, false, limit).await.map_err(internal)?
            }
            JobSpec::DeleteFolder { .. } | JobSpec::MoveFolder { .. } => Vec::new(),
        };
        Ok(ReportPage { job, objects })
    }

    /// Queues a job on the project.
    pub(crate) async fn submit(&self, scope: &ProjectScope<ReadWrite>, spec: JobSpec) -> Result<Job, ServiceError> {
        let job = Job::queued(scope.project(), spec, scope.caller().token(), now());
        self.services.job_engine().submit(job).await.map_err(|e| match e {
            StoreError::NotFound => Problem::not_found(crate::caller::PROJECT, &scope.project().to_string()).into(),
            e => internal(e),
        })
    }

    async fn find(&self, id: Uuid) -> Result<Job, ServiceError> {
        match self.services.store().jobs.get_job(id).await {
            Ok(job) => Ok(job),
            Err(StoreError::NotFound) => Err(not_found(id)),
            Err(e) => Err(internal(e)),
        }
    }
}

fn not_found(id: Uuid) -> ServiceError {
    Problem::not_found(JOB, &id.to_string()).into()
}
