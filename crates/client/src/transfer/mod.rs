//! Transfers between local files and a project, straight to S3 over presigned URLs: uploads
//! (one PUT, or parts signed in batches, resumed from the parts S3 holds) and downloads (one
//! GET, or ranged GETs into a preallocated file renamed at the end). `concurrency` requests are
//! in flight across all files; a tree is walked while its first files already move.

mod body;
mod download;
mod retry;
mod upload;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use walk::{Filters, relative_destination};

use crate::error::ClientError;
use crate::remote::Remote;

pub const MIB: u64 = 1024 * 1024;

/// Files the walk may find before the transfers take them.
const WALK_AHEAD: usize = 16 * 1024;

/// File-system steps at once: about the cores that can run them.
const LOCAL_STEPS: usize = 4;

/// Files under way per request permit.
const FILES_PER_REQUEST: usize = 4;

/// How transfers run.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// Requests (single PUTs or GETs, parts, ranges) in flight at once, across all files.
    pub concurrency: usize,
    /// Files above this size go in parts (and come down in ranges) of this size.
    pub part_size: u64,
    /// Attempts of a request that fails in a way that may pass (throttling, 5xx, a dropped
    /// connection, an expired URL).
    pub attempts: u32,
}

impl Default for TransferSettings {
    fn default() -> TransferSettings {
        TransferSettings { concurrency: 32, part_size: 16 * MIB, attempts: 6 }
    }
}

/// What to do when the destination already has a file of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Fail the file (the default: nothing is replaced unless asked).
    Refuse,
    Overwrite,
    /// Leave the existing file and skip this one.
    Skip,
    /// Replace the existing file when its size differs; skip it otherwise.
    IfSizeDiffers,
}

/// One file to move: where from, where to, how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// A local path (uploads) or a path in the project (downloads).
    pub source: String,
    /// A path in the project (uploads) or a local path (downloads).
    pub destination: String,
    pub size: u64,
}

/// How one file ended.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// Not moved: it exists at the destination and the conflict rule says leave it.
    Skipped,
    Failed(ClientError),
}

/// What a person or a script sees of a transfer as it runs.
pub trait Progress: Send + Sync {
    /// A file is known, before it moves (also in a dry run, where nothing moves).
    fn planned(&self, item: &Item);
    /// A file starts moving.
    fn started(&self, item: &Item);
    /// `n` more bytes of `item` arrived.
    fn advanced(&self, item: &Item, n: u64);
    fn finished(&self, item: &Item, outcome: &Outcome);
}

/// The end of a transfer.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
    /// Each file that failed, with its error.
    pub failed: Vec<(Item, ClientError)>,
}

/// A local path to a path in the project, or a path in the project to a local path.
#[derive(Debug, Clone)]
pub enum Direction {
    Upload { from: PathBuf, to: String },
    Download { from: String, to: PathBuf },
}

/// A transfer: what moves, and how.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub direction: Direction,
    /// The source is a folder whose contents go into the destination folder.
    pub recursive: bool,
    pub filters: Filters,
    pub conflict: Conflict,
    /// Plan and report, move nothing.
    pub dry_run: bool,
    pub settings: TransferSettings,
}

/// What every file's task shares.
pub(crate) struct Context {
    pub(crate) remote: Arc<dyn Remote>,
    pub(crate) http: reqwest::Client,
    pub(crate) settings: TransferSettings,
    pub(crate) conflict: Conflict,
    /// One permit per request in flight.
    pub(crate) requests: Semaphore,
    pub(crate) progress: Arc<dyn Progress>,
    /// The project's open uploads, read once when a file could resume one.
    pub(crate) open_uploads: tokio::sync::OnceCell<Vec<crate::api::Upload>>,
    /// Download URLs signed ahead in batches, by the file's path, taken by its task.
    pub(crate) signed: download::Signed,
    /// One permit per file-system step (create, write, rename) on the blocking pool: many at
    /// once in one folder only contend for the folder's lock in the kernel.
    pub(crate) local: Semaphore,
}

