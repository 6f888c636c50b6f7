//! One file up: a single presigned PUT, or parts signed in batches and PUT at once, resumed
//! from the parts S3 already holds of an open upload of the same path and size. Every PUT's
//! ETag is checked against the MD5 of the bytes sent (where S3 answers an MD5: not under
//! SSE-KMS), and the completed file's size against the local one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use md5::{Digest, Md5};
use reqwest::header::CONTENT_LENGTH;
use serde_json::{Map, Value};

use super::body::{Hashed, SharedFile};
use super::retry::{is_expired, s3_error, with_retries};
use super::{Conflict, Context, Item, Outcome, hex, is_md5_etag};
use crate::api::Upload;
use crate::error::ClientError;

/// Parts signed by one API call.
const SIGNING_BATCH: usize = 200;

pub(super) async fn file(cx: &Arc<Context>, item: &Item) -> Outcome {
    match upload(cx, item).await {
        Ok(true) => Outcome::Done,
        Ok(false) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e),
    }
}

/// Uploads `item`; `false` when the conflict rule skipped it.
async fn upload(cx: &Arc<Context>, item: &Item) -> Result<bool, ClientError> {
    let overwrite = match cx.conflict {
        Conflict::Overwrite => true,
        Conflict::Refuse | Conflict::Skip => false,
        Conflict::IfSizeDiffers => match cx.remote.entry(&item.destination).await? {
            Some(entry) if !entry.is_folder() && entry.size == Some(item.size) => return Ok(false),
            _ => true,
        },
    };
    let file = SharedFile::open(Path::new(&item.source))?;
    let resumed = match item.size > cx.settings.part_size {
        true => resumable(cx, item).await?,
        false => None,
    };
    let upload = match resumed {
        Some(upload) => upload,
        None => match cx.remote.start_upload(&item.destination, item.size, cx.settings.part_size, overwrite).await {
            Err(ClientError::Api { problem, .. }) if problem.code == "file-exists" && cx.conflict == Conflict::Skip => {
                return Ok(false);
            }
            started => started?,
        },
    };
    let parts = match upload.is_multipart() {
        true => parts(cx, item, &file, &upload).await?,
        false => {
            single(cx, item, &file, upload.clone()).await?;
            Vec::new()
        }
    };
    let size = cx.remote.complete(&upload.id, &parts).await?;
    if size != item.size {
        return Err(ClientError::Integrity {
            path: item.destination.clone(),
            what: format!("the project holds {size} bytes where {} were sent", item.size),
        });
    }
    cx.progress.advanced(item, if upload.is_multipart() { 0 } else { item.size });
    Ok(true)
}

