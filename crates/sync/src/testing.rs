//! Test fixtures shared by the engine's unit tests.

use std::time::Duration;

use byos_aws::{Aws, AwsSettings};
use byos_catalog::{
    Configuration, ConfigurationSpec, Credential, CredentialIdentity, KeyUpdate, Project, Store, StoreOptions,
};
use byos_domain::events::Sequencer;
use byos_domain::objects::{Change, NULL_VERSION};
use byos_domain::{AccessKeyId, BucketName, ProjectFolder, ResourceName};
use byos_lifecycle::Lifecycle;
use byos_secrets::MasterKey;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SyncEngine;

/// The bucket of [`store_with_project`]'s project, whose folder is `p/`.
pub(crate) const BUCKET: &str = "bucket";

/// A store with one project: SQLite in `dir`, or the PostgreSQL database at `url`.
pub(crate) async fn store_with_project(dir: &std::path::Path, url: Option<&str>) -> (Store, Uuid) {
    let options =
        StoreOptions { url: url.map(str::to_owned), max_connections: 4, connect_timeout: Duration::from_secs(10) };
    let store = Store::open(&options, dir).await.unwrap_or_else(|e| panic!("{e:?}"));
    let now = OffsetDateTime::now_utc();
    let name = |n: &str| ResourceName::parse(n).unwrap_or_else(|e| panic!("{e}"));
    let credential = Credential {
        id: Uuid::new_v4(),
        name: name("credential"),
        identity: CredentialIdentity::AwsUser {
            access_key_id: AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap_or_else(|e| panic!("{e}")),
        },
        sealed_secret: vec![0; 40],
        created_at: now,
        updated_at: now,
    };
    store.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
    let spec = ConfigurationSpec {
        name: name("storage"),
        region: "eu-central-1".to_owned(),
        bucket: BucketName::parse(BUCKET).unwrap_or_else(|e| panic!("{e}")),
        key_prefix: None,
        credential_id: credential.id,
        server_side_encryption: None,
        default_for_region: false,
    };
    let configuration = Configuration::new(Uuid::new_v4(), spec, now);
    store.configurations.insert_configuration(&configuration).await.unwrap_or_else(|e| panic!("{e}"));
    let folder = ProjectFolder::parse("p").unwrap_or_else(|e| panic!("{e}"));
    let project = Project {
        id: Uuid::new_v4(),
        name: name("project"),
        region: "eu-central-1".to_owned(),
        configuration_id: configuration.id,
        key_prefix: folder.key_prefix(None),
        folder,
        bucket: configuration.spec.bucket.clone(),
        created_at: now,
        updated_at: now,
    };
    store.projects.insert_project(&project).await.unwrap_or_else(|e| panic!("{e}"));
    (store, project.id)
}

pub(crate) fn written(key: &str, n: u32) -> KeyUpdate {
    let sequencer = Sequencer::parse(&format!("0055AED6DCD9{n:08X}")).unwrap_or_else(|e| panic!("{e}"));
    let change = Change::Created {
        version_id: NULL_VERSION.to_owned(),
        sequencer,
        size: 1,
        etag: format!("etag-{n}"),
        at_ms: 1_000,
    };
    KeyUpdate::Changes { key: key.to_owned(), changes: vec![change] }
}

/// An engine on `store` whose AWS is a closed local port: nothing in these tests may reach it.
pub(crate) async fn engine(store: &Store) -> SyncEngine {
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{}", byos_test_support::free_port())),
        static_credentials: Some(("AKIAIOSFODNN7EXAMPLE".to_owned(), "secret".to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let lifecycle = Lifecycle::new(store.clone(), aws.clone(), MasterKey::generate(), Default::default());
    let engine = SyncEngine::new(store.clone(), aws, lifecycle, Default::default());
    engine.refresh_routes().await.unwrap_or_else(|e| panic!("{e}"));
    engine
}
