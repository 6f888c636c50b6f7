//! Transfers that go straight between a client and S3: URLs presigned with the configuration's
//! credential (SigV4 in the query string), so the bytes never pass through byos.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::BucketAccess;
use crate::boxed;
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
    #[boxed]
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
    #[boxed]
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
    #[boxed]
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
    #[boxed]
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
    #[boxed]
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
        let request = with_sse!(self.s3().copy_object().bucket(bucket).key(key).copy_source(source), sse);
        let out = request.send().await.map_err(|e| classify("CopyObject", e))?;
        Ok(out.version_id().map(str::to_owned))
    }

    /// Copies `source` to `to` in `bucket` (the same bucket or another the credential may
    /// write), in one CopyObject (up to [`MAX_COPY_OBJECT_BYTES`]), with its metadata, content
    /// type and tags, and with `sse` as the destination's configuration asks.
    #[boxed]
    pub async fn copy_object<'a>(
        &self,
        source: CopySource<'a>,
        bucket: &str,
        to: &str,
        sse: Option<&byos_domain::ServerSideEncryption>,
    ) -> Result<Copied, AwsError>
    where
        // `#[boxed]` names the boxed future's lifetime `'async_recursion`; the source's borrow
        // must outlive it (the macro bounds only the lifetimes it adds itself).
        'a: 'async_recursion,
    {
        let request = with_sse!(self.s3().copy_object().bucket(bucket).key(to).copy_source(source.header()), sse);
        let out = request.send().await.map_err(|e| classify("CopyObject", e))?;
        let result = out.copy_object_result();
        Ok(Copied {
            etag: result.and_then(|r| r.e_tag()).unwrap_or_default().trim_matches('"').to_owned(),
            version_id: out.version_id().map(str::to_owned),
            last_modified_ms: result.and_then(|r| r.last_modified()).and_then(|t| t.to_millis().ok()),
        })
    }
}

impl BucketAccess {
    /// The object's full-object checksum, if it has one (see [`Checksum`]).
    #[boxed]
    pub async fn full_object_checksum(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Checksum>, AwsError> {
        let out = self
            .s3()
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify("HeadObject", e))?;
        Ok(Checksum::of_head(&out))
    }
}

/// The object a copy reads: a key of a bucket, at a version when the copy pins one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySource<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

impl CopySource<'_> {
    /// The `x-amz-copy-source` header: `bucket/key[?versionId=...]`, the key percent-encoded.
    fn header(&self) -> String {
        let key = percent_encoding::utf8_percent_encode(self.key, COPY_SOURCE);
        match self.version_id {
            None => format!("{}/{key}", self.bucket),
            Some(version) => {
                format!(
                    "{}/{key}?versionId={}",
                    self.bucket,
                    percent_encoding::utf8_percent_encode(version, COPY_SOURCE)
                )
            }
        }
    }
}

/// A full-object checksum as S3 keeps it: the algorithm (`CRC64NVME`, `CRC32C` or `CRC32`) and
/// its base64 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub value: String,
}

impl Checksum {
    /// The object's full-object checksum, from a HEAD with checksum mode enabled. A composite
    /// checksum (of a multipart upload's parts, `value-N`) depends on how the object was cut,
    /// so it is not one.
    fn of_head(out: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Option<Checksum> {
        if out.checksum_type() == Some(&aws_sdk_s3::types::ChecksumType::Composite) {
            return None;
        }
        [("CRC64NVME", out.checksum_crc64_nvme()), ("CRC32C", out.checksum_crc32_c()), ("CRC32", out.checksum_crc32())]
            .into_iter()
            .find_map(|(algorithm, value)| {
                let value = value.filter(|v| !v.contains('-'))?;
                Some(Checksum { algorithm: algorithm.to_owned(), value: value.to_owned() })
            })
    }
}

/// What a copy in parts made, and the source's full-object checksum when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsCopied {
    pub copy: Copied,
    pub source_checksum: Option<Checksum>,
}

/// One part of a multipart upload, as CompleteMultipartUpload takes it back.
#[derive(Debug, Clone)]
struct PartCopied {
    number: u32,
    e_tag: String,
    checksum: Option<String>,
}

/// How a copy in parts cuts its source.
#[derive(Debug, Clone, Copy)]
struct Layout {
    size: u64,
    part_size: u64,
    at_once: usize,
}

/// What a copy made: the new object's ETag (without quotes), version, and when S3 wrote it
/// (CopyObject answers it; CompleteMultipartUpload does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub etag: String,
    pub version_id: Option<String>,
    pub last_modified_ms: Option<i64>,
}

