//! One file down, into a temporary file beside the destination that is renamed over it only
//! when every byte arrived: one GET (its MD5 checked against a plain ETag), or ranged GETs of
//! `part_size` into a preallocated file, all of which must come from one object (one ETag).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc::Receiver;

use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use reqwest::header::RANGE;

use super::body::{MAX_CHUNKS, SharedFile};
use super::retry::{is_expired, s3_error, with_retries};
use super::upload::redact;
use super::{Conflict, Context, Item, Outcome, hex, is_md5_etag};
use crate::api::DownloadUrl;
use crate::error::ClientError;
use crate::remote::Remote;

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

/// Files whose URLs one call signs ahead.
const SIGN_BATCH: usize = 200;

/// Download URLs signed ahead, by the file's path in the project.
pub(crate) type Signed = Arc<std::sync::Mutex<HashMap<String, Result<DownloadUrl, ClientError>>>>;

/// Signs the walk's files in batches (whatever the walk has found, up to [`SIGN_BATCH`]) with
/// one call each, and passes them on: a folder of small files costs a call per batch instead
/// of one per file. A batch whose call fails is passed on unsigned; each file then asks alone.
pub(super) fn sign_ahead(
    remote: Arc<dyn Remote>,
    mut walked: Receiver<Item>,
    signed: Signed,
) -> (Receiver<Item>, tokio::task::JoinHandle<()>) {
    let (sender, items) = tokio::sync::mpsc::channel(SIGN_BATCH * 2);
    let task = tokio::spawn(async move {
        while let Some(first) = walked.recv().await {
            let mut batch = vec![first];
            while batch.len() < SIGN_BATCH {
                match walked.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let paths: Vec<String> = batch.iter().map(|item| item.source.clone()).collect();
            if let Ok(urls) = remote.download_urls(&paths).await
                && urls.len() == paths.len()
                && let Ok(mut signed) = signed.lock()
            {
                signed.extend(paths.into_iter().zip(urls));
            }
            for item in batch {
                if sender.send(item).await.is_err() {
                    return;
                }
            }
        }
    });
    (items, task)
}

/// Files up to this size come down into memory and are written in one step.
const IN_MEMORY: u64 = 1024 * 1024;
/// Bytes gathered from the network before one positioned write.
const WRITE_BUFFER: usize = 256 * 1024;

async fn download(cx: &Arc<Context>, item: &Item, destination: &Path, temporary: &Path) -> Result<bool, ClientError> {
    let conflict = cx.conflict;
    let in_memory = |size: u64| size <= IN_MEMORY.min(cx.settings.part_size);
    // A small file that replaces what is there, or fails if anything is, has its destination
    // checked in the step that writes it, after its GET: one trip to the blocking pool per file
    // instead of two (a refusal, an error, wastes at most a GET of `IN_MEMORY`). Whether to skip
    // is decided before anything comes down.
    let check_late = in_memory(item.size) && matches!(conflict, Conflict::Overwrite | Conflict::Refuse);
    if !check_late && !prepared(cx, destination, item.size).await? {
        return Ok(false);
    }
    let ahead = cx.signed.lock().ok().and_then(|mut signed| signed.remove(&item.source));
    let signed = match ahead {
        Some(signed) => signed?,
        None => cx.remote.download_url(&item.source).await?,
    };
    let size = signed.size;
    let url = tokio::sync::Mutex::new(signed.url);
    if in_memory(size) {
        let bytes = whole(cx, item, &url, None).await?;
        let (temporary, destination) = (temporary.to_owned(), destination.to_owned());
        return blocking(cx, move || {
            if check_late && !prepare(&destination, conflict, size)? {
                return Ok(false);
            }
            std::fs::write(&temporary, &bytes).map_err(ClientError::io(&temporary))?;
            std::fs::rename(&temporary, &destination).map_err(ClientError::io(&destination))?;
            Ok(true)
        })
        .await;
    }
    // The object grew since it was listed.
    if check_late && !prepared(cx, destination, size).await? {
        return Ok(false);
    }
    let file = blocking(cx, {
        let temporary = temporary.to_owned();
        move || SharedFile::create(&temporary, size)
    })
    .await?;
    if size <= cx.settings.part_size {
        whole(cx, item, &url, Some(&file)).await?;
    } else {
        ranges(cx, item, &file, url.into_inner(), size).await?;
    }
    // No fsync: like cp(1) and the S3 tools, the file is as durable as the file system makes a
    // rename; what the rename guarantees is that no reader ever sees a partial file.
    let (temporary, destination) = (temporary.to_owned(), destination.to_owned());
    blocking(cx, move || std::fs::rename(&temporary, &destination).map_err(ClientError::io(&destination))).await?;
    Ok(true)
}

/// [`prepare`] on the blocking pool.
async fn prepared(cx: &Context, destination: &Path, size: u64) -> Result<bool, ClientError> {
    let (destination, conflict) = (destination.to_owned(), cx.conflict);
    blocking(cx, move || prepare(&destination, conflict, size)).await
}

/// The local side: whether a file there is kept (`false`) or replaced, and the destination's
/// folder made.
fn prepare(destination: &Path, conflict: Conflict, size: u64) -> Result<bool, ClientError> {
    match std::fs::metadata(destination) {
        Ok(existing) if existing.is_dir() => {
            return Err(ClientError::Usage(format!("{} is a folder", destination.display())));
        }
        Ok(existing) => match conflict {
            Conflict::Overwrite => {}
            Conflict::Skip => return Ok(false),
            Conflict::IfSizeDiffers if existing.len() == size => return Ok(false),
            Conflict::IfSizeDiffers => {}
            Conflict::Refuse => return Err(ClientError::Exists { path: destination.display().to_string() }),
        },
        Err(_) => {}
    }
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        std::fs::create_dir_all(parent).map_err(ClientError::io(parent))?;
    }
    Ok(true)
}

