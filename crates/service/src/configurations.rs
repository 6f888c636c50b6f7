//! Storage configurations: a bucket (and key prefix) in a region, reached with a storage
//! credential.
//!
//! Creating one checks every parameter and answers with the catalogue's exact messages, in the
//! order that gives the most specific one first; the configuration is stored `initializing`,
//! and the lifecycle worker is woken to validate it. Validation on request and deletion run in
//! the lifecycle, under the configuration's lease.

use byos_catalog::{Configuration, ConfigurationSpec, StoreError};
use byos_domain::{
    AwsRegion, BucketName, ErrorCode, KeyPrefix, KmsKeyArn, Problem, RegionTable, ResourceName, ServerSideEncryption,
    SseAlgorithm,
};
use byos_lifecycle::LifecycleError;
use uuid::Uuid;

use crate::caller::SYSTEM_SETTINGS;
use crate::error::{conflict, internal, store_error};
use crate::{Caller, ServiceError, Services, now};

const RESOURCE: &str = "Storage configuration";

/// A new storage configuration, as a client sends it.
#[derive(Debug, Default)]
pub struct ConfigurationRequest {
    /// 3 to 63 characters.
    pub name: Option<String>,
    /// The AWS region id.
    pub region: Option<String>,
    pub bucket: Option<String>,
    /// Ends with `/`; none for the whole bucket.
    pub key_prefix: Option<String>,
    pub credential_id: Option<String>,
    pub server_side_encryption: Option<EncryptionRequest>,
    pub default_for_region: Option<bool>,
}

/// Server-side encryption: `AES256`, or `aws:kms` with the KMS key's ARN as `key_name`.
#[derive(Debug, Default)]
pub struct EncryptionRequest {
    pub algorithm: Option<String>,
    pub key_name: Option<String>,
}

/// The operations on storage configurations: System Settings, for admins.
#[derive(Debug, Clone, Copy)]
pub struct Configurations<'a> {
    services: &'a Services,
}

impl<'a> Configurations<'a> {
    pub(crate) fn new(services: &'a Services) -> Configurations<'a> {
        Configurations { services }
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<Configuration>, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().configurations.list_configurations().await.map_err(internal)
    }

    /// A configuration, with its status and validation report.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Configuration, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().configurations.get_configuration(id).await.map_err(|e| store_error(e, RESOURCE, id))
    }

    /// Stores a new configuration `initializing`; validation and provisioning follow in the
    /// background.
    pub async fn create(&self, caller: &Caller, request: ConfigurationRequest) -> Result<Configuration, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let spec = validate(self.services.regions(), request)?;
        let configuration = Configuration::new(Uuid::new_v4(), spec, now());
        match self.services.store().configurations.insert_configuration(&configuration).await {
            Ok(()) => {}
            // The store answers NotFound when the credential does not exist.
            Err(StoreError::NotFound) => {
                return Err(Problem::invalid_parameters(&format!(
                    "credentialId: no storage credential has the id {}",
                    configuration.spec.credential_id
                ))
                .into());
            }
            Err(e) => return Err(store_error(e, RESOURCE, configuration.id)),
        }
        tracing::info!(configuration = %configuration.id, bucket = %configuration.spec.bucket, "storage configuration created");
        self.services.lifecycle().wake();
        Ok(configuration)
    }

    /// Validates a configuration now: every check, the bucket's notifications, the report
    /// recorded. A second request while one runs is refused with `validation-running`.
    pub async fn validate(&self, caller: &Caller, id: Uuid) -> Result<Configuration, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.lifecycle().validate_now(id).await.map_err(|e| lifecycle_error(e, id))
    }

    /// Deletes a configuration that no project uses, and the platform's notification rules on
    /// its bucket.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.lifecycle().delete(id).await.map_err(|e| lifecycle_error(e, id))?;
        tracing::info!(configuration = %id, "storage configuration deleted");
        Ok(())
    }
}

fn lifecycle_error(e: LifecycleError, id: Uuid) -> ServiceError {
    match e {
        LifecycleError::NotFound => Problem::not_found(RESOURCE, &id.to_string()).into(),
        LifecycleError::Busy => Problem::new(ErrorCode::ValidationRunning, &[("id", &id.to_string())]).into(),
        LifecycleError::Store(StoreError::Conflict(c)) => conflict(c),
        e => internal(e),
    }
}

