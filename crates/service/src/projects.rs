//! Projects: a folder of a ready storage configuration's bucket, with the catalog of its data
//! kept in sync. Admins create and delete projects; members see the projects their token names,
//! and nothing of the others (not even that they exist).
//!
//! Creating a project starts its initial import (a reconcile); a reconcile can be requested at
//! any time, and the latest run shows its progress and drift.

use byos_catalog::{Project, ReconcileRun, StoreError};
use byos_domain::{AwsRegion, ConfigurationStatus, ErrorCode, KeyPrefix, Problem, ProjectFolder, ResourceName};
use byos_sync::SyncError;
use uuid::Uuid;

use crate::caller::PROJECT as RESOURCE;
use crate::error::{internal, store_error};
use crate::{Access, Caller, ProjectScope, Read, ReadWrite, ServiceError, Services, now, required};

const RECONCILE: &str = "Reconcile of project";
/// What creating and deleting projects say to a member.
const PROJECT_ADMINISTRATION: &str = "Creating and deleting projects";

/// A new project, as a client sends it.
#[derive(Debug, Default)]
pub struct ProjectRequest {
    /// 3 to 63 characters.
    pub name: Option<String>,
    /// The AWS region id: the storage configuration's.
    pub region: Option<String>,
    pub storage_configuration_id: Option<String>,
    /// A relative key inside the configuration's prefix, without a leading or trailing `/`.
    pub folder: Option<String>,
}

/// A new project and its initial import, running.
#[derive(Debug, Clone)]
pub struct CreatedProject {
    pub project: Project,
    pub import: ReconcileRun,
}

/// The operations on projects.
#[derive(Debug, Clone, Copy)]
pub struct Projects<'a> {
    services: &'a Services,
}

impl<'a> Projects<'a> {
    pub(crate) fn new(services: &'a Services) -> Projects<'a> {
        Projects { services }
    }

    /// The projects the caller may see, by name.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Project>, ServiceError> {
        let mut projects = self.services.store().projects.list_projects().await.map_err(internal)?;
        projects.retain(|p| caller.sees_project(p.id));
        Ok(projects)
    }

    /// The project of a scope (the caller may see it: to a member, the others do not exist).
    pub async fn get<A: Access>(&self, scope: &ProjectScope<A>) -> Result<Project, ServiceError> {
        let id = scope.project();
        self.services.store().projects.get_project(id).await.map_err(|e| store_error(e, RESOURCE, id))
    }

    /// Creates a project on a ready configuration of its region, and starts its initial import.
    /// Its folder may not lie inside another project's, nor hold one.
    pub async fn create(&self, caller: &Caller, request: ProjectRequest) -> Result<CreatedProject, ServiceError> {
        caller.require_admin(PROJECT_ADMINISTRATION)?;
        let project = self.validate(request).await?;
        self.services
            .store()
            .projects
            .insert_project(&project)
            .await
            .map_err(|e| store_error(e, RESOURCE, project.id))?;
        tracing::info!(project = %project.id, prefix = %project.key_prefix, "project created");
        let import = self.services.sync().project_created(&project).await.map_err(|e| sync_error(e, project.id))?;
        Ok(CreatedProject { project, import })
    }