/// An open multipart upload of the same path and size, with the parts S3 holds.
async fn resumable(cx: &Context, item: &Item) -> Result<Option<Upload>, ClientError> {
    let open = cx.open_uploads.get_or_try_init(|| async { cx.remote.open_uploads().await }).await?;
    let Some(found) = open.iter().find(|u| u.is_multipart() && u.path == item.destination && u.size == item.size)
    else {
        return Ok(None);
    };
    match cx.remote.upload_state(&found.id).await {
        Ok(state) => Ok(Some(state)),
        // Completed or aborted since: start anew.
        Err(ClientError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One PUT of the whole file; an expired URL is replaced by a new upload's.
async fn single(cx: &Context, item: &Item, file: &SharedFile, upload: Upload) -> Result<(), ClientError> {
    let upload = tokio::sync::Mutex::new(upload);
    with_retries(cx.settings.attempts, |previous| {
        let expired = previous.is_some_and(is_expired);
        let upload = &upload;
        async move {
            let mut upload = upload.lock().await;
            if expired {
                *upload = cx.remote.start_upload(&item.destination, item.size, cx.settings.part_size, true).await?;
            }
            let url = upload.url.clone().ok_or_else(|| ClientError::Usage("the upload has no URL".to_owned()))?;
            put(cx, item, file, &url, &upload.headers, 0, item.size).await.map(drop)
        }
    })
    .await
}

/// The parts: those S3 holds whose bytes match the file are kept, the others signed in batches
/// and PUT, `concurrency` at once across all files. Answers (number, ETag) in order.
async fn parts(
    cx: &Arc<Context>,
    item: &Item,
    file: &SharedFile,
    upload: &Upload,
) -> Result<Vec<(u32, String)>, ClientError> {
    let mut done: BTreeMap<u32, String> = BTreeMap::new();
    for held in upload.parts.iter().flatten() {
        let (offset, len) = range(upload, held.part_number);
        if held.size == len
            && is_md5_etag(&held.e_tag)
            && hex(&file.md5(offset, len).await?) == held.e_tag.trim_matches('"')
        {
            done.insert(held.part_number, held.e_tag.clone());
            cx.progress.advanced(item, len);
        }
    }
    let missing: Vec<u32> = (1..=upload.part_count).filter(|n| !done.contains_key(n)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for batch in missing.chunks(SIGNING_BATCH) {
        // Signed when the parts before them are under way, so that URLs do not wait long.
        let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
        let signed = cx.remote.sign_parts(&upload.id, batch).await?;
        drop(_permit);
        for part in signed {
            let (cx, item, file, id) = (cx.clone(), item.clone(), file.clone(), upload.id.clone());
            let (offset, len) = range(upload, part.part_number);
            tasks.spawn(async move {
                let number = part.part_number;
                let signed = tokio::sync::Mutex::new(part);
                let e_tag = with_retries(cx.settings.attempts, |previous| {
                    let expired = previous.is_some_and(is_expired);
                    let (cx, item, file, id, signed) = (&cx, &item, &file, &id, &signed);
                    async move {
                        let mut signed = signed.lock().await;
                        if expired {
                            let again = cx.remote.sign_parts(id, &[signed.part_number]).await?;
                            *signed = again.into_iter().next().ok_or_else(|| {
                                ClientError::Usage(format!("part {} was not signed again", signed.part_number))
                            })?;
                        }
                        put(cx, item, file, &signed.url, &signed.headers, offset, len).await
                    }
                })
                .await?;
                cx.progress.advanced(&item, len);
                Ok::<_, ClientError>((number, e_tag))
            });
        }
        while let Some(ended) = tasks.try_join_next() {
            let (number, e_tag) = joined(ended)?;
            done.insert(number, e_tag);
        }
    }
    while let Some(ended) = tasks.join_next().await {
        let (number, e_tag) = joined(ended)?;
        done.insert(number, e_tag);
    }
    Ok(done.into_iter().collect())
}

fn joined<T>(ended: Result<Result<T, ClientError>, tokio::task::JoinError>) -> Result<T, ClientError> {
    match ended {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(stopped()),
    }
}

fn stopped() -> ClientError {
    ClientError::Usage("the transfer was stopped".to_owned())
}

/// Part `number`'s offset and length in the file.
fn range(upload: &Upload, number: u32) -> (u64, u64) {
    let offset = u64::from(number - 1) * upload.part_size;
    (offset, upload.part_size.min(upload.size.saturating_sub(offset)))
}

/// PUTs `len` bytes at `offset` to a presigned URL with its signed headers; the ETag S3
/// answered, checked against the bytes' MD5.
async fn put(
    cx: &Context,
    item: &Item,
    file: &SharedFile,
    url: &str,
    headers: &Map<String, Value>,
    offset: u64,
    len: u64,
) -> Result<String, ClientError> {
    let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
    let (body, hashed): (reqwest::Body, Hashed) = file.body(offset, len).await?;
    let mut request = cx.http.put(url).header(CONTENT_LENGTH, len).body(body);
    for (name, value) in headers {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    let http = |source: reqwest::Error| ClientError::Http { url: redact(url), source: source.without_url() };
    let response = request.send().await.map_err(http)?;
    if !response.status().is_success() {
        return Err(s3_error("PUT", &item.destination, response).await);
    }
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (e_tag, encryption) = (header("etag"), header("x-amz-server-side-encryption"));
    let sent = hashed.get().unwrap_or_else(|| Md5::digest([]).into());
    // Under SSE-KMS (and DSSE-KMS) an ETag is not the MD5 of the bytes.
    if !encryption.starts_with("aws:kms") && is_md5_etag(&e_tag) && e_tag.trim_matches('"') != hex(&sent) {
        return Err(ClientError::Integrity {
            path: item.destination.clone(),
            what: format!("S3 stored bytes whose MD5 is {e_tag}, not the {} that were sent", hex(&sent)),
        });
    }
    Ok(e_tag)
}

/// A presigned URL without its signature, for messages.
pub(super) fn redact(url: &str) -> String {
    url.split_once('?').map_or(url, |(base, _)| base).to_owned()
}
