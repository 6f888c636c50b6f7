//! The records most tests start from, written straight to a store: a storage credential sealed
//! with the master key as the API seals it, a storage configuration on a bucket, a project on
//! a folder of it. [`Records`] writes each on its own; [`StoreWithProject`] is the common
//! case, one of each on a new store.

use std::path::Path;
use std::time::Duration;

use byos_aws::{Aws, AwsSettings};
use byos_catalog::{
    Configuration, ConfigurationSpec, Credential, CredentialIdentity, Project, Store, StoreOptions, ValidationOutcome,
};
use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, ConfigurationStatus, KeyPrefix, ProjectFolder, ResourceName, RoleArn,
    ServerSideEncryption, ValidationReport,
};
use byos_secrets::MasterKey;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{TempDir, temp_dir};

/// The example access key of AWS's documentation.
pub const EXAMPLE_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const EXAMPLE_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The region of the records unless a test says otherwise.
pub const REGION: &str = "eu-central-1";

/// A region id the test knows to be valid, parsed.
pub fn region(id: &str) -> AwsRegion {
    parsed("region", AwsRegion::parse(id))
}

/// An AWS whose endpoint is a closed local port, for tests that must not reach AWS: clients
/// build (opening a bucket with an access key calls nothing), and any call fails.
pub async fn unreachable_aws() -> Aws {
    Aws::new(&AwsSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{}", crate::free_port())),
        static_credentials: Some((EXAMPLE_ACCESS_KEY_ID.to_owned(), EXAMPLE_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await
}

/// Opens a store: SQLite in `dir`, or the PostgreSQL database at `postgres_url`.
pub async fn open_store(dir: &Path, postgres_url: Option<&str>) -> Store {
    let options = StoreOptions {
        url: postgres_url.map(str::to_owned),
        max_connections: 8,
        connect_timeout: Duration::from_secs(10),
    };
    Store::open(&options, dir).await.unwrap_or_else(|e| panic!("opening the store: {e:?}"))
}

fn parsed<T, E: std::fmt::Display>(what: &str, value: Result<T, E>) -> T {
    value.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A validation that ended in `status` now, with no checks, as tests record it instead of the
/// lifecycle (`ConfigurationStore::record_validation`); the next one is due in an hour.
pub fn validation_outcome(status: ConfigurationStatus) -> ValidationOutcome {
    let now = OffsetDateTime::now_utc();
    ValidationOutcome {
        status,
        versioning: None,
        report: ValidationReport { checked_at: "2026-11-29T00:00:00Z".to_owned(), checks: Vec::new() },
        error: None,
        verified_at: now,
        next_check_at: now + time::Duration::hours(1),
        failures: 0,
        bucket_account: None,
    }
}

/// Writes records to a store, secrets sealed with its master key.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    pub store: &'a Store,
    pub key: &'a MasterKey,
}

impl Records<'_> {
    /// An access key credential.
    pub async fn access_key(&self, access_key_id: &str, secret_access_key: &str) -> Credential {
        let identity =
            CredentialIdentity::AwsUser { access_key_id: parsed("access key id", AccessKeyId::parse(access_key_id)) };
        self.credential(identity, secret_access_key).await
    }

    /// AWS's documentation's example access key: a valid key id and secret, which moto takes
    /// with every permission while IAM enforcement is off.
    pub async fn example_access_key(&self) -> Credential {
        self.access_key(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY).await
    }

    /// A role credential with its external id.
    pub async fn role(&self, role_arn: &str, external_id: &str) -> Credential {
        let identity = CredentialIdentity::AwsRole { role_arn: parsed("role ARN", RoleArn::parse(role_arn)) };
        self.credential(identity, external_id).await
    }

    async fn credential(&self, identity: CredentialIdentity, secret: &str) -> Credential {
        let id = Uuid::new_v4();
        let now = OffsetDateTime::now_utc();
        let credential = Credential {
            id,
            name: parsed("name", ResourceName::parse(&format!("credential {}", &id.simple().to_string()[..8]))),
            identity,
            sealed_secret: self.key.seal(secret.as_bytes(), id.as_bytes()),
            created_at: now,
            updated_at: now,
        };
        self.store.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("credential: {e}"));
        credential
    }

    /// A configuration of `bucket` (under `prefix`) in [`REGION`], reached with `credential`.
    pub async fn configuration(&self, credential: Uuid, bucket: &str, prefix: Option<&str>) -> Configuration {
        self.encrypted_configuration(credential, bucket, prefix, None).await
    }

    /// [`Records::configuration`] with the server-side encryption the platform is to use.
    pub async fn encrypted_configuration(
        &self,
        credential: Uuid,
        bucket: &str,
        prefix: Option<&str>,
        server_side_encryption: Option<ServerSideEncryption>,
    ) -> Configuration {
        let id = Uuid::new_v4();
        let spec = ConfigurationSpec {
            name: parsed("name", ResourceName::parse(&format!("config {}", &id.simple().to_string()[..8]))),
            region: parsed("region", AwsRegion::parse(REGION)),
            bucket: parsed("bucket", BucketName::parse(bucket)),
            key_prefix: prefix.map(|p| parsed("prefix", KeyPrefix::parse(p))),
            credential_id: credential,
            server_side_encryption,
            default_for_region: false,
        };
        self.insert_configuration(Configuration::new(id, spec, OffsetDateTime::now_utc())).await
    }

    /// Writes `configuration` as it is.
    pub async fn insert_configuration(&self, configuration: Configuration) -> Configuration {
        let store = &self.store.configurations;
        store.insert_configuration(&configuration).await.unwrap_or_else(|e| panic!("configuration: {e}"));
        configuration
    }

    /// A project on `folder` of the configuration.
    pub async fn project(&self, configuration: &Configuration, folder: &str) -> Project {
        let id = Uuid::new_v4();
        let now = OffsetDateTime::now_utc();
        let folder = parsed("folder", ProjectFolder::parse(folder));
        let project = Project {
            id,
            name: parsed("name", ResourceName::parse(&format!("project {}", &id.simple().to_string()[..8]))),
            region: configuration.spec.region.clone(),
            configuration_id: configuration.id,
            key_prefix: folder.key_prefix(configuration.spec.key_prefix.as_ref()),
            folder,
            bucket: configuration.spec.bucket.clone(),
            created_at: now,
            updated_at: now,
        };
        self.store.projects.insert_project(&project).await.unwrap_or_else(|e| panic!("project: {e}"));
        project
    }
}

/// A new store with the example access key as a credential, a configuration of a bucket, and a
/// project on a folder of it. SQLite lives in a directory of its own, kept as long as this.
#[derive(Debug)]
pub struct StoreWithProject {
    pub store: Store,
    pub key: MasterKey,
    pub credential: Credential,
    pub configuration: Configuration,
    pub project: Project,
    pub dir: TempDir,
}

impl StoreWithProject {
    /// The configuration is `bucket` under `prefix`, the project its folder `folder`; the store
    /// is SQLite, or the PostgreSQL database at `postgres_url`.
    pub async fn create(postgres_url: Option<&str>, bucket: &str, prefix: Option<&str>, folder: &str) -> Self {
        let dir = temp_dir();
        let store = open_store(dir.path(), postgres_url).await;
        let key = MasterKey::generate();
        let records = Records { store: &store, key: &key };
        let credential = records.example_access_key().await;
        let configuration = records.configuration(credential.id, bucket, prefix).await;
        let project = records.project(&configuration, folder).await;
        StoreWithProject { store, key, credential, configuration, project, dir }
    }

    pub fn records(&self) -> Records<'_> {
        Records { store: &self.store, key: &self.key }
    }
}
