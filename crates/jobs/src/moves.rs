//! Moves: an object copied to its new key in the same bucket, the copy verified, then the
//! source deleted; a folder's move does that for each object as a job. A copy is verified by
//! its ETag when S3 computed both the same way (an MD5 of the bytes); otherwise by its size,
//! when the difference is explained (a source uploaded in parts, or SSE-KMS on either side). A
//! copy in parts is made of parts read from one version of the source only, and compared by the
//! source's full-object checksum where it has one (CRC64NVME, CRC32C or CRC32).
//! A source is deleted only once its copy is verified.
//!
//! Taken up again, a folder's move lists what is left of the source; a destination that already
//! holds a copy (the same bytes, or one of the same size the move wrote itself before the stop)
//! counts as copied.

use byos_aws::{AwsError, BucketAccess, CopySource, Head, MAX_COPY_OBJECT_BYTES, MAX_DELETE_BATCH};
use byos_catalog::Project;
use byos_domain::{Problem, ServerSideEncryption};

use crate::worker::{Run, Stop, aws_stop};

/// An object as a listing or a HEAD showed it: what a copy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub bucket: String,
    pub key: String,
    /// The version a copy reads, when it pins one (a versioned source).
    pub version_id: Option<String>,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
}

impl Source {
    fn copy_source(&self) -> CopySource<'_> {
        CopySource { bucket: &self.bucket, key: &self.key, version_id: self.version_id.as_deref() }
    }
}

/// Why a copy was not made or not verified.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Larger than S3 copies: 10,000 parts of 5 GiB.
    #[error("it holds {size} bytes, more than S3 copies (10,000 parts of 5 GiB)")]
    TooLarge { size: u64 },
    /// The copy is not what was copied: the source changed meanwhile, or S3 failed.
    #[error("its copy does not match it ({0})")]
    Mismatch(String),
}

/// How objects are copied: one CopyObject up to `threshold` bytes, above it a multipart upload
/// of UploadPartCopy requests (S3 copies at most 5 GiB in one request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySettings {
    /// At most [`MAX_COPY_OBJECT_BYTES`].
    pub threshold: u64,
    /// A part's size: 5 MiB to 5 GiB; larger when an object would need more than 10,000 parts.
    pub part_size: u64,
    /// Parts of one object copied at once.
    pub parts_at_once: usize,
}

impl Default for CopySettings {
    fn default() -> CopySettings {
        CopySettings { threshold: MAX_COPY_OBJECT_BYTES, part_size: 512 * 1024 * 1024, parts_at_once: 8 }
    }
}

impl CopySettings {
    /// Whether an object of `size` bytes is copied in parts.
    pub(crate) fn in_parts(&self, size: u64) -> bool {
        size > self.threshold.min(MAX_COPY_OBJECT_BYTES)
    }
}

/// S3's most parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// Copies `source` to `to` in `bucket`, with the destination configuration's encryption, and
/// verifies the copy; answers the copy as S3 described it (from the copy's own answer where that
/// says enough, else from a HEAD of it).
pub async fn copy_verified(
    access: &BucketAccess,
    source: &Source,
    bucket: &str,
    to: &str,
    sse: Option<&ServerSideEncryption>,
    copies: &CopySettings,
) -> Result<Head, CopyError> {
    let in_parts = copies.in_parts(source.size);
    if in_parts {
        // A copy in parts has an ETag of its parts: the HEAD below is what verifies it.
        let part_size = copies.part_size.max(source.size.div_ceil(MAX_PARTS));
        if part_size > MAX_COPY_OBJECT_BYTES {
            return Err(CopyError::TooLarge { size: source.size });
        }
        let at_once = copies.parts_at_once;
        let copied = access
            .copy_object_in_parts(source.copy_source(), bucket, to, source.size, part_size, at_once, sse)
            .await
            .map_err(|e| match e.code.as_deref() {
                Some("PreconditionFailed") => CopyError::Mismatch("the source changed while it was copied".to_owned()),
                _ => CopyError::Aws(e),
            })?;
        if let Some(expected) = copied.source_checksum {
            // S3 checked it at completion; a server that does not is checked here.
            // The copy's own version, where the bucket keeps versions ("null" where it does not).
            let version = copied.copy.version_id.as_deref().filter(|v| *v != "null");
            match access.full_object_checksum(bucket, to, version).await? {
                Some(found) if found != expected => {
                    return Err(CopyError::Mismatch(format!(
                        "{} {}, the copy's {} {}",
                        expected.algorithm, expected.value, found.algorithm, found.value
                    )));
                }
                Some(_) => {}
                None => tracing::debug!(key = to, "the copy has no checksum to compare; its size is compared"),
            }
        }
    } else {
        let copied = access.copy_object(source.copy_source(), bucket, to, sse).await?;
        if let (true, Some(last_modified_ms)) = (copied.etag == source.etag, copied.last_modified_ms) {
            // The same ETag is the same bytes: the copy is verified, and its answer describes it.
            return Ok(Head {
                version_id: copied.version_id,
                size: source.size,
                etag: copied.etag,
                last_modified_ms,
                // CopyObject writes STANDARD unless asked otherwise, and a new object has no restore.
                storage_class: None,
                restore: None,
                server_side_encryption: None,
            });
        }
    }
    let copy =
        access.head(bucket, to, None).await?.ok_or_else(|| CopyError::Mismatch("the copy is gone".to_owned()))?;
    verify(access, source, &copy, in_parts).await?;
    Ok(copy)
}

