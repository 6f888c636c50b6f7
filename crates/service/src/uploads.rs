//! Uploads straight from the client to the bucket, shaped for Uppy's S3 multipart flow and for
//! resuming: one presigned PUT for a small file, an S3 multipart upload for a large one, whose
//! parts the client signs in batches, lists again after a reload, completes or aborts. The
//! store remembers each upload until it is completed or aborted; the server aborts those nobody
//! completes once they expire.

use std::time::Duration;

use byos_aws::{Presigned, UploadedPart};
use byos_catalog::{Entry, EntryKind, Project, StoreError, Upload};
use byos_domain::Problem;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::data::relative;
use crate::error::internal;
use crate::transfers::{aws_problem, open_bucket};
use crate::{Internal, ProjectScope, Projects, ReadWrite, ServiceError, Services, now};

/// S3's limits: parts of 5 MiB at least (but the last), at most 10,000 parts, objects of at
/// most 5 TiB.
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Parts one request may sign.
const MAX_PARTS_PER_SIGNING: usize = 1_000;

/// How uploads are cut and how long they may stay open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// Files from this size on go up in parts; smaller ones with one PUT.
    pub multipart_threshold: u64,
    /// The size of a part, larger only when a file would need more than 10,000 parts.
    pub part_size: u64,
    /// How long an upload nobody completes stays open before the server aborts it.
    pub abandoned_after: Duration,
}

