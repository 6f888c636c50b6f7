//! Setting buckets up: creating buckets, keys, users and policies, as a bucket owner's tools
//! (and the tests that play the bucket owner) need. Every operation is idempotent where AWS
//! allows it.

use aws_config::SdkConfig;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CorsConfiguration, CorsRule, CreateBucketConfiguration,
    VersioningConfiguration,
};
use byos_domain::VersioningState;

use crate::boxed;
use crate::error::{AwsError, AwsErrorKind, classify};
use crate::retries;

/// S3, KMS, IAM and STS with the caller's own identity in one region.
#[derive(Debug, Clone)]
pub struct Setup {
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) kms: aws_sdk_kms::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    region: String,
}

/// A new access key; the secret is shown by AWS this once.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Setup {
    /// Writes an object straight into `storage_class` (`GLACIER`, `DEEP_ARCHIVE`), as a
    /// lifecycle transition would leave it: for tests of archived data.
    #[boxed]
    pub async fn put_object_in_class(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        storage_class: &str,
    ) -> Result<(), AwsError> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .storage_class(aws_sdk_s3::types::StorageClass::from(storage_class))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    pub(crate) fn new(config: &SdkConfig, path_style: bool) -> Setup {
        Setup {
            s3: retries::s3(config, path_style),
            kms: retries::kms(config),
            iam: retries::iam(config),
            sts: retries::sts(config),
            region: config.region().map(ToString::to_string).unwrap_or_default(),
        }
    }

    /// The caller's AWS account.
    #[boxed]
    pub async fn account(&self) -> Result<String, AwsError> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| classify("GetCallerIdentity", e))?;
        Ok(out.account().unwrap_or_default().to_owned())
    }

    /// Creates the bucket in this region; an existing bucket of the caller's is fine.
    #[boxed]
    pub async fn create_bucket(&self, bucket: &str) -> Result<bool, AwsError> {
        let mut request = self.s3.create_bucket().bucket(bucket);
        // us-east-1 is the default and must not be named.
        if self.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let error = classify("CreateBucket", e);
                if error.code.as_deref() == Some("BucketAlreadyOwnedByYou") { Ok(false) } else { Err(error) }
            }
        }
    }

    #[boxed]
    pub async fn set_versioning(&self, bucket: &str, state: VersioningState) -> Result<(), AwsError> {
        let status = match state {
            VersioningState::Enabled => BucketVersioningStatus::Enabled,
            VersioningState::Suspended => BucketVersioningStatus::Suspended,
            VersioningState::Unversioned => {
                return Err(AwsError::new(
                    AwsErrorKind::InvalidRequest,
                    "PutBucketVersioning",
                    "a versioned bucket can be suspended but never unversioned again",
                ));
            }
        };
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(|e| classify("PutBucketVersioning", e))?;
        Ok(())
    }

    /// Sets the bucket's CORS rules to ICA's one rule for `origins`.
    #[boxed]
    pub async fn put_cors(&self, bucket: &str, origins: &[String]) -> Result<(), AwsError> {
        let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
        self.put_cors_rules(bucket, &[byos_domain::cors::CorsRule::console(&origins)]).await
    }

    /// Replaces the bucket's CORS rules.
    #[boxed]
    pub async fn put_cors_rules(&self, bucket: &str, rules: &[byos_domain::cors::CorsRule]) -> Result<(), AwsError> {
        let invalid = |e: aws_sdk_s3::error::BuildError| {
            AwsError::new(AwsErrorKind::Other, "PutBucketCors", e.to_string()).caused_by(e)
        };
        let mut config = CorsConfiguration::builder();
        for rule in rules {
            config = config.cors_rules(
                CorsRule::builder()
                    .set_allowed_headers(Some(rule.allowed_headers.clone()))
                    .set_allowed_methods(Some(rule.allowed_methods.clone()))
                    .set_allowed_origins(Some(rule.allowed_origins.clone()))
                    .set_expose_headers(Some(rule.expose_headers.clone()))
                    .build()
                    .map_err(invalid)?,
            );
        }
        self.s3
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(config.build().map_err(invalid)?)
            .send()
            .await
            .map_err(|e| classify("PutBucketCors", e))?;
        Ok(())
    }

    #[boxed]
    pub async fn delete_cors(&self, bucket: &str) -> Result<(), AwsError> {
        self.s3.delete_bucket_cors().bucket(bucket).send().await.map_err(|e| classify("DeleteBucketCors", e))?;
        Ok(())
    }

    /// Creates a customer managed KMS key in this region; returns its ARN.
    #[boxed]
    pub async fn create_kms_key(&self, description: &str) -> Result<String, AwsError> {
        let out = self.kms.create_key().description(description).send().await.map_err(|e| classify("CreateKey", e))?;
        out.key_metadata()
            .and_then(|m| m.arn())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::new(AwsErrorKind::Other, "CreateKey", "the answer has no key ARN"))
    }

    /// Creates a managed policy, or returns the ARN of the caller's policy of that name.
    #[boxed]
    pub async fn ensure_policy(&self, name: &str, document: &str) -> Result<String, AwsError> {
        match self.iam.create_policy().policy_name(name).policy_document(document).send().await {
            Ok(out) => out
                .policy()
                .and_then(|p| p.arn())
                .map(str::to_owned)
                .ok_or_else(|| AwsError::new(AwsErrorKind::Other, "CreatePolicy", "the answer has no ARN")),
            Err(e) => {
                let error = classify("CreatePolicy", e);
                if error.code.as_deref() != Some("EntityAlreadyExists") {
                    return Err(error);
                }
                Ok(format!("arn:aws:iam::{}:policy/{name}", self.account().await?))
            }
        }
    }

    /// Creates an IAM user if it does not exist; returns whether it was created.
    #[boxed]
    pub async fn ensure_user(&self, name: &str) -> Result<bool, AwsError> {
        match self.iam.create_user().user_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let error = classify("CreateUser", e);
                if error.code.as_deref() == Some("EntityAlreadyExists") { Ok(false) } else { Err(error) }
            }
        }
    }

    #[boxed]
    pub async fn attach_user_policy(&self, user: &str, policy_arn: &str) -> Result<(), AwsError> {
        self.iam
            .attach_user_policy()
            .user_name(user)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|e| classify("AttachUserPolicy", e))?;
        Ok(())
    }

    /// Sets an inline policy on a user.
    #[boxed]
    pub async fn put_user_policy(&self, user: &str, name: &str, document: &str) -> Result<(), AwsError> {
        self.iam
            .put_user_policy()
            .user_name(user)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| classify("PutUserPolicy", e))?;
        Ok(())
    }

    /// Creates a role with a trust policy if it does not exist; returns its ARN.
    #[boxed]
    pub async fn ensure_role(&self, name: &str, trust_policy: &str) -> Result<String, AwsError> {
        match self.iam.create_role().role_name(name).assume_role_policy_document(trust_policy).send().await {
            Ok(out) => Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default()),
            Err(e) => {
                let error = classify("CreateRole", e);
                if error.code.as_deref() != Some("EntityAlreadyExists") {
                    return Err(error);
                }
                Ok(format!("arn:aws:iam::{}:role/{name}", self.account().await?))
            }
        }
    }

    /// Sets an inline policy on a role.
    #[boxed]
    pub async fn put_role_policy(&self, role: &str, name: &str, document: &str) -> Result<(), AwsError> {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| classify("PutRolePolicy", e))?;
        Ok(())
    }

    #[boxed]
    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, AwsError> {
        let out =
            self.iam.create_access_key().user_name(user).send().await.map_err(|e| classify("CreateAccessKey", e))?;
        let key = out
            .access_key()
            .ok_or_else(|| AwsError::new(AwsErrorKind::Other, "CreateAccessKey", "the answer has no key"))?;
        Ok(NewAccessKey {
            access_key_id: key.access_key_id().to_owned(),
            secret_access_key: key.secret_access_key().to_owned(),
        })
    }
}