    /// Deletes a project and its catalog. The data stays in the bucket.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        caller.require_admin(PROJECT_ADMINISTRATION)?;
        self.services.store().projects.delete_project(id).await.map_err(|e| store_error(e, RESOURCE, id))?;
        self.services.sync().refresh_routes().await.map_err(|e| sync_error(e, id))?;
        tracing::info!(project = %id, "project deleted");
        Ok(())
    }

    /// The project's latest reconcile: its progress while it runs, then the drift it found.
    pub async fn latest_reconcile(&self, scope: &ProjectScope<Read>) -> Result<ReconcileRun, ServiceError> {
        let project = self.get(scope).await?;
        self.latest_run(project.id).await
    }

    /// Starts a reconcile of the project, or answers with the one already running.
    pub async fn reconcile(&self, scope: &ProjectScope<ReadWrite>) -> Result<ReconcileRun, ServiceError> {
        let project = self.get(scope).await?;
        let id = project.id;
        match self.services.sync().request_reconcile(project.id, "requested").await {
            Ok(run) => Ok(run),
            // Another replica holds the project's reconcile lease: show its run.
            Err(SyncError::Busy) => self.latest_run(project.id).await,
            Err(e) => Err(sync_error(e, id)),
        }
    }

    async fn latest_run(&self, project: Uuid) -> Result<ReconcileRun, ServiceError> {
        let run = self.services.store().sync.latest_reconcile(project).await.map_err(internal)?;
        run.ok_or_else(|| Problem::not_found(RECONCILE, &project.to_string()).into())
    }

    /// The project's key prefix, for a policy scoped to it (scoped credentials, uploads):
    /// refused for a project stored before prefixes that widen a policy were refused.
    pub fn policy_prefix(project: &Project) -> Result<&KeyPrefix, ServiceError> {
        project.key_prefix.policy_safe().map_err(|rule| {
            Problem::project_prefix_unsafe(project.name.as_str(), project.key_prefix.as_str(), &rule.to_string())
        })?;
        Ok(&project.key_prefix)
    }

    /// Checks the parameters, then the configuration: it exists, is in the region, and is
    /// ready.
    async fn validate(&self, request: ProjectRequest) -> Result<Project, ServiceError> {
        let invalid = |m: String| ServiceError::from(Problem::invalid_request(&m));
        let name = ResourceName::parse(required("name", request.name.as_deref()).map_err(invalid)?)
            .map_err(|e| invalid(format!("name: {e}")))?;
        let region = required("region", request.region.as_deref()).map_err(invalid)?;
        let regions = self.services.regions();
        // Every region of the table is an AWS region id.
        let Some(region) = regions.get(region).and_then(|_| AwsRegion::parse(region).ok()) else {
            return Err(Problem::region_not_supported(&regions.aws_region_list()).into());
        };
        let folder = ProjectFolder::parse(required("folder", request.folder.as_deref()).map_err(invalid)?)
            .map_err(|e| invalid(format!("folder: {e}")))?;
        let configuration_text =
            required("storageConfigurationId", request.storage_configuration_id.as_deref()).map_err(invalid)?;
        let configuration_id = Uuid::parse_str(configuration_text.trim()).map_err(|_| {
            invalid(format!("storageConfigurationId: {configuration_text:?} is not a storage configuration id"))
        })?;
        let configuration = match self.services.store().configurations.get_configuration(configuration_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return Err(invalid(format!(
                    "storageConfigurationId: no storage configuration has the id {configuration_id}"
                )));
            }
            Err(e) => return Err(internal(e)),
        };
        if configuration.spec.region != region {
            return Err(Problem::bucket_wrong_region(region.as_str()).into());
        }
        if configuration.status != ConfigurationStatus::Ready {
            return Err(Problem::new(
                ErrorCode::ConfigurationNotReady,
                &[("name", configuration.spec.name.as_str()), ("status", configuration.status.as_str())],
            )
            .into());
        }
        let now = now();
        Ok(Project {
            id: Uuid::new_v4(),
            name,
            region,
            configuration_id,
            key_prefix: folder.key_prefix(configuration.spec.key_prefix.as_ref()),
            folder,
            bucket: configuration.spec.bucket,
            created_at: now,
            updated_at: now,
        })
    }
}

