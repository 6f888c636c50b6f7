//! The unit tests' fixture: services on a fresh SQLite store in a temporary directory, with an
//! AWS that is a closed local port (these tests never reach AWS, and must not try the real one).

use byos_buckets::Buckets;
use byos_catalog::ProjectGrant;
use byos_domain::{ConfigurationStatus, ProjectAccess, RegionTable, Role};
use byos_secrets::MasterKey;
use byos_test_support::{TempDir, open_store, temp_dir, unreachable_aws, validation_outcome};
use uuid::Uuid;

use crate::{Caller, ConfigurationRequest, CredentialRequest, Parts, ProjectRequest, ServiceError, Services};

pub(crate) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

pub(crate) struct Fixture {
    pub(crate) services: Services,
    pub(crate) admin: Caller,
    _dir: TempDir,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let dir = temp_dir();
        let store = open_store(dir.path(), None).await;
        let key = MasterKey::generate();
        let aws = unreachable_aws().await;
        let buckets = Buckets::new(store.clone(), aws.clone(), key.clone());
        let lifecycle = byos_lifecycle::Lifecycle::new(store.clone(), aws.clone(), buckets.clone(), Default::default());
        let sync = byos_sync::SyncEngine::new(store.clone(), aws, buckets.clone(), Default::default());
        let data = Default::default();
        let regions = RegionTable::builtin();
        let jobs =
            crate::JobEngine::new(store.clone(), buckets.clone(), sync.clone(), Default::default(), regions.clone());
        let parts = Parts { store, master_key: key, regions, buckets, lifecycle, sync, jobs, data };
        let services = Services::new(parts);
        Fixture { services, admin: Caller::new(Uuid::new_v4(), "test", Role::Admin, Vec::new()), _dir: dir }
    }

    /// A configuration on `prefix` of `customer-bucket` in eu-central-1, `initializing`.
    pub(crate) async fn configuration(&self, name: &str, prefix: &str) -> Uuid {
        let credential = CredentialRequest {
            name: Some(format!("{name} key")),
            kind: Some("aws-user".to_owned()),
            access_key_id: Some("AKIAIOSFODNN7EXAMPLE".to_owned()),
            secret_access_key: Some(SECRET.to_owned()),
            ..CredentialRequest::default()
        };
        let credential = self.services.credentials().create(&self.admin, credential).await;
        let credential = credential.unwrap().credential.id;
        let request = ConfigurationRequest {
            name: Some(name.to_owned()),
            region: Some("eu-central-1".to_owned()),
            bucket: Some("customer-bucket".to_owned()),
            key_prefix: Some(prefix.to_owned()),
            credential_id: Some(credential.to_string()),
            ..ConfigurationRequest::default()
        };
        let configuration = self.services.configurations().create(&self.admin, request).await;
        configuration.unwrap().id
    }

    /// Records a validation that found the configuration ready, as the lifecycle would.
    pub(crate) async fn set_ready(&self, id: Uuid) {
        let outcome = validation_outcome(ConfigurationStatus::Ready);
        self.services.store().configurations.record_validation(id, &outcome).await.unwrap();
    }

    /// A project on a ready configuration of its own.
    pub(crate) async fn project(&self, name: &str) -> Uuid {
        let configuration = self.configuration(&format!("{name} storage"), &format!("{name}/")).await;
        self.set_ready(configuration).await;
        let request = ProjectRequest {
            name: Some(name.to_owned()),
            region: Some("eu-central-1".to_owned()),
            storage_configuration_id: Some(configuration.to_string()),
            folder: Some("data".to_owned()),
        };
        let created = self.services.projects().create(&self.admin, request).await;
        created.unwrap().project.id
    }
}

/// A member whose token names `projects`, with read-write access.
pub(crate) fn member(projects: &[Uuid]) -> Caller {
    let grants = projects.iter().map(|&id| ProjectGrant { id, access: ProjectAccess::ReadWrite }).collect();
    Caller::new(Uuid::new_v4(), "test", Role::Member, grants)
}

/// The catalogue code of a failure.
#[track_caller]
pub(crate) fn code<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> &'static str {
    match result {
        Err(ServiceError::Problem(p)) => p.entry().code,
        other => panic!("not a problem: {other:?}"),
    }
}

/// The catalogue code and message of a failure.
#[track_caller]
pub(crate) fn message<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> String {
    match result {
        Err(ServiceError::Problem(p)) => format!("{}: {}", p.entry().code, p.message()),
        other => panic!("not a problem: {other:?}"),
    }
}
