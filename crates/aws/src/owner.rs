//! What a bucket owner's tools read and write beyond the platform's own needs: default
//! encryption, bucket and key policies, and the IAM user's policies (attached, inline and through
//! groups), so that `byos aws bootstrap` can compare before it writes and `byos aws doctor` can
//! evaluate them.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, ServerSideEncryption as S3Sse,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use crate::boxed;
use crate::error::{AwsError, AwsErrorKind, classify};
use crate::setup::Setup;

/// A bucket's default encryption, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultEncryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: String,
    /// The KMS key as configured: an ARN, a key id or an alias.
    pub kms_key: Option<String>,
    pub bucket_key: bool,
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    pub user_id: String,
}

/// One of the policies that apply to a user, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// Says where the policy is attached, such as `managed policy illumina-ica-admin-policy` or
    /// `inline policy p of group g`.
    pub source: String,
    /// The policy's JSON text, decoded.
    pub document: String,
}

/// The policies that decide what a user may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPolicies {
    pub identity: Vec<AppliedPolicy>,
    /// The permissions boundary, when the user has one: it caps what the identity policies
    /// grant.
    pub boundary: Option<AppliedPolicy>,
}

/// A managed policy's ARN and the document of its default version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub arn: String,
    pub default_version: String,
    pub document: String,
}

/// A KMS key as `DescribeKey` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    pub arn: String,
    pub enabled: bool,
}

/// IAM answers policy documents URL-encoded (RFC 3986); some local endpoints send them as is.
fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_owned();
    }
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn missing(operation: &'static str, what: &str) -> AwsError {
    AwsError::new(AwsErrorKind::Other, operation, format!("the answer has no {what}"))
}