/// A part S3 already holds of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    /// With its quotes, as CompleteMultipartUpload takes it back.
    pub e_tag: String,
}

impl BucketAccess {
    /// A presigned PUT of `key`, with the configuration's encryption and the content type signed
    /// in: the client sends [`Presigned::headers`] with it, as they are.
    #[boxed]
    pub async fn presign_put(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        sse: Option<&byos_domain::ServerSideEncryption>,
        validity: Duration,
    ) -> Result<Presigned, AwsError> {
        let (config, expires_at) = presigning(validity)?;
        let request = self.s3().put_object().bucket(bucket).key(key).set_content_type(content_type.map(str::to_owned));
        let request = with_sse!(request, sse);
        let presigned = request.presigned(config).await.map_err(|e| classify("PutObject", e))?;
        Ok(Presigned {
            url: presigned.uri().to_owned(),
            headers: presigned.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            expires_at,
        })
    }

    /// Starts a multipart upload of `key` with the configuration's encryption; S3's UploadId.
    #[boxed]
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        sse: Option<&byos_domain::ServerSideEncryption>,
    ) -> Result<String, AwsError> {
        let request = self
            .s3()
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned));
        let request = with_sse!(request, sse);
        let out = request.send().await.map_err(|e| classify("CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| {
            AwsError::new(AwsErrorKind::Other, "CreateMultipartUpload", "the answer holds no UploadId".to_owned())
        })
    }

    /// A presigned PUT of one part of a multipart upload.
    #[boxed]
    pub async fn presign_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        validity: Duration,
    ) -> Result<Presigned, AwsError> {
        let (config, expires_at) = presigning(validity)?;
        let presigned = self
            .s3()
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(part_number).unwrap_or(i32::MAX))
            .presigned(config)
            .await
            .map_err(|e| classify("UploadPart", e))?;
        Ok(Presigned {
            url: presigned.uri().to_owned(),
            headers: presigned.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            expires_at,
        })
    }

    /// The parts S3 holds of a multipart upload, by part number.
    #[boxed]
    pub async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, AwsError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .s3()
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify("ListParts", e))?;
            parts.extend(out.parts().iter().map(|p| UploadedPart {
                part_number: p.part_number().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
                size: p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                e_tag: p.e_tag().unwrap_or_default().to_owned(),
            }));
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => return Ok(parts),
            }
        }
    }

    /// Completes a multipart upload from its parts (number and ETag, in order).
    #[boxed]
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<Copied, AwsError> {
        let parts =
            parts.iter().map(|(number, e_tag)| PartCopied { number: *number, e_tag: e_tag.clone(), checksum: None });
        self.complete_parts(bucket, key, upload_id, parts.collect(), None).await
    }

    /// Completes a multipart upload; with `checksum`, S3 checks the whole object against it.
    async fn complete_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<PartCopied>,
        checksum: Option<&Checksum>,
    ) -> Result<Copied, AwsError> {
        use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
        let parts = parts.into_iter().map(|part| {
            let completed =
                CompletedPart::builder().part_number(i32::try_from(part.number).unwrap_or(i32::MAX)).e_tag(part.e_tag);
            match (checksum.map(|c| c.algorithm.as_str()), part.checksum) {
                (Some("CRC64NVME"), Some(value)) => completed.checksum_crc64_nvme(value),
                (Some("CRC32C"), Some(value)) => completed.checksum_crc32_c(value),
                (Some("CRC32"), Some(value)) => completed.checksum_crc32(value),
                _ => completed,
            }
            .build()
        });
        let completed = CompletedMultipartUpload::builder().set_parts(Some(parts.collect())).build();
        let request = self
            .s3()
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed);
        let request = match checksum {
            Some(Checksum { algorithm, value }) => {
                let request = request.checksum_type(ChecksumType::FullObject);
                match algorithm.as_str() {
                    "CRC64NVME" => request.checksum_crc64_nvme(value),
                    "CRC32C" => request.checksum_crc32_c(value),
                    _ => request.checksum_crc32(value),
                }
            }
            None => request,
        };
        let out = request.send().await.map_err(|e| classify("CompleteMultipartUpload", e))?;
        Ok(Copied {
            etag: out.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
            version_id: out.version_id().map(str::to_owned),
            last_modified_ms: None,
        })
    }

    /// Aborts a multipart upload: S3 drops its parts. One that is already gone is not an error.
    #[boxed]
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), AwsError> {
        let aborted = self.s3().abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await;
        match aborted.map_err(|e| classify("AbortMultipartUpload", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.code.as_deref() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl BucketAccess {
    /// Copies `source` (`size` bytes) to `to` in `bucket` as a multipart upload of
    /// UploadPartCopy requests of `part_size` bytes, `at_once` at a time: objects above
    /// [`MAX_COPY_OBJECT_BYTES`] can only be copied so. The source's content type, metadata and
    /// tags are kept (read first: a multipart upload does not take them from its parts), the
    /// encryption is `sse`. The upload is aborted when a part fails.
    ///
    /// Every part is copied only from the source as it was read first (`x-amz-copy-source-if-match`
    /// with its ETag: S3 answers 412 PreconditionFailed to a part of a source changed since),
    /// so the parts cannot mix two contents. When the source has a full-object checksum (CRC64NVME,
    /// CRC32C or CRC32; S3 gives every object uploaded since 2025 one), the upload computes the
    /// same over the copy and S3 checks it at completion; the answer carries the source's, for
    /// the caller to compare with the copy's.
    #[allow(clippy::too_many_arguments)]
    #[boxed]
    pub async fn copy_object_in_parts<'a>(
        &self,
        source: CopySource<'a>,
        bucket: &str,
        to: &str,
        size: u64,
        part_size: u64,
        at_once: usize,
        sse: Option<&byos_domain::ServerSideEncryption>,
    ) -> Result<PartsCopied, AwsError>
    where
        // As in `copy_object`.
        'a: 'async_recursion,
    {
        use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
        let version = source.version_id.map(str::to_owned);
        let head = self
            .s3()
            .head_object()
            .bucket(source.bucket)
            .key(source.key)
            .set_version_id(version.clone())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify("HeadObject", e))?;
        let checksum = Checksum::of_head(&head);
        // Tags go with the copy where the credential may read them: ICA's policy grants no
        // s3:GetObjectTagging, and some S3 servers have no tagging at all.
        let tags =
            self.s3().get_object_tagging().bucket(source.bucket).key(source.key).set_version_id(version).send().await;
        let tagging = match tags.map_err(|e| classify("GetObjectTagging", e)) {
            Ok(tags) if !tags.tag_set().is_empty() => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for tag in tags.tag_set() {
                    query.append_pair(tag.key(), tag.value());
                }
                Some(query.finish())
            }
            Ok(_) => None,
            Err(e) if e.kind == AwsErrorKind::AccessDenied || e.code.as_deref() == Some("NotImplemented") => {
                tracing::debug!(key = source.key, error = %e, "a copy in parts goes without the source's tags");
                None
            }
            Err(e) => return Err(e),
        };
        let request = self
            .s3()
            .create_multipart_upload()
            .bucket(bucket)
            .key(to)
            .set_content_type(head.content_type().map(str::to_owned))
            .set_content_disposition(head.content_disposition().map(str::to_owned))
            .set_content_encoding(head.content_encoding().map(str::to_owned))
            .set_content_language(head.content_language().map(str::to_owned))
            .set_cache_control(head.cache_control().map(str::to_owned))
            .set_metadata(head.metadata().cloned())
            .set_tagging(tagging);
        let request = match &checksum {
            Some(checksum) => request
                .checksum_algorithm(ChecksumAlgorithm::from(checksum.algorithm.as_str()))
                .checksum_type(ChecksumType::FullObject),
            None => request,
        };
        let out = with_sse!(request, sse).send().await.map_err(|e| classify("CreateMultipartUpload", e))?;
        let upload_id = out.upload_id().map(str::to_owned).ok_or_else(|| {
            AwsError::new(AwsErrorKind::Other, "CreateMultipartUpload", "the answer holds no UploadId".to_owned())
        })?;
        let layout = Layout { size, part_size: part_size.max(1), at_once: at_once.max(1) };
        let if_match = head.e_tag().map(str::to_owned);
        let copied = self.copy_parts(source, bucket, to, &upload_id, layout, if_match, checksum.as_ref()).await;
        let parts = match copied {
            Ok(parts) => parts,
            Err(e) => {
                if let Err(abort) = self.abort_multipart(bucket, to, &upload_id).await {
                    tracing::warn!(key = to, error = %abort, "cannot abort a copy in parts; the bucket's lifecycle rule will");
                }
                return Err(e);
            }
        };
        let copy = self.complete_parts(bucket, to, &upload_id, parts, checksum.as_ref()).await?;
        Ok(PartsCopied { copy, source_checksum: checksum })
    }

    /// The parts of a copy, each an UploadPartCopy of its byte range from the source whose ETag
    /// is `if_match`; their numbers, ETags and (with `checksum`) checksums.
    #[allow(clippy::too_many_arguments)]
    async fn copy_parts(
        &self,
        source: CopySource<'_>,
        bucket: &str,
        to: &str,
        upload_id: &str,
        Layout { size, part_size, at_once }: Layout,
        if_match: Option<String>,
        checksum: Option<&Checksum>,
    ) -> Result<Vec<PartCopied>, AwsError> {
        let source = source.header();
        let algorithm = checksum.map(|c| c.algorithm.clone());
        let count = size.div_ceil(part_size).max(1);
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once));
        let mut copies = tokio::task::JoinSet::new();
        for index in 0..count {
            let (start, end) = (index * part_size, ((index + 1) * part_size).min(size).saturating_sub(1));
            let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let request = self
                .s3()
                .upload_part_copy()
                .bucket(bucket)
                .key(to)
                .upload_id(upload_id)
                .part_number(i32::try_from(number).unwrap_or(i32::MAX))
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .set_copy_source_if_match(if_match.clone());
            let (permits, algorithm) = (permits.clone(), algorithm.clone());
            copies.spawn(async move {
                let _permit = permits.acquire().await;
                let out = request.send().await.map_err(|e| classify("UploadPartCopy", e))?;
                let result = out.copy_part_result();
                let checksum = result.and_then(|r| match algorithm.as_deref() {
                    Some("CRC64NVME") => r.checksum_crc64_nvme(),
                    Some("CRC32C") => r.checksum_crc32_c(),
                    Some("CRC32") => r.checksum_crc32(),
                    _ => None,
                });
                let e_tag = result.and_then(|r| r.e_tag()).unwrap_or_default().to_owned();
                Ok::<_, AwsError>(PartCopied { number, e_tag, checksum: checksum.map(str::to_owned) })
            });
        }
        let mut parts = Vec::new();
        while let Some(done) = copies.join_next().await {
            let part = done.map_err(|e| AwsError::new(AwsErrorKind::Other, "UploadPartCopy", e.to_string()))??;
            parts.push(part);
        }
        parts.sort_unstable_by_key(|part| part.number);
        Ok(parts)
    }
}