/// Runs file-system work on the blocking pool, in one hop.
async fn blocking<T: Send + 'static>(
    cx: &Context,
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    let _permit = cx.local.acquire().await.map_err(|_| stopped())?;
    tokio::task::spawn_blocking(work).await.map_err(|e| ClientError::Usage(format!("a file operation stopped: {e}")))?
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

/// Writes a response's body at `offset` in buffered steps (into `file`), or gathers it (without
/// one); answers the bytes gathered and how many arrived.
async fn receive(
    item: &Item,
    url: &str,
    response: reqwest::Response,
    file: Option<&SharedFile>,
    offset: u64,
    hasher: Option<&mut Md5>,
) -> Result<(Vec<u8>, u64), ClientError> {
    let mut hasher = hasher;
    let mut gathered: Vec<u8> = Vec::new();
    if file.is_none() {
        // Bounded: the listed size may be stale, and only small files come down into memory.
        gathered.reserve_exact(usize::try_from(item.size.min(IN_MEMORY)).unwrap_or(0));
    }
    // The body's chunks as they came, written together once there are `WRITE_BUFFER` bytes. The
    // write runs on while the next chunks arrive, so the connection is read without pause (a
    // connection left unread makes the server send in small pieces); two lists take turns.
    let (mut pending, mut pending_len) = (Vec::new(), 0usize);
    let mut writing: Option<tokio::task::JoinHandle<Result<Vec<Bytes>, ClientError>>> = None;
    let mut written = 0u64;
    let mut stream = response.bytes_stream();
    let streamed: Result<(), ClientError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::Http { url: redact(url), source: e.without_url() })?;
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&chunk);
            }
            let Some(file) = file else {
                gathered.extend_from_slice(&chunk);
                continue;
            };
            pending_len += chunk.len();
            pending.push(chunk);
            if pending_len >= WRITE_BUFFER || pending.len() == MAX_CHUNKS {
                let spare = match writing.take() {
                    Some(write) => finished(write).await?,
                    None => Vec::new(),
                };
                let full = std::mem::replace(&mut pending, spare);
                let (file, at) = (file.clone(), offset + written);
                writing = Some(tokio::spawn(async move { file.write(at, full).await }));
                written += pending_len as u64;
                pending_len = 0;
            }
        }
        Ok(())
    }
    .await;
    // The write still running is waited for, after an error too: no write outlives its attempt
    // (a retry writes the same range again).
    let last = match writing {
        Some(write) => finished(write).await.map(drop),
        None => Ok(()),
    };
    streamed?;
    last?;
    if let Some(file) = file
        && !pending.is_empty()
    {
        file.write(offset + written, pending).await?;
        written += pending_len as u64;
    }
    Ok((gathered, written))
}