fn sync_error(e: SyncError, id: Uuid) -> ServiceError {
    match e {
        SyncError::NotFound => Problem::not_found(RESOURCE, &id.to_string()).into(),
        e => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, code, member, message};

    fn request(name: &str, region: &str, configuration: Uuid, folder: &str) -> ProjectRequest {
        ProjectRequest {
            name: Some(name.to_owned()),
            region: Some(region.to_owned()),
            storage_configuration_id: Some(configuration.to_string()),
            folder: Some(folder.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_project_needs_a_ready_configuration_of_its_region_and_a_name_of_its_own() {
        let fixture = Fixture::new().await;
        let projects = fixture.services.projects();
        let admin = &fixture.admin;
        let configuration = fixture.configuration("genomics", "genomics/").await;

        let not_ready = projects.create(admin, request("study", "eu-central-1", configuration, "study")).await;
        assert_eq!(
            message(not_ready),
            "configuration-not-ready: Storage configuration 'genomics' is initializing: a project needs a ready \
             storage configuration"
        );
        fixture.set_ready(configuration).await;
        let elsewhere = projects.create(admin, request("study", "us-east-1", configuration, "study")).await;
        assert_eq!(
            message(elsewhere),
            "bucket-wrong-region: Storage container must be located in the us-east-1 region"
        );
        let unknown = projects.create(admin, request("study", "eu-central-1", Uuid::new_v4(), "study")).await;
        assert!(message(unknown).contains("no storage configuration has the id"));
        let by_member = projects.create(&member(&[]), request("study", "eu-central-1", configuration, "study")).await;
        assert_eq!(
            message(by_member),
            "access-forbidden: Access forbidden: Creating and deleting projects need a token with the admin role"
        );

        let created = projects.create(admin, request("study", "eu-central-1", configuration, "study/2026")).await;
        let created = created.unwrap();
        assert_eq!(created.project.key_prefix.as_str(), "genomics/study/2026/");
        assert_eq!(created.import.reason, "initial-import");
        let taken = projects.create(admin, request("study", "eu-central-1", configuration, "other")).await;
        assert_eq!(code(taken), "name-taken");
        let inside = projects.create(admin, request("inside", "eu-central-1", configuration, "study/2026/raw")).await;
        assert_eq!(code(inside), "project-prefix-overlap");
    }

    #[test]
    fn policies_are_never_scoped_to_a_prefix_that_widens_them() {
        let project = |folder: ProjectFolder| Project {
            id: Uuid::new_v4(),
            name: ResourceName::parse("study").unwrap(),
            region: AwsRegion::parse("eu-central-1").unwrap(),
            configuration_id: Uuid::new_v4(),
            key_prefix: folder.key_prefix(None),
            folder,
            bucket: byos_domain::BucketName::parse("customer-bucket").unwrap(),
            created_at: now(),
            updated_at: now(),
        };
        let safe = project(ProjectFolder::parse("studies").unwrap());
        assert_eq!(Projects::policy_prefix(&safe).map(|p| p.as_str().to_owned()).ok(), Some("studies/".to_owned()));
        let old = project(ProjectFolder::parse_relaxed("team*").unwrap());
        assert_eq!(
            message(Projects::policy_prefix(&old)),
            format!(
                "project-prefix-unsafe: Project '{}' lives under 'team*/', which no policy can scope: a key prefix holds \
                 no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible \
                 formatting characters, found '*'",
                old.name
            )
        );
    }

    #[tokio::test]
    async fn members_see_only_the_projects_their_token_names() {
        let fixture = Fixture::new().await;
        let projects = fixture.services.projects();
        let configuration = fixture.configuration("genomics", "genomics/").await;
        fixture.set_ready(configuration).await;
        let admin = &fixture.admin;
        let create = |name: &'static str| async move {
            let created = projects.create(admin, request(name, "eu-central-1", configuration, name)).await;
            created.unwrap().project.id
        };
        let (mine, theirs) = (create("mine").await, create("theirs").await);
        let member = member(&[mine]);
        let scope = |id| member.project::<Read>(id);

        let listed = projects.list(&member).await.unwrap();
        assert_eq!(listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["mine"]);
        assert_eq!(projects.list(&fixture.admin).await.map(|p| p.len()).ok(), Some(2));
        assert!(projects.get(&scope(mine).unwrap()).await.is_ok());
        // The others do not exist, as far as the member can tell: the same answer as an id no
        // project has.
        let hidden = message(scope(theirs));
        assert_eq!(hidden, format!("not-found: Project '{theirs}' does not exist"));
        assert_eq!(message(member.project::<ReadWrite>(theirs)), hidden);
        let gone = Uuid::new_v4();
        let admin = fixture.admin.project::<Read>(gone).unwrap();
        assert_eq!(message(projects.get(&admin).await), format!("not-found: Project '{gone}' does not exist"));
        assert_eq!(code(projects.delete(&member, mine).await), "access-forbidden");
    }
}