/// How much a check of a copy against its source proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// The same bytes: equal ETags (an MD5 of the bytes, or of the same parts).
    Bytes,
    /// The same size, where the ETags cannot be compared (SSE-KMS on either side, a source
    /// uploaded in parts, a copy made in parts): enough for a copy just made, not to tell a
    /// copy from another object of that size.
    Size,
}

/// Whether `copy` is a copy of `source`: by ETag where both are MD5s of the bytes, by size where
/// they cannot be (a copy made in parts has an ETag of its parts).
pub(crate) async fn verify(
    access: &BucketAccess,
    source: &Source,
    copy: &Head,
    in_parts: bool,
) -> Result<Evidence, CopyError> {
    if copy.size != source.size {
        return Err(CopyError::Mismatch(format!("{} bytes, the copy {}", source.size, copy.size)));
    }
    if copy.etag == source.etag {
        return Ok(Evidence::Bytes);
    }
    if in_parts || source.etag.contains('-') || is_kms(copy) {
        return Ok(Evidence::Size);
    }
    // The source's own encryption may explain the difference, or the listing's ETag was not the
    // source's latest (it changed since, and the copy is of what it is now).
    match access.head(&source.bucket, &source.key, source.version_id.as_deref()).await? {
        Some(head) if is_kms(&head) => Ok(Evidence::Size),
        Some(head) if head.size == copy.size && !head.etag.is_empty() && head.etag == copy.etag => Ok(Evidence::Bytes),
        _ => Err(CopyError::Mismatch(format!("ETag {}, the copy's {}", source.etag, copy.etag))),
    }
}