/// A write started by [`receive`], waited for: its list of chunks back, emptied.
async fn finished(write: tokio::task::JoinHandle<Result<Vec<Bytes>, ClientError>>) -> Result<Vec<Bytes>, ClientError> {
    match write.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(stopped()),
    }
}

/// One GET, its MD5 checked against a plain ETag: written into `file`, or answered in memory.
async fn whole(
    cx: &Context,
    item: &Item,
    url: &tokio::sync::Mutex<String>,
    file: Option<&SharedFile>,
) -> Result<Vec<u8>, ClientError> {
    with_retries(cx.settings.attempts, |previous| {
        let expired = previous.is_some_and(is_expired);
        async move {
            let url = current_url(cx, item, url, expired).await?;
            let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
            let response = get(cx, item, &url, None).await?;
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (e_tag, encryption) = (header("etag"), header("x-amz-server-side-encryption"));
            let mut hasher = Md5::new();
            let (bytes, written) = receive(item, &url, response, file, 0, Some(&mut hasher)).await?;
            let arrived = written + bytes.len() as u64;
            if arrived != item.size {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("{arrived} bytes arrived where the file has {}", item.size),
                });
            }
            let got = hex(&hasher.finalize());
            if !encryption.starts_with("aws:kms") && is_md5_etag(&e_tag) && e_tag.trim_matches('"') != got {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("the bytes that arrived have the MD5 {got}, S3's ETag is {e_tag}"),
                });
            }
            cx.progress.advanced(item, arrived);
            Ok(bytes)
        }
    })
    .await
}

/// Ranged GETs of `part_size`, all started at once and `concurrency` in flight across all
/// files; every range must come from the same object (one ETag), so that a file replaced
/// meanwhile fails instead of mixing two versions.
async fn ranges(cx: &Arc<Context>, item: &Item, file: &SharedFile, url: String, size: u64) -> Result<(), ClientError> {
    let part = cx.settings.part_size;
    let url = Arc::new(tokio::sync::Mutex::new(url));
    let mut tasks = tokio::task::JoinSet::new();
    let mut offset = 0;
    while offset < size {
        let len = part.min(size - offset);
        let (cx, item, file, url) = (cx.clone(), item.clone(), file.clone(), url.clone());
        tasks.spawn(async move { range(&cx, &item, &file, &url, offset, len).await });
        offset += len;
    }
    let mut seen: Option<String> = None;
    while let Some(ended) = tasks.join_next().await {
        let e_tag = match ended {
            Ok(result) => result?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Err(stopped()),
        };
        match &seen {
            Some(first) if *first != e_tag => {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: "the file changed in the project while it was downloaded; download it again".to_owned(),
                });
            }
            Some(_) => {}
            None => seen = Some(e_tag),
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
) -> Result<String, ClientError> {
    let got = with_retries(cx.settings.attempts, |previous| {
        let expired = previous.is_some_and(is_expired);
        async move {
            let url = current_url(cx, item, url, expired).await?;
            let _permit = cx.requests.acquire().await.map_err(|_| stopped())?;
            let response = get(cx, item, &url, Some((offset, len))).await?;
            let seen = response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (_, written) = receive(item, &url, response, Some(file), offset, None).await?;
            if written != len {
                return Err(ClientError::Integrity {
                    path: item.source.clone(),
                    what: format!("{written} bytes arrived at {offset} where {len} were asked for"),
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
) -> Result<reqwest::Response, ClientError> {
    let mut request = cx.http.get(url);
    if let Some((offset, len)) = range {
        request = request.header(RANGE, format!("bytes={offset}-{}", offset + len - 1));
    }
    let response =
        request.send().await.map_err(|source| ClientError::Http { url: redact(url), source: source.without_url() })?;
    if !response.status().is_success() {
        return Err(s3_error("GET", &item.source, response).await);
    }
    Ok(response)
}

fn stopped() -> ClientError {
    ClientError::Usage("the transfer was stopped".to_owned())
}
