//! Transfers that go straight between a client and S3: URLs presigned with the configuration's
//! credential (SigV4 in the query string), so the bytes never pass through byos.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::BucketAccess;
use crate::error::{AwsError, AwsErrorKind, classify};

/// SigV4's longest presigned validity: 7 days.
pub const MAX_PRESIGNED_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A presigned request: the URL, and the headers a client must send with it as they were
/// signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// When S3 stops taking the URL.
    pub expires_at: SystemTime,
}

impl BucketAccess {
    /// How long a URL presigned now can work: `wanted`, but no longer than the credential's
    /// session (an assumed role's, which S3 checks when the URL is used) nor SigV4's 7 days.
    pub async fn presigned_validity(&self, wanted: Duration) -> Result<Duration, AwsError> {
        let wanted = wanted.min(MAX_PRESIGNED_VALIDITY);
        let Some(provider) = self.credentials() else {
            return Ok(wanted);
        };
        let credentials = provider.provide_credentials().await.map_err(|e| {
            AwsError::new(AwsErrorKind::Unavailable, "Credentials", format!("no credentials to sign with: {e}"))
                .caused_by(e)
        })?;
        let left = credentials.expiry().and_then(|at| at.duration_since(SystemTime::now()).ok());
        Ok(left.map_or(wanted, |left| wanted.min(left)))
    }

    /// A presigned GET of `key` (or one version of it), which S3 answers with
    /// `Content-Disposition: {content_disposition}`, valid for `validity`.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        content_disposition: &str,
        validity: Duration,
    ) -> Result<Presigned, AwsError> {
        let (config, expires_at) = presigning(validity)?;
        let request = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .response_content_disposition(content_disposition)
            .presigned(config)
            .await
            .map_err(|e| classify("GetObject", e))?;
        Ok(Presigned {
            url: request.uri().to_owned(),
            headers: request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            expires_at,
        })
    }
}

fn presigning(validity: Duration) -> Result<(PresigningConfig, SystemTime), AwsError> {
    let start = SystemTime::now();
    let config = PresigningConfig::builder().start_time(start).expires_in(validity).build().map_err(|e| {
        AwsError::new(AwsErrorKind::InvalidRequest, "Presign", format!("cannot presign for {validity:?}: {e}"))
    })?;
    Ok((config, start + validity))
}

/// Temporary credentials vended for a scoped session. The secret and the token are shown only
/// through their `expose_` accessors; `Debug` redacts them.
#[derive(Clone)]
pub struct Vended {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: String,
    pub expires_at: SystemTime,
}

impl Vended {
    pub fn expose_secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    pub fn expose_session_token(&self) -> &str {
        &self.session_token
    }

    fn from_sts(
        credentials: Option<&aws_sdk_sts::types::Credentials>,
        operation: &'static str,
    ) -> Result<Vended, AwsError> {
        let credentials = credentials.ok_or_else(|| {
            AwsError::new(AwsErrorKind::Other, operation, "the answer holds no credentials".to_owned())
        })?;
        Ok(Vended {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().to_owned(),
            expires_at: SystemTime::try_from(*credentials.expiration())
                .map_err(|e| AwsError::new(AwsErrorKind::Other, operation, format!("an expiry out of range: {e}")))?,
        })
    }
}

impl std::fmt::Debug for Vended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vended")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &"** redacted **")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl BucketAccess {
    /// A federated user's session of this access's IAM user (`aws-user` credentials), limited
    /// by `policy`, named `name` (2 to 32 characters of `\w+=,.@-`), for `duration` (900 s to
    /// 36 h).
    pub async fn federation_token(&self, name: &str, policy: &str, duration: Duration) -> Result<Vended, AwsError> {
        let out = self
            .sts()
            .get_federation_token()
            .name(name)
            .policy(policy)
            .duration_seconds(seconds(duration))
            .send()
            .await
            .map_err(|e| classify("GetFederationToken", e))?;
        Vended::from_sts(out.credentials(), "GetFederationToken")
    }
}

impl crate::Aws {
    /// A session of `role_arn` assumed by the platform with the credential's external id,
    /// limited by `policy`, named `session_name` (2 to 64 characters), for `duration` (900 s to
    /// the role's maximum).
    pub async fn assume_role_scoped(
        &self,
        role_arn: &byos_domain::RoleArn,
        external_id: &byos_domain::ExternalId,
        session_name: &str,
        policy: &str,
        duration: Duration,
    ) -> Result<Vended, AwsError> {
        let out = self
            .platform_sts()
            .assume_role()
            .role_arn(role_arn.as_str())
            .external_id(external_id.expose())
            .role_session_name(session_name)
            .policy(policy)
            .duration_seconds(seconds(duration))
            .send()
            .await
            .map_err(|e| classify("AssumeRole", e))?;
        Vended::from_sts(out.credentials(), "AssumeRole")
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// S3's largest single CopyObject: larger objects are copied in parts.
pub const MAX_COPY_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// What `x-amz-copy-source` may carry unencoded: the key's `/` stays, everything else that is
/// not unreserved is percent-encoded.
const COPY_SOURCE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

impl BucketAccess {
    /// Copies version `version_id` of `key` onto `key` itself, which makes it the current
    /// version (S3 keeps the others), with `sse` as the configuration asks; the new version's id.
    pub async fn copy_version_to_current(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        sse: Option<&byos_domain::ServerSideEncryption>,
    ) -> Result<Option<String>, AwsError> {
        let source = format!(
            "{bucket}/{}?versionId={}",
            percent_encoding::utf8_percent_encode(key, COPY_SOURCE),
            percent_encoding::utf8_percent_encode(version_id, COPY_SOURCE)
        );
        let mut request = self.s3().copy_object().bucket(bucket).key(key).copy_source(source);
        match sse {
            None => {}
            Some(byos_domain::ServerSideEncryption::Aes256) => {
                request = request.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256);
            }
            Some(byos_domain::ServerSideEncryption::Kms(key_arn)) => {
                request = request
                    .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                    .ssekms_key_id(key_arn.as_str());
            }
        }
        let out = request.send().await.map_err(|e| classify("CopyObject", e))?;
        Ok(out.version_id().map(str::to_owned))
    }
}