impl Transfer {
    /// Runs the transfer: files stream from the walk into file tasks (a few per request permit),
    /// whose requests share `concurrency` permits. Errors of single files are in the summary;
    /// an error of the whole (the source cannot be read) is returned.
    pub async fn run(
        &self,
        remote: Arc<dyn Remote>,
        http: reqwest::Client,
        progress: Arc<dyn Progress>,
    ) -> Result<Summary, ClientError> {
        let concurrency = self.settings.concurrency.max(1);
        // The walk may run this far ahead of the transfers, so that listing a project's pages
        // (or a slow disk's folders) overlaps the files moving; a few MiB at most.
        let (sender, walked) = tokio::sync::mpsc::channel::<Item>(WALK_AHEAD);
        let walker = match &self.direction {
            Direction::Upload { from, to } => {
                walk::local(from.clone(), to.clone(), self.recursive, self.filters.clone(), sender)?
            }
            Direction::Download { from, to } => {
                walk::remote(remote.clone(), from.clone(), to.clone(), self.recursive, self.filters.clone(), sender)
            }
        };
        let signed = download::Signed::default();
        let (mut items, signer) = match &self.direction {
            Direction::Download { .. } if !self.dry_run && remote.signs_in_batches() => {
                let (items, signer) = download::sign_ahead(remote.clone(), walked, signed.clone());
                (items, Some(signer))
            }
            _ => (walked, None),
        };
        let context = Arc::new(Context {
            remote,
            http,
            settings: self.settings.clone(),
            conflict: self.conflict,
            requests: Semaphore::new(concurrency),
            progress: progress.clone(),
            open_uploads: tokio::sync::OnceCell::new(),
            signed,
            local: Semaphore::new(LOCAL_STEPS),
        });
        // More files than requests are under way, so that each file's local work (opening,
        // reading, writing, renaming) and its signing overlap other files' requests: the
        // request permits, not the files, bound what is in flight.
        let files = Arc::new(Semaphore::new(concurrency * FILES_PER_REQUEST));
        let mut tasks = tokio::task::JoinSet::new();
        let mut summary = Summary::default();
        while let Some(item) = items.recv().await {
            progress.planned(&item);
            if self.dry_run {
                summary.files += 1;
                summary.bytes += item.size;
                continue;
            }
            let permit = files.clone().acquire_owned().await.map_err(|_| closed())?;
            let (context, upload) = (context.clone(), matches!(self.direction, Direction::Upload { .. }));
            tasks.spawn(async move {
                context.progress.started(&item);
                let outcome =
                    if upload { upload::file(&context, &item).await } else { download::file(&context, &item).await };
                context.progress.finished(&item, &outcome);
                drop(permit);
                (item, outcome)
            });
            while let Some(ended) = tasks.try_join_next() {
                tally(&mut summary, ended);
            }
        }
        while let Some(ended) = tasks.join_next().await {
            tally(&mut summary, ended);
        }
        walker.await.map_err(|_| closed())??;
        if let Some(signer) = signer {
            signer.await.map_err(|_| closed())?;
        }
        Ok(summary)
    }
}

fn tally(summary: &mut Summary, ended: Result<(Item, Outcome), tokio::task::JoinError>) {
    match ended {
        Ok((item, Outcome::Done)) => {
            summary.files += 1;
            summary.bytes += item.size;
        }
        Ok((_, Outcome::Skipped)) => summary.skipped += 1,
        Ok((item, Outcome::Failed(e))) => summary.failed.push((item, e)),
        // A file's task panicked: a defect, which must not pass as a success.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn closed() -> ClientError {
    ClientError::Usage("the transfer was stopped".to_owned())
}

/// Whether an ETag is a plain MD5 (a single PUT without SSE-KMS), which the bytes can be
/// checked against.
pub(crate) fn is_md5_etag(e_tag: &str) -> bool {
    let hex = e_tag.trim_matches('"');
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An MD5 as S3 writes it in an ETag: lowercase hex.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
