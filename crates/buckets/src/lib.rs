//! Opening a storage configuration's bucket: the configuration as stored now, and access to its
//! bucket with its credential, unsealed with the master key. One [`Buckets`] is shared by
//! everything that touches customers' buckets (the lifecycle's validation, the sync engine's
//! lookups and listings, data access and jobs), so each configuration's clients are built once.
//!
//! Opened access is kept per configuration while its credential is unchanged: an `aws-role`
//! session lives in the access's clients (the SDK refreshes it before it expires), so keeping
//! the access keeps the session, and batches do not assume the role again each. Every open
//! reads the configuration and its credential from the store, so a rotation or a delete on any
//! replica is seen at the next open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use byos_aws::{Aws, BucketAccess, CredentialSecret};
use byos_catalog::{Configuration, Credential, CredentialIdentity, Store, StoreError};
use byos_domain::{ExternalId, SecretAccessKey};
use byos_secrets::{MasterKey, SecretsError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a bucket (or a credential) could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("no such storage configuration")]
    NotFound,
    /// The credential was sealed with another master key, or its row was damaged.
    #[error("the stored secret of credential {credential} cannot be opened")]
    Unsealable {
        credential: Uuid,
        #[source]
        source: SecretsError,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> OpenError {
        match e {
            StoreError::NotFound => OpenError::NotFound,
            e => OpenError::Store(e),
        }
    }
}

/// A configuration and access to its bucket.
#[derive(Debug, Clone)]
pub struct OpenBucket {
    /// As stored when the bucket was opened.
    pub configuration: Configuration,
    pub access: BucketAccess,
}

/// The bucket opener. Cloning is cheap; clones share the opened access.
#[derive(Debug, Clone)]
pub struct Buckets {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    aws: Aws,
    master_key: MasterKey,
    opened: Mutex<HashMap<Uuid, Opened>>,
}

/// A configuration's access, opened with one version of its credential.
#[derive(Debug, Clone)]
struct Opened {
    credential: Uuid,
    credential_updated_at: OffsetDateTime,
    access: BucketAccess,
}

impl Buckets {
    /// The AWS adapter the buckets are opened with (the platform's own identity, for what it
    /// does itself, such as assuming a customer's role for a scoped session).
    pub fn aws(&self) -> &Aws {
        &self.inner.aws
    }

    pub fn new(store: Store, aws: Aws, master_key: MasterKey) -> Buckets {
        Buckets { inner: Arc::new(Inner { store, aws, master_key, opened: Mutex::new(HashMap::new()) }) }
    }

    /// The configuration and access to its bucket, with the access opened before when its
    /// credential has not changed since.
    pub async fn open(&self, configuration: Uuid) -> Result<OpenBucket, OpenError> {
        let store = &self.inner.store;
        let configuration = match store.configurations.get_configuration(configuration).await {
            Ok(found) => found,
            Err(e) => {
                if matches!(e, StoreError::NotFound) {
                    self.forget(configuration);
                }
                return Err(e.into());
            }
        };
        let credential = store.credentials.get_credential(configuration.spec.credential_id).await.map_err(|e| {
            match e {
                // The foreign key makes this impossible short of a damaged database.
                StoreError::NotFound => OpenError::Store(StoreError::Corrupt {
                    table: "storage_configurations",
                    reason: format!("configuration {} names a credential that does not exist", configuration.id),
                }),
                e => OpenError::Store(e),
            }
        })?;
        if let Some(opened) = self.opened().get(&configuration.id)
            && opened.credential == credential.id
            && opened.credential_updated_at == credential.updated_at
        {
            return Ok(OpenBucket { configuration, access: opened.access.clone() });
        }
        let secret = self.secret(&credential, configuration.id)?;
        let access = self.inner.aws.bucket_access(&secret, &configuration.spec.region).await;
        let opened =
            Opened { credential: credential.id, credential_updated_at: credential.updated_at, access: access.clone() };
        self.opened().insert(configuration.id, opened);
        Ok(OpenBucket { configuration, access })
    }