impl Default for UploadSettings {
    fn default() -> UploadSettings {
        UploadSettings {
            multipart_threshold: 100 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            abandoned_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl UploadSettings {
    /// The part size and count for a file of `size` bytes: `part_size`, or the smallest whole
    /// number of MiB that keeps it within 10,000 parts.
    pub fn parts_for(&self, size: u64) -> (u64, u64) {
        let mib = 1024 * 1024;
        let needed = size.div_ceil(MAX_PARTS).div_ceil(mib) * mib;
        let part_size = self.part_size.max(needed).max(MIN_PART_BYTES);
        (part_size, size.div_ceil(part_size).max(1))
    }
}

/// An upload, as a client starts it.
#[derive(Debug, Default, Clone)]
pub struct UploadRequest {
    /// The file's path in the project.
    pub path: Option<String>,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    /// Replace a file that exists at `path`; without it, such a file is a conflict.
    pub overwrite: Option<bool>,
    /// The client's part size: the file goes in parts of this size when it is larger, in one PUT
    /// otherwise. Without it, the server's threshold and part size decide.
    pub part_size: Option<u64>,
}

/// The part size and count a client asked for: parts of 5 MiB to 5 GiB, at most 10,000 of
/// them; a file no larger than one part is a single PUT.
fn client_parts(size: u64, part_size: u64) -> Result<(u64, u64), String> {
    if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_size) {
        return Err(format!("partSize: {part_size} bytes is not 5 MiB to 5 GiB, the part sizes S3 takes"));
    }
    if size <= part_size {
        return Ok((size, 1));
    }
    let count = size.div_ceil(part_size);
    if count > MAX_PARTS {
        let least = size.div_ceil(MAX_PARTS);
        return Err(format!(
            "partSize: {part_size} bytes would cut this file into {count} parts, more than S3's 10,000; use at least {least}"
        ));
    }
    Ok((part_size, count))
}

/// A started upload: for a single PUT, its presigned request.
#[derive(Debug, Clone)]
pub struct StartedUpload {
    pub upload: Upload,
    pub put: Option<Presigned>,
}

/// An upload with the parts S3 already holds.
#[derive(Debug, Clone)]
pub struct UploadState {
    pub upload: Upload,
    pub parts: Vec<UploadedPart>,
}

/// The operations on uploads.
#[derive(Debug, Clone, Copy)]
pub struct Uploads<'a> {
    services: &'a Services,
}

impl<'a> Uploads<'a> {
    pub(crate) fn new(services: &'a Services) -> Uploads<'a> {
        Uploads { services }
    }

    /// Starts an upload of `size` bytes to `path`.
    pub async fn create(
        &self,
        scope: &ProjectScope<ReadWrite>,
        request: UploadRequest,
    ) -> Result<StartedUpload, ServiceError> {
        let invalid = |message: String| ServiceError::from(Problem::invalid_request(&message));
        let project = self.services.projects().get(scope).await?;
        Projects::policy_prefix(&project)?;
        let path = crate::required("path", request.path.as_deref()).map_err(invalid)?;
        let relative = relative(path)?;
        if relative.is_empty() || relative.ends_with('/') {
            return Err(invalid(format!("path: {path:?} is a folder; an upload's path names a file")));
        }
        let size = request.size.ok_or_else(|| invalid("size: required".to_owned()))?;
        if size > MAX_OBJECT_BYTES {
            return Err(invalid(format!("size: {size} bytes is more than S3's largest object, 5 TiB")));
        }
        let content_type = request.content_type.filter(|t| !t.is_empty());
        if let Some(t) = &content_type
            && (t.len() > 255 || !t.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        {
            return Err(invalid(format!("contentType: {t:?} is not a media type such as text/csv")));
        }
        if !request.overwrite.unwrap_or(false) {
            match self.services.store().data.entry(project.id, relative).await {
                Ok(Entry { kind: EntryKind::File(_), .. }) => return Err(Problem::file_exists(path).into()),
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(internal(e)),
            }
        }
        let settings = &self.services.data_settings().uploads;
        let (part_size, part_count) = match request.part_size {
            Some(part_size) => client_parts(size, part_size).map_err(invalid)?,
            None if size < settings.multipart_threshold => (size, 1),
            None => settings.parts_for(size),
        };
        let multipart = part_count > 1 || (request.part_size.is_none() && size >= settings.multipart_threshold);
        let bucket = open_bucket(self.services, &project).await?;
        let sse = bucket.configuration.spec.server_side_encryption.as_ref();
        let key = format!("{}{relative}", project.key_prefix);
        let aws = |e| aws_problem(&e, &project);
        let (multipart_id, put) = if !multipart {
            let validity =
                bucket.access.presigned_validity(self.services.data_settings().url_expiry).await.map_err(aws)?;
            let put = bucket
                .access
                .presign_put(project.bucket.as_str(), &key, content_type.as_deref(), sse, validity)
                .await
                .map_err(aws)?;
            (None, Some(put))
        } else {
            let id = bucket
                .access
                .create_multipart(project.bucket.as_str(), &key, content_type.as_deref(), sse)
                .await
                .map_err(aws)?;
            (Some(id), None)
        };
        let created_at = now();
        let upload = Upload {
            id: Uuid::new_v4(),
            project_id: project.id,
            path: relative.to_owned(),
            multipart_id,
            size,
            part_size,
            part_count: u32::try_from(part_count).unwrap_or(u32::MAX),
            content_type,
            created_by: scope.caller().token(),
            created_at,
            expires_at: created_at + settings.abandoned_after,
        };
        self.services.store().uploads.insert_upload(&upload).await.map_err(internal)?;
        tracing::info!(project = %project.id, upload = %upload.id, path = relative, size, parts = part_count, "upload started");
        Ok(StartedUpload { upload, put })
    }

    /// Presigned PUTs of the parts `numbers` of a multipart upload, again when one expired.
    pub async fn sign_parts(
        &self,
        scope: &ProjectScope<ReadWrite>,
        id: Uuid,
        numbers: &[u32],
    ) -> Result<Vec<(u32, Presigned)>, ServiceError> {
        let (project, upload) = self.upload(scope, id).await?;
        let Some(multipart_id) = &upload.multipart_id else {
            return Err(Problem::invalid_request("partNumbers: this upload is a single PUT, which has no parts").into());
        };
        if numbers.is_empty() || numbers.len() > MAX_PARTS_PER_SIGNING {
            return Err(
                Problem::invalid_request(&format!("partNumbers: 1 to {MAX_PARTS_PER_SIGNING} part numbers")).into()
            );
        }
        if let Some(bad) = numbers.iter().find(|n| !(1..=upload.part_count).contains(n)) {
            return Err(
                Problem::invalid_request(&format!("partNumbers: {bad} is not 1 to {}", upload.part_count)).into()
            );
        }
        let bucket = open_bucket(self.services, &project).await?;
        let key = format!("{}{}", project.key_prefix, upload.path);
        let aws = |e| aws_problem(&e, &project);
        let validity = bucket.access.presigned_validity(self.services.data_settings().url_expiry).await.map_err(aws)?;
        let mut signed = Vec::with_capacity(numbers.len());
        for &number in numbers {
            let part = bucket
                .access
                .presign_part(project.bucket.as_str(), &key, multipart_id, number, validity)
                .await
                .map_err(aws)?;
            signed.push((number, part));
        }
        Ok(signed)
    }

    /// An upload with the parts S3 already holds, to resume it.
    pub async fn get(&self, scope: &ProjectScope<ReadWrite>, id: Uuid) -> Result<UploadState, ServiceError> {
        let (project, upload) = self.upload(scope, id).await?;
        let parts = match &upload.multipart_id {
            None => Vec::new(),
            Some(multipart_id) => {
                let bucket = open_bucket(self.services, &project).await?;
                let key = format!("{}{}", project.key_prefix, upload.path);
                bucket
                    .access
                    .list_parts(project.bucket.as_str(), &key, multipart_id)
                    .await
                    .map_err(|e| aws_problem(&e, &project))?
            }
        };
        Ok(UploadState { upload, parts })
    }

    /// The project's open uploads, oldest first.
    pub async fn list(&self, scope: &ProjectScope<ReadWrite>) -> Result<Vec<Upload>, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        self.services.store().uploads.list_uploads(project.id).await.map_err(internal)
    }

    /// Completes an upload: a multipart one from its parts (number and ETag), a single PUT once
    /// the object is there. The catalog shows the file at once; answers its entry.
    pub async fn complete(
        &self,
        scope: &ProjectScope<ReadWrite>,
        id: Uuid,
        parts: &[(u32, String)],
    ) -> Result<Entry, ServiceError> {
        let (project, upload) = self.upload(scope, id).await?;
        let bucket = open_bucket(self.services, &project).await?;
        let key = format!("{}{}", project.key_prefix, upload.path);
        let aws = |e| aws_problem(&e, &project);
        match &upload.multipart_id {
            None => {
                if !parts.is_empty() {
                    return Err(Problem::invalid_request("parts: a single PUT has no parts; send none").into());
                }
                let head = bucket.access.head(project.bucket.as_str(), &key, None).await.map_err(aws)?;
                if head.is_none_or(|head| head.size != upload.size) {
                    return Err(Problem::upload_incomplete(&format!("/{}", upload.path)).into());
                }
            }
            Some(multipart_id) => {
                if parts.is_empty() {
                    return Err(
                        Problem::invalid_request("parts: the uploaded parts, each with its number and eTag").into()
                    );
                }
                if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(Problem::invalid_request("parts: in ascending order of part number, each once").into());
                }
                let refused = |e: byos_aws::AwsError| match e.code.as_deref() {
                    Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall") => {
                        ServiceError::from(Problem::invalid_request(&format!("parts: {}", e.message)))
                    }
                    _ => aws(e),
                };
                let complete = || bucket.access.complete_multipart(project.bucket.as_str(), &key, multipart_id, parts);
                if let Err(e) = complete().await {
                    // The answer may have been lost after S3 completed the upload (the SDK does not
                    // send a request again once it may have arrived), or a client asks again after
                    // such a loss: S3 then knows the upload no more. The object tells.
                    let unsure = e.retryable() || e.code.as_deref() == Some("NoSuchUpload");
                    let head = if unsure {
                        bucket.access.head(project.bucket.as_str(), &key, None).await.map_err(aws)?
                    } else {
                        None
                    };
                    let done = head.is_some_and(|head| completed_as(&head, &upload, parts));
                    if !done {
                        if !e.retryable() {
                            return Err(refused(e));
                        }
                        // It did not arrive: once more.
                        complete().await.map_err(refused)?;
                    }
                }
            }
        }
        self.forget(&upload).await?;
        self.services.sync().observe(&project, &upload.path).await.map_err(|e| internal(Internal::Sync(e)))?;
        tracing::info!(project = %project.id, upload = %upload.id, path = upload.path, "upload completed");
        self.services.store().data.entry(project.id, &upload.path).await.map_err(internal)
    }