/// A key S3 did not delete in a [`BucketAccess::delete_objects`], with S3's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDeleted {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// The most keys one DeleteObjects takes.
pub const MAX_DELETE_BATCH: usize = 1000;

impl BucketAccess {
    /// Deletes up to [`MAX_DELETE_BATCH`] keys (their current versions: a versioned bucket
    /// hides them behind delete markers) in one DeleteObjects; answers the keys S3 refused.
    #[boxed]
    pub async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<NotDeleted>, AwsError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        debug_assert!(keys.len() <= MAX_DELETE_BATCH, "{} keys in one DeleteObjects", keys.len());
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let objects = keys
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::new(AwsErrorKind::Other, "DeleteObjects", e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| AwsError::new(AwsErrorKind::Other, "DeleteObjects", e.to_string()))?;
        let out = self
            .s3()
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| classify("DeleteObjects", e))?;
        Ok(out
            .errors()
            .iter()
            .map(|e| NotDeleted {
                key: e.key().unwrap_or_default().to_owned(),
                code: e.code().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect())
    }
}

/// How fast S3 restores an archived object: `Expedited` (minutes; not for DEEP_ARCHIVE),
/// `Standard` (hours), `Bulk` (the cheapest, up to two days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTier {
    Expedited,
    Standard,
    Bulk,
}