    /// The credential in clear, for a configuration's work on its bucket (the role session of
    /// an `aws-role` credential is named after the configuration, so that CloudTrail shows it).
    pub fn secret(&self, credential: &Credential, configuration: Uuid) -> Result<CredentialSecret, OpenError> {
        let unsealable = |source| OpenError::Unsealable { credential: credential.id, source };
        let secret =
            self.inner.master_key.open(&credential.sealed_secret, credential.id.as_bytes()).map_err(unsealable)?;
        let secret = String::from_utf8(secret).unwrap_or_default();
        let corrupt = |what: &str| {
            OpenError::Store(StoreError::Corrupt {
                table: "storage_credentials",
                reason: format!("the sealed {what} of credential {} does not parse", credential.id),
            })
        };
        Ok(match &credential.identity {
            CredentialIdentity::AwsUser { access_key_id } => CredentialSecret::AwsUser {
                access_key_id: access_key_id.to_string(),
                secret_access_key: SecretAccessKey::parse(&secret).map_err(|_| corrupt("secret access key"))?,
            },
            CredentialIdentity::AwsRole { role_arn } => CredentialSecret::AwsRole {
                role_arn: role_arn.clone(),
                external_id: ExternalId::parse(&secret).map_err(|_| corrupt("external id"))?,
                session_name: format!("byos-{}", &configuration.simple().to_string()[..12]),
            },
        })
    }

    /// Drops the access opened for a configuration (it was deleted).
    pub fn forget(&self, configuration: Uuid) {
        self.opened().remove(&configuration);
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Opened>> {
        self.inner.opened.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use byos_test_support::EXAMPLE_SECRET_ACCESS_KEY as SECRET;

    use super::*;

    struct World {
        buckets: Buckets,
        store: Store,
        key: MasterKey,
        credential: Credential,
        configuration: Uuid,
        _dir: byos_test_support::TempDir,
    }

    /// A store with an access key credential and a configuration that uses it; AWS is a closed
    /// local port (opening a bucket with an access key builds clients, and calls nothing).
    async fn world() -> World {
        let fixture = byos_test_support::StoreWithProject::create(None, "bucket", None, "p").await;
        let aws = byos_test_support::unreachable_aws().await;
        let buckets = Buckets::new(fixture.store.clone(), aws, fixture.key.clone());
        World {
            buckets,
            store: fixture.store,
            key: fixture.key,
            credential: fixture.credential,
            configuration: fixture.configuration.id,
            _dir: fixture.dir,
        }
    }

    impl World {
        /// The version of the credential the configuration's access was opened with.
        fn opened_with(&self) -> Option<OffsetDateTime> {
            self.buckets.opened().get(&self.configuration).map(|o| o.credential_updated_at)
        }
    }

    #[tokio::test]
    async fn access_is_kept_until_the_credential_changes_or_the_configuration_goes() {
        let w = world().await;
        let opened = w.buckets.open(w.configuration).await.unwrap();
        assert_eq!(opened.configuration.id, w.configuration);
        let stored = w.store.credentials.get_credential(w.credential.id).await.unwrap();
        assert_eq!(w.opened_with(), Some(stored.updated_at));

        // Rotated (on this replica or another): the next open uses the new version.
        let mut rotated = w.credential.clone();
        rotated.updated_at = w.credential.updated_at + time::Duration::seconds(1);
        rotated.sealed_secret = w.key.seal(SECRET.as_bytes(), rotated.id.as_bytes());
        w.store.credentials.rotate_credential(&rotated).await.unwrap();
        w.buckets.open(w.configuration).await.unwrap();
        let rotated_at = w.store.credentials.get_credential(rotated.id).await.unwrap().updated_at;
        assert_eq!(w.opened_with(), Some(rotated_at));

        // Deleted: not found, and its access is dropped.
        for project in w.store.projects.list_projects().await.unwrap() {
            w.store.projects.delete_project(project.id).await.unwrap();
        }
        w.store.configurations.delete_configuration(w.configuration).await.unwrap();
        assert!(matches!(w.buckets.open(w.configuration).await, Err(OpenError::NotFound)));
        assert_eq!(w.opened_with(), None);
        w.store.close().await;
    }

    #[tokio::test]
    async fn a_secret_sealed_with_another_key_cannot_be_opened() {
        let w = world().await;
        let mut foreign = w.credential.clone();
        foreign.sealed_secret = MasterKey::generate().seal(SECRET.as_bytes(), foreign.id.as_bytes());
        let refused = w.buckets.secret(&foreign, w.configuration).err();
        assert!(
            matches!(refused, Some(OpenError::Unsealable { credential, .. }) if credential == foreign.id),
            "{refused:?}"
        );
        let opened = w.buckets.secret(&w.credential, w.configuration).ok();
        assert!(matches!(opened, Some(CredentialSecret::AwsUser { .. })), "{opened:?}");
        w.store.close().await;
    }
}
