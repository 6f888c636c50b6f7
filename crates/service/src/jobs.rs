//! Jobs as their callers see them: a job belongs to its project, so whoever may read the
//! project may follow its jobs, and whoever may change its data may cancel them; the others are
//! told no such job exists.

use byos_catalog::{Job, JobSpec, StoreError};
use byos_domain::Problem;
use uuid::Uuid;

use crate::error::{internal, store_error};
use crate::{Caller, ProjectScope, Read, ReadWrite, ServiceError, Services, now};

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
