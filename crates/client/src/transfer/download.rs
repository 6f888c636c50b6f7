//! One file down, into a temporary file beside the destination that is renamed over it only
//! when every byte arrived: one GET (its MD5 checked against a plain ETag), or ranged GETs of
//! `part_size` into a preallocated file, each pinned to the same object by `If-Match`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use md5::{Digest, Md5};
use reqwest::header::{IF_MATCH, RANGE};

use super::body::SharedFile;
use super::retry::{is_expired, s3_error, with_retries};
use super::upload::redact;
use super::{Conflict, Context, Item, Outcome, hex, is_md5_etag};
use crate::error::ClientError;

pub(super) async fn file(cx: &Arc<Context>, item: &Item) -> Outcome {
    let destination = PathBuf::from(&item.destination);
    let temporary = temporary_name(&destination);
    let result = download(cx, item, &destination, &temporary).await;
    if !matches!(result, Ok(true)) {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    match result {
        Ok(true) => Outcome::Done,
        Ok(false) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e),
    }
}

/// `.{name}.byos-download` beside the destination: on the same file system, so the rename at
/// the end is atomic, and hidden.
fn temporary_name(destination: &Path) -> PathBuf {
    let name = destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    destination.with_file_name(format!(".{name}.byos-download"))
}

async fn download(cx: &Arc<Context>, item: &Item, destination: &Path, temporary: &Path) -> Result<bool, ClientError> {
    match tokio::fs::metadata(destination).await {
        Ok(existing) if existing.is_dir() => {
            return Err(ClientError::Usage(format!("{} is a folder", destination.display())));
        }
        Ok(existing) => match cx.conflict {
            Conflict::Overwrite => {}
            Conflict::Skip => return Ok(false),
            Conflict::IfSizeDiffers if existing.len() == item.size => return Ok(false),
            Conflict::IfSizeDiffers => {}
            Conflict::Refuse => return Err(ClientError::Exists { path: destination.display().to_string() }),
        },
        Err(_) => {}
    }
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(ClientError::io(parent))?;
    }
    let signed = cx.remote.download_url(&item.source).await?;
    let size = signed.size;
    let file = SharedFile::create(temporary, size)?;
    let url = tokio::sync::Mutex::new(signed.url);
    if size <= cx.settings.part_size {
        whole(cx, item, &file, &url).await?;
    } else {
        ranges(cx, item, &file, url.into_inner(), size).await?;
    }
    file.sync().await?;
    tokio::fs::rename(temporary, destination).await.map_err(ClientError::io(destination))?;
    Ok(true)
}

/// The URL to GET: signed again when the one before expired.
async fn current_url(
    cx: &Context,
    item: &Item,
    url: &tokio::sync::Mutex<String>,
    expired: bool,
) -> Result<String, ClientError> {
    let mut url = url.lock().await;
    if expired {
        *url = cx.remote.download_url(&item.source).await?.url;
    }
    Ok(url.clone())
}

/// One GET, written as it arrives, its MD5 checked against a plain ETag.
async fn whole(
    cx: &Context,
    item: &Item,
    file: &SharedFile,
    url: &tokio::sync::Mutex<String>,
) -> Result<(), ClientError> {
    with_retries(cx.settings.attempts, |previous| {
        let expired = previous.is_some_and(is_expired);
        async move {
            let url = current_url(cx, item, url, expired).await?;
            let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
            let response = get(cx, item, &url, None, None).await?;
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (e_tag, encryption) = (header("etag"), header("x-amz-server-side-encryption"));
            let mut hasher = Md5::new();
            let mut offset = 0u64;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ClientError::Http { url: redact(&url), source: e.without_url() })?;
                hasher.update(&chunk);
                let n = chunk.len() as u64;
                file.write(offset, chunk).await?;
                offset += n;
            }
            if offset != item.size {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("{offset} bytes arrived where the file has {}", item.size),
                });
            }
            let got = hex(&hasher.finalize());
            if !encryption.starts_with("aws:kms") && is_md5_etag(&e_tag) && e_tag.trim_matches('"') != got {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("the bytes that arrived have the MD5 {got}, S3's ETag is {e_tag}"),
                });
            }
            cx.progress.advanced(item, offset);
            Ok(())
        }
    })
    .await
}

/// Ranged GETs of `part_size`, `concurrency` at once across all files, each pinned by
/// `If-Match` to the ETag the first one saw, so that a file replaced meanwhile fails instead of
/// mixing two versions.
async fn ranges(cx: &Arc<Context>, item: &Item, file: &SharedFile, url: String, size: u64) -> Result<(), ClientError> {
    let part = cx.settings.part_size;
    let url = Arc::new(tokio::sync::Mutex::new(url));
    let first = range(cx, item, file, &url, 0, part.min(size), None).await?;
    let e_tag = Arc::new(first);
    let mut tasks = tokio::task::JoinSet::new();
    let mut offset = part;
    while offset < size {
        let len = part.min(size - offset);
        let (cx, item, file, url, e_tag) = (cx.clone(), item.clone(), file.clone(), url.clone(), e_tag.clone());
        tasks.spawn(async move { range(&cx, &item, &file, &url, offset, len, Some(&e_tag)).await.map(drop) });
        offset += len;
    }
    while let Some(ended) = tasks.join_next().await {
        match ended {
            Ok(result) => result?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Err(stopped()),
        }
    }
    Ok(())
}

/// One range, retried; the object's ETag.
async fn range(
    cx: &Context,
    item: &Item,
    file: &SharedFile,
    url: &tokio::sync::Mutex<String>,
    offset: u64,
    len: u64,
    e_tag: Option<&str>,
) -> Result<String, ClientError> {
    let got = with_retries(cx.settings.attempts, |previous| {
        let expired = previous.is_some_and(is_expired);
        async move {
            let url = current_url(cx, item, url, expired).await?;
            let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
            let response = get(cx, item, &url, Some((offset, len)), e_tag).await?;
            let seen = response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let mut at = offset;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ClientError::Http { url: redact(&url), source: e.without_url() })?;
                let n = chunk.len() as u64;
                if at + n > offset + len {
                    return Err(ClientError::Integrity {
                        path: item.source.clone(),
                        what: format!("S3 sent more than the {len} bytes asked for at {offset}"),
                    });
                }
                file.write(at, chunk).await?;
                at += n;
            }
            if at != offset + len {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("{} bytes arrived at {offset} where {len} were asked for", at - offset),
                });
            }
            Ok(seen)
        }
    })
    .await?;
    cx.progress.advanced(item, len);
    Ok(got)
}

async fn get(
    cx: &Context,
    item: &Item,
    url: &str,
    range: Option<(u64, u64)>,
    e_tag: Option<&str>,
) -> Result<reqwest::Response, ClientError> {
    let mut request = cx.http.get(url);
    if let Some((offset, len)) = range {
        request = request.header(RANGE, format!("bytes={offset}-{}", offset + len - 1));
    }
    if let Some(e_tag) = e_tag {
        request = request.header(IF_MATCH, e_tag);
    }
    let response =
        request.send().await.map_err(|source| ClientError::Http { url: redact(url), source: source.without_url() })?;
    if response.status().as_u16() == 412 {
        return Err(ClientError::Integrity {
            path: item.source.clone(),
            what: "the file changed in the project while it was downloaded; download it again".to_owned(),
        });
    }
    if !response.status().is_success() {
        return Err(s3_error("GET", &item.source, response).await);
    }
    Ok(response)
}

fn stopped() -> ClientError {
    ClientError::Usage("the transfer was stopped".to_owned())
}