    /// Aborts an upload: S3 drops the parts it holds.
    pub async fn abort(&self, scope: &ProjectScope<ReadWrite>, id: Uuid) -> Result<(), ServiceError> {
        let (project, upload) = self.upload(scope, id).await?;
        self.abort_upload(&project, &upload).await?;
        tracing::info!(project = %project.id, upload = %upload.id, "upload aborted");
        Ok(())
    }

    /// Aborts up to `limit` uploads that expired; returns how many. Run by the server's worker.
    pub async fn abort_expired(&self, limit: u32) -> Result<usize, ServiceError> {
        let store = self.services.store();
        let expired = store.uploads.expired_uploads(OffsetDateTime::now_utc(), limit).await.map_err(internal)?;
        let mut aborted = 0;
        for upload in &expired {
            let project = match store.projects.get_project(upload.project_id).await {
                Ok(project) => project,
                // The project went, and its uploads with it.
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(internal(e)),
            };
            match self.abort_upload(&project, upload).await {
                Ok(()) => aborted += 1,
                Err(e) => tracing::warn!(upload = %upload.id, error = ?e, "cannot abort an abandoned upload"),
            }
        }
        Ok(aborted)
    }

    async fn abort_upload(&self, project: &Project, upload: &Upload) -> Result<(), ServiceError> {
        if let Some(multipart_id) = &upload.multipart_id {
            let bucket = open_bucket(self.services, project).await?;
            let key = format!("{}{}", project.key_prefix, upload.path);
            bucket
                .access
                .abort_multipart(project.bucket.as_str(), &key, multipart_id)
                .await
                .map_err(|e| aws_problem(&e, project))?;
        }
        self.forget(upload).await
    }