/// `Ok(None)` for a missing thing, the error otherwise.
fn absent_if<T>(result: Result<T, AwsError>, codes: &[&str]) -> Result<Option<T>, AwsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind == AwsErrorKind::NotFound || e.code.as_deref().is_some_and(|c| codes.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A bucket policy's JSON text, if the bucket has one: for the owner's tools, and for a copy's
/// preflight with the configuration's credential.
pub(crate) async fn bucket_policy(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<String>, AwsError> {
    let result = s3.get_bucket_policy().bucket(bucket).send().await.map_err(|e| classify("GetBucketPolicy", e));
    Ok(absent_if(result, &["NoSuchBucketPolicy"])?.and_then(|out| out.policy().map(str::to_owned)))
}

/// A KMS key's policy text (a key has exactly one policy, named `default`).
pub(crate) async fn kms_key_policy(kms: &aws_sdk_kms::Client, key_arn: &str) -> Result<String, AwsError> {
    let out = kms
        .get_key_policy()
        .key_id(key_arn)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| classify("GetKeyPolicy", e))?;
    out.policy().map(str::to_owned).ok_or_else(|| missing("GetKeyPolicy", "policy"))
}

/// A bucket's Object Ownership setting (`BucketOwnerEnforced`, `BucketOwnerPreferred`,
/// `ObjectWriter`); `None` when it has none, which S3 reads as `ObjectWriter`.
pub(crate) async fn object_ownership(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<String>, AwsError> {
    let result = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| classify("GetBucketOwnershipControls", e));
    let Some(out) = absent_if(result, &["OwnershipControlsNotFoundError"])? else { return Ok(None) };
    let rule = out.ownership_controls().and_then(|c| c.rules().first());
    Ok(rule.map(|r| r.object_ownership().as_str().to_owned()))
}

impl Setup {
    /// The bucket's default encryption; `None` when it has none configured (S3 then still
    /// encrypts new objects with SSE-S3).
    #[boxed]
    pub async fn bucket_encryption(&self, bucket: &str) -> Result<Option<DefaultEncryption>, AwsError> {
        let result =
            self.s3.get_bucket_encryption().bucket(bucket).send().await.map_err(|e| classify("GetBucketEncryption", e));
        let Some(out) = absent_if(result, &["ServerSideEncryptionConfigurationNotFoundError"])? else {
            return Ok(None);
        };
        let rule = out.server_side_encryption_configuration().and_then(|c| c.rules().first());
        Ok(rule.and_then(|rule| {
            let default = rule.apply_server_side_encryption_by_default()?;
            Some(DefaultEncryption {
                algorithm: default.sse_algorithm().as_str().to_owned(),
                kms_key: default.kms_master_key_id().map(str::to_owned),
                bucket_key: rule.bucket_key_enabled().unwrap_or(false),
            })
        }))
    }

    /// Sets the bucket's default encryption: SSE-KMS with `kms_key` (and an S3 bucket key, which
    /// cuts KMS requests), or SSE-S3 without one.
    #[boxed]
    pub async fn put_bucket_encryption(&self, bucket: &str, kms_key: Option<&str>) -> Result<(), AwsError> {
        let default = match kms_key {
            Some(key) => ServerSideEncryptionByDefault::builder().sse_algorithm(S3Sse::AwsKms).kms_master_key_id(key),
            None => ServerSideEncryptionByDefault::builder().sse_algorithm(S3Sse::Aes256),
        }
        .build()
        .map_err(|e| AwsError::new(AwsErrorKind::Other, "PutBucketEncryption", e.to_string()).caused_by(e))?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .bucket_key_enabled(kms_key.is_some())
            .build();
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| AwsError::new(AwsErrorKind::Other, "PutBucketEncryption", e.to_string()).caused_by(e))?;
        self.s3
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map_err(|e| classify("PutBucketEncryption", e))?;
        Ok(())
    }

    #[boxed]
    pub async fn object_exists(&self, bucket: &str, key: &str) -> Result<bool, AwsError> {
        let result = self.s3.head_object().bucket(bucket).key(key).send().await.map_err(|e| classify("HeadObject", e));
        Ok(absent_if(result, &["NoSuchKey", "NotFound"])?.is_some())
    }

    /// Writes an empty object, such as a folder marker (`prefix/`).
    #[boxed]
    pub async fn put_empty_object(&self, bucket: &str, key: &str) -> Result<(), AwsError> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    /// The bucket policy's JSON text, if the bucket has one.
    #[boxed]
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        bucket_policy(&self.s3, bucket).await
    }

    /// The bucket's Object Ownership (`None`: not set, which S3 reads as `ObjectWriter`).
    #[boxed]
    pub async fn object_ownership(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        object_ownership(&self.s3, bucket).await
    }

    /// Sets the bucket's Object Ownership: `BucketOwnerEnforced` makes its owner own every
    /// object written into it, whoever writes it (ACLs off), as a copy role from another
    /// account needs.
    #[boxed]
    pub async fn put_object_ownership(&self, bucket: &str, ownership: &str) -> Result<(), AwsError> {
        let rule =
            OwnershipControlsRule::builder().object_ownership(ObjectOwnership::from(ownership)).build().map_err(
                |e| AwsError::new(AwsErrorKind::Other, "PutBucketOwnershipControls", e.to_string()).caused_by(e),
            )?;
        let controls = OwnershipControls::builder().rules(rule).build().map_err(|e| {
            AwsError::new(AwsErrorKind::Other, "PutBucketOwnershipControls", e.to_string()).caused_by(e)
        })?;
        self.s3
            .put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(controls)
            .send()
            .await
            .map_err(|e| classify("PutBucketOwnershipControls", e))?;
        Ok(())
    }

    #[boxed]
    pub async fn put_bucket_policy(&self, bucket: &str, document: &str) -> Result<(), AwsError> {
        self.s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(document)
            .send()
            .await
            .map_err(|e| classify("PutBucketPolicy", e))?;
        Ok(())
    }

    /// The IAM user, if it exists.
    #[boxed]
    pub async fn user(&self, name: &str) -> Result<Option<IamUser>, AwsError> {
        let result = self.iam.get_user().user_name(name).send().await.map_err(|e| classify("GetUser", e));
        Ok(absent_if(result, &["NoSuchEntity"])?.and_then(|out| {
            out.user().map(|u| IamUser {
                name: u.user_name().to_owned(),
                arn: u.arn().to_owned(),
                user_id: u.user_id().to_owned(),
            })
        }))
    }

    /// The ARNs of the managed policies attached to the user.
    #[boxed]
    pub async fn attached_user_policies(&self, user: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self.iam.list_attached_user_policies().user_name(user).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListAttachedUserPolicies", e))?;
            arns.extend(page.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)));
        }
        Ok(arns)
    }

    /// The managed policy and its default version's document, if the policy exists.
    #[boxed]
    pub async fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, AwsError> {
        let result = self.iam.get_policy().policy_arn(arn).send().await.map_err(|e| classify("GetPolicy", e));
        let Some(out) = absent_if(result, &["NoSuchEntity"])? else { return Ok(None) };
        let version = out
            .policy()
            .and_then(|p| p.default_version_id())
            .ok_or_else(|| missing("GetPolicy", "default version"))?
            .to_owned();
        let out = self
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(&version)
            .send()
            .await
            .map_err(|e| classify("GetPolicyVersion", e))?;
        let document =
            out.policy_version().and_then(|v| v.document()).ok_or_else(|| missing("GetPolicyVersion", "document"))?;
        Ok(Some(ManagedPolicy { arn: arn.to_owned(), default_version: version, document: decode_document(document) }))
    }

    /// Makes `document` the managed policy's default version. IAM keeps at most five versions,
    /// so the oldest version that is not the default goes first when there are five.
    #[boxed]
    pub async fn set_policy_document(&self, arn: &str, document: &str) -> Result<(), AwsError> {
        let out = self
            .iam
            .list_policy_versions()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| classify("ListPolicyVersions", e))?;
        let mut old: Vec<_> = out.versions().iter().filter(|v| !v.is_default_version()).collect();
        if out.versions().len() >= 5 {
            old.sort_by_key(|v| v.create_date().map(|d| d.secs()));
            if let Some(oldest) = old.first().and_then(|v| v.version_id()) {
                self.iam
                    .delete_policy_version()
                    .policy_arn(arn)
                    .version_id(oldest)
                    .send()
                    .await
                    .map_err(|e| classify("DeletePolicyVersion", e))?;
            }
        }
        self.iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(document)
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| classify("CreatePolicyVersion", e))?;
        Ok(())
    }

    /// Every policy that applies to the user: attached and inline, the user's own and its
    /// groups', and its permissions boundary.
    #[boxed]
    pub async fn user_policies(&self, user: &str) -> Result<UserPolicies, AwsError> {
        let mut policies = UserPolicies::default();
        for arn in self.attached_user_policies(user).await? {
            if let Some(policy) = self.managed_policy(&arn).await? {
                policies
                    .identity
                    .push(AppliedPolicy { source: format!("managed policy {arn}"), document: policy.document });
            }
        }
        let names =
            self.iam.list_user_policies().user_name(user).send().await.map_err(|e| classify("ListUserPolicies", e))?;
        for name in names.policy_names() {
            let out = self
                .iam
                .get_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await
                .map_err(|e| classify("GetUserPolicy", e))?;
            policies.identity.push(AppliedPolicy {
                source: format!("inline policy {name}"),
                document: decode_document(out.policy_document()),
            });
        }
        let groups = self
            .iam
            .list_groups_for_user()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify("ListGroupsForUser", e))?;
        for group in groups.groups() {
            let group = group.group_name();
            let attached = self
                .iam
                .list_attached_group_policies()
                .group_name(group)
                .send()
                .await
                .map_err(|e| classify("ListAttachedGroupPolicies", e))?;
            for arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
                if let Some(policy) = self.managed_policy(arn).await? {
                    policies.identity.push(AppliedPolicy {
                        source: format!("managed policy {arn} of group {group}"),
                        document: policy.document,
                    });
                }
            }
            let names = self
                .iam
                .list_group_policies()
                .group_name(group)
                .send()
                .await
                .map_err(|e| classify("ListGroupPolicies", e))?;
            for name in names.policy_names() {
                let out = self
                    .iam
                    .get_group_policy()
                    .group_name(group)
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| classify("GetGroupPolicy", e))?;
                policies.identity.push(AppliedPolicy {
                    source: format!("inline policy {name} of group {group}"),
                    document: decode_document(out.policy_document()),
                });
            }
        }
        let out = self.iam.get_user().user_name(user).send().await.map_err(|e| classify("GetUser", e))?;
        let boundary = out.user().and_then(|u| u.permissions_boundary()).and_then(|b| b.permissions_boundary_arn());
        if let Some(arn) = boundary
            && let Some(policy) = self.managed_policy(arn).await?
        {
            policies.boundary =
                Some(AppliedPolicy { source: format!("permissions boundary {arn}"), document: policy.document });
        }
        Ok(policies)
    }

    /// The ids of the user's access keys that are active.
    #[boxed]
    pub async fn active_access_keys(&self, user: &str) -> Result<Vec<String>, AwsError> {
        let out =
            self.iam.list_access_keys().user_name(user).send().await.map_err(|e| classify("ListAccessKeys", e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter(|k| k.status().is_some_and(|s| s.as_str() == "Active"))
            .filter_map(|k| k.access_key_id().map(str::to_owned))
            .collect())
    }

    /// The KMS key named by an ARN, id or alias, if it exists.
    #[boxed]
    pub async fn kms_key(&self, key: &str) -> Result<Option<KmsKey>, AwsError> {
        let result = self.kms.describe_key().key_id(key).send().await.map_err(|e| classify("DescribeKey", e));
        Ok(absent_if(result, &["NotFoundException"])?.and_then(|out| {
            out.key_metadata().and_then(|m| Some(KmsKey { arn: m.arn()?.to_owned(), enabled: m.enabled() }))
        }))
    }

    /// Points `alias/{name}` at the key.
    #[boxed]
    pub async fn create_kms_alias(&self, alias: &str, key_arn: &str) -> Result<(), AwsError> {
        self.kms
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_arn)
            .send()
            .await
            .map_err(|e| classify("CreateAlias", e))?;
        Ok(())
    }

    /// The key policy's JSON text (KMS keys have exactly one policy, named `default`).
    #[boxed]
    pub async fn kms_key_policy(&self, key_arn: &str) -> Result<String, AwsError> {
        kms_key_policy(&self.kms, key_arn).await
    }

    #[boxed]
    pub async fn put_kms_key_policy(&self, key_arn: &str, document: &str) -> Result<(), AwsError> {
        self.kms
            .put_key_policy()
            .key_id(key_arn)
            .policy_name("default")
            .policy(document)
            .send()
            .await
            .map_err(|e| classify("PutKeyPolicy", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_decoded_when_encoded() {
        assert_eq!(decode_document("%7B%22Version%22%3A%20%222012-10-17%22%7D"), r#"{"Version": "2012-10-17"}"#);
        assert_eq!(decode_document(r#" {"a": "100%"}"#), r#" {"a": "100%"}"#);
    }
}

/// A bucket lifecycle rule that aborts multipart uploads nobody completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortUploadsRule {
    pub id: Option<String>,
    /// The keys it applies to (`""`: the whole bucket). A rule filtered by tags or sizes as
    /// well is not counted: uploads in progress have no tags.
    pub prefix: String,
    pub days: i32,
    pub enabled: bool,
}

/// The rule `byos aws bootstrap` adds.
pub const ABORT_UPLOADS_RULE_ID: &str = "byos-abort-incomplete-uploads";

impl Setup {
    /// The bucket's lifecycle rules that abort incomplete multipart uploads.
    #[boxed]
    pub async fn abort_upload_rules(&self, bucket: &str) -> Result<Vec<AbortUploadsRule>, AwsError> {
        let rules = self.lifecycle_rules(bucket).await?;
        Ok(rules
            .iter()
            .filter_map(|rule| {
                let days = rule.abort_incomplete_multipart_upload()?.days_after_initiation()?;
                let prefix = match rule.filter() {
                    Some(filter) if filter.tag().is_some() || filter.and().is_some() => return None,
                    Some(filter) if filter.object_size_greater_than().is_some() => return None,
                    Some(filter) => filter.prefix().unwrap_or_default(),
                    #[allow(deprecated)]
                    None => rule.prefix().unwrap_or_default(),
                };
                Some(AbortUploadsRule {
                    id: rule.id().map(str::to_owned),
                    prefix: prefix.to_owned(),
                    days,
                    enabled: *rule.status() == aws_sdk_s3::types::ExpirationStatus::Enabled,
                })
            })
            .collect())
    }

    /// Adds (or replaces) the rule [`ABORT_UPLOADS_RULE_ID`]: multipart uploads under `prefix`
    /// aborted `days` after they began. The bucket's other rules are kept as they are.
    #[boxed]
    pub async fn put_abort_uploads_rule(&self, bucket: &str, prefix: &str, days: i32) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{
            AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleRule,
            LifecycleRuleFilter,
        };
        let invalid = |e: aws_sdk_s3::error::BuildError| {
            AwsError::new(AwsErrorKind::Other, "PutBucketLifecycleConfiguration", e.to_string()).caused_by(e)
        };
        let mut rules: Vec<LifecycleRule> = self
            .lifecycle_rules(bucket)
            .await?
            .into_iter()
            .filter(|rule| rule.id() != Some(ABORT_UPLOADS_RULE_ID))
            .collect();
        rules.push(
            LifecycleRule::builder()
                .id(ABORT_UPLOADS_RULE_ID)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
                )
                .build()
                .map_err(invalid)?,
        );
        let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().map_err(invalid)?;
        self.s3
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| classify("PutBucketLifecycleConfiguration", e))?;
        Ok(())
    }

    async fn lifecycle_rules(&self, bucket: &str) -> Result<Vec<aws_sdk_s3::types::LifecycleRule>, AwsError> {
        match self.s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(e) => {
                let error = classify("GetBucketLifecycleConfiguration", e);
                if error.code.as_deref() == Some("NoSuchLifecycleConfiguration") { Ok(Vec::new()) } else { Err(error) }
            }
        }
    }
}
