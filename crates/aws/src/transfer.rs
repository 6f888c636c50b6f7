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