    /// Forgets an upload; of two racing completions or aborts, the second finds it gone.
    async fn forget(&self, upload: &Upload) -> Result<(), ServiceError> {
        match self.services.store().uploads.delete_upload(upload.id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Problem::not_found("Upload", &upload.id.to_string()).into()),
            Err(e) => Err(internal(e)),
        }
    }

    async fn upload(&self, scope: &ProjectScope<ReadWrite>, id: Uuid) -> Result<(Project, Upload), ServiceError> {
        let project = self.services.projects().get(scope).await?;
        match self.services.store().uploads.get_upload(project.id, id).await {
            Ok(upload) => Ok((project, upload)),
            Err(StoreError::NotFound) => Err(Problem::not_found("Upload", &id.to_string()).into()),
            Err(e) => Err(internal(e)),
        }
    }
}

/// Whether `head` is the object a multipart upload of `parts` made: its ETag is the MD5 of the
/// parts' MD5s and their count (S3's multipart ETag), and its size the upload's. Encryption with
/// KMS makes ETags that are no MD5s: there the size, the count and the time have to do.
fn completed_as(head: &byos_aws::Head, upload: &Upload, parts: &[(u32, String)]) -> bool {
    if head.size != upload.size {
        return false;
    }
    match multipart_etag(parts) {
        Some(expected) if head.etag == expected => true,
        _ => {
            let count = format!("-{}", parts.len());
            let made_after = head.last_modified_ms >= upload.created_at.unix_timestamp() * 1000 - 1000;
            head.etag.ends_with(&count) && made_after && parts.iter().any(|(_, etag)| !is_md5(etag))
        }
    }
}

/// S3's ETag of an object completed from `parts`: the hex MD5 of their binary MD5s, a dash and
/// their count; `None` when a part's ETag is no MD5 (SSE-KMS).
fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut digest = Md5::new();
    for (_, etag) in parts {
        let etag = etag.trim_matches('"');
        if !is_md5(etag) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..16).map(|i| u8::from_str_radix(&etag[2 * i..2 * i + 2], 16).ok()).collect();
        digest.update(bytes?);
    }
    let hex: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{hex}-{}", parts.len()))
}

fn is_md5(etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_parts_md5s() {
        // 5 MiB of zeros and one byte 0x01, as S3 (and moto) compute it; quotes or none.
        let parts = [
            (1, "\"5f363e0e58a95f06cbe9bbc662c5dfb6\"".to_owned()),
            (2, "55a54008ad1ba589aa210d2629c1df41".to_owned()),
        ];
        assert_eq!(multipart_etag(&parts).as_deref(), Some("b96b8e43eae1096721fcd7be1cc9e104-2"));
        assert_eq!(multipart_etag(&[(1, "not-an-md5".to_owned())]), None);
    }

    #[test]
    fn large_files_get_larger_parts_within_ten_thousand() {
        let settings = UploadSettings::default();
        let mib = 1024 * 1024;
        assert_eq!(settings.parts_for(100 * mib), (8 * mib, 13));
        assert_eq!(settings.parts_for(80_000 * mib), (8 * mib, 10_000));
        assert_eq!(settings.parts_for(80_001 * mib), (9 * mib, 8_889));
        let (part, count) = settings.parts_for(MAX_OBJECT_BYTES);
        assert!(count <= 10_000 && part % mib == 0 && part * count >= MAX_OBJECT_BYTES, "{part} x {count}");
        let small_parts = UploadSettings { part_size: mib, ..UploadSettings::default() };
        assert_eq!(small_parts.parts_for(11 * mib).0, 5 * mib, "S3's smallest part");
    }

    #[test]
    fn a_clients_part_size_is_used_within_s3s_limits() {
        let mib = 1024 * 1024;
        assert_eq!(client_parts(16 * mib, 16 * mib), Ok((16 * mib, 1)), "one part is one PUT");
        assert_eq!(client_parts(33 * mib, 16 * mib), Ok((16 * mib, 3)));
        assert_eq!(client_parts(0, 8 * mib), Ok((0, 1)));
        assert!(client_parts(100 * mib, 4 * mib).unwrap_err().contains("5 MiB to 5 GiB"));
        assert!(client_parts(100 * mib, 6 * 1024 * mib).unwrap_err().contains("5 MiB to 5 GiB"));
        let refused = client_parts(10_001 * 5 * mib, 5 * mib).unwrap_err();
        assert!(refused.contains("10001 parts") && refused.contains("use at least"), "{refused}");
    }
}