/// Checks a request's parameters in the order that gives the catalogue's most specific message
/// first: credential, bucket, region, then everything else.
fn validate(regions: &RegionTable, request: ConfigurationRequest) -> Result<ConfigurationSpec, Problem> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !present(&request.credential_id) {
        return Err(ErrorCode::MissingCredentials.into());
    }
    if !present(&request.bucket) {
        return Err(ErrorCode::MissingBucketName.into());
    }
    let bucket = BucketName::parse(request.bucket.as_deref().unwrap_or_default())
        .map_err(|_| Problem::from(ErrorCode::InvalidBucketName))?;
    let invalid = |m: String| Problem::invalid_parameters(&m);
    let region = match request.region.as_deref() {
        Some(r) if !r.trim().is_empty() => r,
        _ => {
            return Err(invalid("region: required; one of the AWS region ids of GET /api/v1/regions".to_owned()));
        }
    };
    // Every region of the table is an AWS region id.
    let Some(aws_region) = regions.get(region).and_then(|_| AwsRegion::parse(region).ok()) else {
        return Err(Problem::region_not_supported(&regions.aws_region_list()));
    };
    let name = request.name.as_deref().ok_or_else(|| invalid("name: required, 3 to 63 characters".to_owned()))?;
    let name = ResourceName::parse(name).map_err(|e| invalid(format!("name: {e}")))?;
    let key_prefix = request
        .key_prefix
        .as_deref()
        .map(KeyPrefix::parse)
        .transpose()
        .map_err(|e| invalid(format!("keyPrefix: {e}")))?;
    let credential_text = request.credential_id.as_deref().unwrap_or_default();
    let credential_id = Uuid::parse_str(credential_text.trim())
        .map_err(|_| invalid(format!("credentialId: {credential_text:?} is not a storage credential id")))?;
    let server_side_encryption = match request.server_side_encryption {
        None => None,
        Some(sse) => Some(encryption(region, sse).map_err(invalid)?),
    };
    Ok(ConfigurationSpec {
        name,
        region: aws_region,
        bucket,
        key_prefix,
        credential_id,
        server_side_encryption,
        default_for_region: request.default_for_region.unwrap_or(false),
    })
}

fn encryption(region: &str, sse: EncryptionRequest) -> Result<ServerSideEncryption, String> {
    let algorithm = sse.algorithm.as_deref().unwrap_or_default();
    match (SseAlgorithm::parse(algorithm), sse.key_name.as_deref()) {
        (None, _) => Err(format!("serverSideEncryption.algorithm: {algorithm:?} is not AES256 or aws:kms")),
        (Some(SseAlgorithm::Aes256), None) => Ok(ServerSideEncryption::Aes256),
        (Some(SseAlgorithm::Aes256), Some(_)) => {
            Err("serverSideEncryption.keyName: only aws:kms takes a key; leave it out for AES256".to_owned())
        }
        (Some(SseAlgorithm::AwsKms), None) => {
            Err("serverSideEncryption.keyName: required for aws:kms, the KMS key's ARN".to_owned())
        }
        (Some(SseAlgorithm::AwsKms), Some(key)) => {
            let key = KmsKeyArn::parse(key).map_err(|e| format!("serverSideEncryption.keyName: {e}"))?;
            if key.region() != region {
                return Err(format!(
                    "serverSideEncryption.keyName: the KMS key is in {} but the configuration is in {region}; \
                     the key must be in the bucket's region",
                    key.region()
                ));
            }
            Ok(ServerSideEncryption::Kms(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn request() -> ConfigurationRequest {
        ConfigurationRequest {
            name: Some("genomics".to_owned()),
            region: Some("eu-central-1".to_owned()),
            bucket: Some("customer-bucket".to_owned()),
            key_prefix: Some("genomics/".to_owned()),
            credential_id: Some(Uuid::nil().to_string()),
            ..ConfigurationRequest::default()
        }
    }

    fn check(change: impl FnOnce(&mut ConfigurationRequest), expect: Expect) {
        let mut request = request();
        change(&mut request);
        let answer = match validate(&RegionTable::builtin(), request) {
            Ok(spec) => format!("ok: {} in {}", spec.name, spec.region),
            Err(p) => format!("{}: {}", p.entry().code, p.message()),
        };
        expect.assert_eq(&answer);
    }

    #[test]
    fn the_most_specific_message_comes_first() {
        check(|_| {}, expect!["ok: genomics in eu-central-1"]);
        check(
            |r| {
                r.credential_id = None;
                r.bucket = None;
            },
            expect!["missing-credentials: Missing credentials for storage container"],
        );
        check(
            |r| r.bucket = Some(" ".to_owned()),
            expect!["missing-bucket-name: Missing bucket name for storage container"],
        );
        check(
            |r| r.bucket = Some("Not_A_Bucket".to_owned()),
            expect!["invalid-bucket-name: The storage container name has invalid characters"],
        );
        check(
            |r| r.region = Some("mars-east-1".to_owned()),
            expect![
                "region-not-supported: Storage container must be located in one of the following regions: ap-southeast-2, ca-central-1, eu-central-1, ap-south-1, ap-southeast-3, il-central-1, ap-northeast-1, ap-southeast-1, ap-northeast-2, eu-west-2, me-central-1, us-east-1"
            ],
        );
        check(
            |r| r.key_prefix = Some("no-slash".to_owned()),
            expect![
                "invalid-volume-parameters: Invalid parameters for volume configuration: keyPrefix: a key prefix ends with '/'"
            ],
        );
        check(
            |r| {
                r.server_side_encryption = Some(EncryptionRequest {
                    algorithm: Some("aws:kms".to_owned()),
                    key_name: Some(
                        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
                    ),
                });
            },
            expect![
                "invalid-volume-parameters: Invalid parameters for volume configuration: serverSideEncryption.keyName: the KMS key is in us-east-1 but the configuration is in eu-central-1; the key must be in the bucket's region"
            ],
        );
    }
}