impl RestoreTier {
    pub fn parse(s: &str) -> Option<RestoreTier> {
        match s {
            "Expedited" => Some(RestoreTier::Expedited),
            "Standard" => Some(RestoreTier::Standard),
            "Bulk" => Some(RestoreTier::Bulk),
            _ => None,
        }
    }
}

impl BucketAccess {
    /// Asks S3 for a readable copy of the archived `key` for `days` days (a RestoreObject);
    /// S3 sends `s3:ObjectRestore:Post` at once and `s3:ObjectRestore:Completed` when it is done.
    #[boxed]
    pub async fn restore_object(&self, bucket: &str, key: &str, days: i32, tier: RestoreTier) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
        let tier = match tier {
            RestoreTier::Expedited => Tier::Expedited,
            RestoreTier::Standard => Tier::Standard,
            RestoreTier::Bulk => Tier::Bulk,
        };
        let job = GlacierJobParameters::builder()
            .tier(tier)
            .build()
            .map_err(|e| AwsError::new(AwsErrorKind::Other, "RestoreObject", e.to_string()))?;
        let request = RestoreRequest::builder().days(days).glacier_job_parameters(job).build();
        self.s3()
            .restore_object()
            .bucket(bucket)
            .key(key)
            .restore_request(request)
            .send()
            .await
            .map_err(|e| classify("RestoreObject", e))?;
        Ok(())
    }
}