/// Whether `there`, found at `to` in `bucket` before a copy of `source` to it, already is that
/// copy: the same bytes by ETag or by full-object checksum, or, where neither can tell, a copy
/// of the same size that the job made itself before a stop (written after the second of
/// `since_ms`, when the job first started). Anything else is another object, which the job must
/// not take for its copy: a move would delete a source that was never copied. A copy of the
/// job's first second without a checksum counts as another object: a conflict reported, never
/// a source lost.
pub(crate) async fn holds_copy(
    access: &BucketAccess,
    source: &Source,
    bucket: &str,
    to: &str,
    there: &Head,
    in_parts: bool,
    since_ms: i64,
) -> Result<bool, CopyError> {
    match verify(access, source, there, in_parts).await {
        Ok(Evidence::Bytes) => Ok(true),
        // S3's times have whole seconds: one in the second the job started may be older.
        Ok(Evidence::Size) if there.last_modified_ms >= since_ms - since_ms.rem_euclid(1000) + 1000 => Ok(true),
        Ok(Evidence::Size) => {
            let there_version = there.version_id.as_deref().filter(|v| *v != "null");
            let (expected, found) = tokio::try_join!(
                access.full_object_checksum(&source.bucket, &source.key, source.version_id.as_deref()),
                access.full_object_checksum(bucket, to, there_version),
            )?;
            Ok(matches!((expected, found), (Some(expected), Some(found)) if expected == found))
        }
        Err(CopyError::Mismatch(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_kms(head: &Head) -> bool {
    head.server_side_encryption.as_deref().is_some_and(|s| s.starts_with("aws:kms"))
}

/// A folder's move: each object under `from` copied to the same place under `to`, verified,
/// and the sources of each page deleted together.
pub(crate) async fn move_folder(
    run: &mut Run<'_>,
    project: &Project,
    from: &str,
    to: &str,
    overwrite: bool,
) -> Result<(), Stop> {
    let inner = run.inner;
    run.count_totals(project, from).await?;
    let bucket = inner.buckets.open(project.configuration_id).await?;
    let sse = bucket.configuration.spec.server_side_encryption.clone();
    let name = project.bucket.as_str();
    let (from_prefix, to_prefix) = (format!("{}{from}", project.key_prefix), format!("{}{to}", project.key_prefix));
    let mut marker = None;
    let mut failures: Vec<(String, String)> = Vec::new();
    let batch = i32::try_from(MAX_DELETE_BATCH).unwrap_or(i32::MAX);
    let keep_since = Some(run.started_ms()).filter(|_| !overwrite);
    loop {
        let page = bucket
            .access
            .list_objects_page(name, &from_prefix, marker.as_ref(), batch)
            .await
            .map_err(|e| aws_stop(e, project))?;
        let mut copied: Vec<Source> = Vec::new();
        for chunk in page.entries.chunks(inner.settings.copies_at_once.max(1)) {
            run.pace().await;
            let mut copies = tokio::task::JoinSet::new();
            for entry in chunk {
                let source = Source {
                    bucket: name.to_owned(),
                    key: entry.key.clone(),
                    version_id: None,
                    size: entry.size,
                    etag: entry.etag.clone(),
                };
                let to_key = format!("{to_prefix}{}", entry.key.strip_prefix(&from_prefix).unwrap_or(&entry.key));
                let (access, bucket_name, sse) = (bucket.access.clone(), name.to_owned(), sse.clone());
                let settings = inner.settings.copies;
                copies.spawn(async move {
                    let outcome =
                        move_one(&access, &bucket_name, &source, &to_key, sse.as_ref(), keep_since, &settings).await;
                    (source, outcome)
                });
            }
            while let Some(done) = copies.join_next().await {
                let (source, outcome) = done.map_err(|e| Stop::Internal(Box::new(e)))?;
                let progress = run.progress();
                match outcome {
                    Ok(One::Copied) => copied.push(source),
                    Ok(One::Skipped) => progress.objects_skipped += 1,
                    Err(CopyError::Aws(e)) => return Err(aws_stop(e, project)),
                    Err(e) => {
                        progress.objects_failed += 1;
                        failures.push((source.key, e.to_string()));
                    }
                }
            }
            run.paced(chunk.len());
        }
        // The sources whose copies are verified go, a page at a time.
        let keys: Vec<String> = copied.iter().map(|s| s.key.clone()).collect();
        let not_deleted = bucket.access.delete_objects(name, &keys).await.map_err(|e| aws_stop(e, project))?;
        let progress = run.progress();
        for source in &copied {
            match not_deleted.iter().find(|n| n.key == source.key) {
                None => {
                    progress.objects_done += 1;
                    progress.bytes_done += source.size;
                }
                Some(refused) => {
                    progress.objects_failed += 1;
                    failures.push((
                        source.key.clone(),
                        format!("copied, but not deleted: {} ({})", refused.message, refused.code),
                    ));
                }
            }
        }
        run.step().await?;
        marker = page.next;
        if marker.is_none() {
            break;
        }
    }
    inner.sync.refresh_folder(project, from).await?;
    inner.sync.refresh_folder(project, to).await?;
    let progress = run.progress();
    progress.objects_total = Some(progress.objects_done + progress.objects_skipped + progress.objects_failed);
    let Some((key, reason)) = failures.first() else {
        return Ok(());
    };
    let key = key.strip_prefix(project.key_prefix.as_str()).unwrap_or(key);
    Err(Stop::Failed(Problem::objects_not_moved(
        failures.len() as u64,
        &format!("/{from}"),
        &format!("/{key}"),
        reason,
    )))
}

/// What became of one object of a folder's move.
enum One {
    Copied,
    /// Its destination holds something else, and the move does not overwrite: it stays.
    Skipped,
}

/// Moves `source` to `to`; `keep_since` is when the move first started where it keeps what its
/// destinations hold (it does not overwrite), `None` where it overwrites.
async fn move_one(
    access: &BucketAccess,
    bucket: &str,
    source: &Source,
    to: &str,
    sse: Option<&ServerSideEncryption>,
    keep_since: Option<i64>,
    copies: &CopySettings,
) -> Result<One, CopyError> {
    if let Some(since_ms) = keep_since
        && let Some(there) = access.head(bucket, to, None).await?
    {
        // The move's own copy, made before a stop, counts; anything else is left alone.
        let ours = holds_copy(access, source, bucket, to, &there, copies.in_parts(source.size), since_ms).await?;
        return Ok(if ours { One::Copied } else { One::Skipped });
    }
    copy_verified(access, source, bucket, to, sse, copies).await?;
    Ok(One::Copied)
}
