//! Reconcile: a streaming listing of a project's prefix merged with the catalog's keys, both in
//! byte order, a page of each at a time, so memory stays bounded whatever the bucket's size.
//! Keys S3 shows are applied as observations; keys only the catalog has are observed empty.
//!
//! It is fenced: the run takes the project's revision when it starts, and a key that an event
//! changed after that is left as the event made it (the store skips the observation). The run
//! counts what it found different (added, removed, changed, with samples) and records its
//! progress as it goes.

use std::collections::VecDeque;

use byos_aws::{BucketAccess, ListedVersion, Manifest, ReportError, ReportRows};
use byos_catalog::{DeadLetter, Drift, KeyUpdate, Project, ReconcileRun, ReconcileStatus, StoredKey, storable_key};
use byos_domain::is_probe_key;
use byos_domain::objects::{Applied, KeyState};
use byos_domain::{ErrorChain, VersioningState};
use time::OffsetDateTime;

use crate::partitions::{Page, Pages, Plan};
use crate::{Inner, SyncError, inventory, lookup};

/// Keys per catalog page and applied batch.
const PAGE: u32 = 1000;

/// How long a tombstone is kept: longer than a message can stay in the queue (four days), so
/// that no event older than the removal can still arrive.
const TOMBSTONE_LIFE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where a merge's pages come from: the bucket's listing, or an inventory report's rows, all as
/// of the time S3 began the report.
enum Source {
    Bucket(Pages),
    Report { pages: ReportPages, started_ms: i64 },
}

impl Source {
    async fn next(&mut self) -> Result<Option<Page>, SyncError> {
        match self {
            Source::Bucket(pages) => pages.next().await,
            Source::Report { pages, started_ms } => match pages.pages.recv().await {
                None => Ok(None),
                Some(page) => {
                    let entries = page.map_err(SyncError::Report)?;
                    Ok(Some(Page { entries, started_ms: *started_ms, ends_piece: false }))
                }
            },
        }
    }
}

/// A report's pages, downloaded, decompressed and parsed in a task of their own up to
/// [`REPORT_AHEAD`] pages ahead of the merge, as a listing's pieces run ahead of it.
struct ReportPages {
    pages: tokio::sync::mpsc::Receiver<Result<Vec<ListedVersion>, ReportError>>,
    task: tokio::task::JoinHandle<()>,
}

/// Pages of a report read ahead of the merge.
const REPORT_AHEAD: usize = 2;

impl ReportPages {
    fn spawn(mut rows: ReportRows) -> ReportPages {
        let (send, pages) = tokio::sync::mpsc::channel(REPORT_AHEAD);
        let task = tokio::spawn(async move {
            while let Some(page) = rows.next_page(PAGE as usize).await.transpose() {
                let failed = page.is_err();
                if send.send(page).await.is_err() || failed {
                    break;
                }
            }
        });
        ReportPages { pages, task }
    }
}

impl Drop for ReportPages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The listing as a stream of keys, each with its entries (newest first), in key order.
struct Listing {
    pages: Source,
    /// The project's prefix, which keys are relative to.
    prefix: String,
    done: bool,
    /// Entries not yet handed out. A key's entries may continue on the next page, so a key is
    /// handed out only once the next key has started.
    buffer: VecDeque<Buffered>,
    /// When the pages were asked for that cover the keys after the last entry so far: the
    /// earliest of the last page, if it ends its piece, and of the empty pages after it.
    gap_started: i64,
    /// The `as_of` of what the last pages say of the keys after the last listed key.
    last_as_of: i64,
}

struct Buffered {
    entry: ListedVersion,
    /// When its page was asked for.
    started: i64,
    /// When the pages were asked for that say no key lies between the previous entry and it.
    gap_started: i64,
}

impl Listing {
    async fn fill(&mut self) -> Result<(), SyncError> {
        let Some(page) = self.pages.next().await? else {
            self.done = true;
            return Ok(());
        };
        let started = page.started_ms;
        let gap = self.gap_started.min(started);
        let listed_any = !page.entries.is_empty();
        for (i, entry) in page.entries.into_iter().enumerate() {
            self.buffer.push_back(Buffered { entry, started, gap_started: if i == 0 { gap } else { started } });
        }
        self.gap_started = match (listed_any, page.ends_piece) {
            (true, true) => started,
            (true, false) => i64::MAX,
            (false, _) => gap,
        };
        self.last_as_of = lookup::as_of(self.gap_started.min(started));
        Ok(())
    }

    /// The next key (relative to the prefix), its entries, and the `as_of` of their listing.
    async fn next(&mut self) -> Result<Option<Listed>, SyncError> {
        loop {
            let Some(first) = self.buffer.front() else {
                if self.done {
                    return Ok(None);
                }
                self.fill().await?;
                continue;
            };
            let key = first.entry.key.clone();
            if !self.done && self.buffer.iter().all(|b| b.entry.key == key) {
                self.fill().await?;
                continue;
            }
            let mut entries = Vec::new();
            let (mut started, mut gap_started) = (i64::MAX, i64::MAX);
            while let Some(buffered) = self.buffer.pop_front_if(|b| b.entry.key == key) {
                started = started.min(buffered.started);
                gap_started = gap_started.min(buffered.gap_started);
                entries.push(buffered.entry);
            }
            let relative = key.strip_prefix(self.prefix.as_str()).unwrap_or(&key).to_owned();
            return Ok(Some(Listed {
                key: relative,
                entries,
                as_of: lookup::as_of(started),
                gap_as_of: lookup::as_of(gap_started.min(started)),
            }));
        }
    }
}

/// One key of the listing.
#[derive(Default)]
struct Listed {
    key: String,
    entries: Vec<ListedVersion>,
    /// The `as_of` of its entries.
    as_of: i64,
    /// The `as_of` of what the listing says of the keys between the previous listed key and it:
    /// that there are none.
    gap_as_of: i64,
}

/// The catalog's keys as a stream, a page at a time: every key of the project, or those in a
/// folder.
struct Catalog<'a> {
    inner: &'a Inner,
    project: uuid::Uuid,
    /// The folder the keys are in (`""` for all).
    within: &'a str,
    buffer: VecDeque<StoredKey>,
    after: Option<String>,
    done: bool,
}

impl<'a> Catalog<'a> {
    fn new(inner: &'a Inner, project: uuid::Uuid, within: &'a str) -> Catalog<'a> {
        // The greatest key before the folder's first is below it in byte order: the folder
        // without its final `/` (a key ending there sorts before every key in the folder).
        let after = within.strip_suffix('/').map(str::to_owned);
        Catalog { inner, project, within, buffer: VecDeque::new(), after, done: false }
    }

    async fn peek(&mut self) -> Result<Option<&StoredKey>, SyncError> {
        loop {
            if self.buffer.is_empty() && !self.done {
                let page = self.inner.store.data.keys(self.project, self.after.as_deref(), PAGE).await?;
                self.done = page.len() < PAGE as usize;
                self.after = page.last().map(|k| k.key.clone());
                self.buffer.extend(page);
            }
            let Some(first) = self.buffer.front() else { return Ok(None) };
            if first.key.starts_with(self.within) {
                return Ok(self.buffer.front());
            }
            if first.key.as_str() > self.within {
                // Past the folder: nothing of it comes any more.
                (self.buffer, self.done) = (VecDeque::new(), true);
                return Ok(None);
            }
            // Before the folder (`a/b.txt` sorts between `a/b` and `a/b/`).
            self.buffer.pop_front();
        }
    }
}

/// Runs a reconcile of `project` to its end, recording progress and the drift in `run`: from
/// an inventory report where one fits (then the keys changed since it), else from a listing.
pub(crate) async fn run(inner: &Inner, project: &Project, run: &mut ReconcileRun) -> Result<(), SyncError> {
    let byos_buckets::OpenBucket { configuration, access } = inner.buckets.open(project.configuration_id).await?;
    if let Some(manifest) = inventory::baseline(inner, project, &configuration, &access, &run.reason).await {
        // The keys changed since the report first: what S3 holds of them now is newer than the
        // report, so the merge's (fenced) observations of them then change nothing.
        run.baseline = Some(manifest.key.clone());
        inventory::catch_up(inner, project, &access, configuration.versioning, &manifest, run).await?;
        let from = KeysFrom::Report(&manifest);
        match merge(inner, project, &access, "", run, Record::Progress, from).await {
            Ok(()) => return Ok(()),
            // What the report showed is applied and true as of its time; the listing finishes
            // the run.
            Err(SyncError::Report(e)) => {
                tracing::warn!(project = %project.id, report = %manifest.key, error = %ErrorChain(&e), "the inventory report cannot be used; listing the prefix");
                (run.listed, run.baseline) = (0, None);
            }
            Err(e) => return Err(e),
        }
    }
    let versioned = is_versioned(configuration.versioning);
    merge(inner, project, &access, "", run, Record::Progress, KeysFrom::Bucket { versioned }).await
}

fn is_versioned(versioning: Option<VersioningState>) -> bool {
    matches!(versioning, Some(VersioningState::Enabled | VersioningState::Suspended))
}

/// What a merge reads the bucket's keys from.
#[derive(Clone, Copy)]
enum KeysFrom<'a> {
    Bucket { versioned: bool },
    Report(&'a Manifest),
}

/// Brings the catalog of one folder of `project` in line with the bucket at once (after a job
/// changed it), fenced like a run but not recorded as one; answers the drift it found.
pub(crate) async fn refresh(inner: &Inner, project: &Project, folder: &str) -> Result<Drift, SyncError> {
    let mut run = start_run(inner, project, "folder refresh").await?;
    let byos_buckets::OpenBucket { configuration, access } = inner.buckets.open(project.configuration_id).await?;
    let from = KeysFrom::Bucket { versioned: is_versioned(configuration.versioning) };
    merge(inner, project, &access, folder, &mut run, Record::Nothing, from).await?;
    Ok(run.drift)
}

/// Whether a merge records its progress in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Progress,
    Nothing,
}

/// The merge of the listing of `within` (a folder of the project, or all of it) with the
/// catalog's keys there.
async fn merge(
    inner: &Inner,
    project: &Project,
    access: &BucketAccess,
    within: &str,
    run: &mut ReconcileRun,
    record: Record,
    from: KeysFrom<'_>,
) -> Result<(), SyncError> {
    let prefix = format!("{}{within}", project.key_prefix);
    let pages = match from {
        KeysFrom::Bucket { versioned } => {
            let plan = Plan {
                bucket: project.bucket.as_str().to_owned(),
                prefix,
                versions: versioned,
                concurrency: inner.settings.listing_concurrency,
                page_size: PAGE as i32,
            };
            Source::Bucket(Pages::new(access.clone(), plan))
        }
        KeysFrom::Report(manifest) => {
            let rows = access.report_rows(manifest, &prefix).await.map_err(SyncError::Report)?;
            Source::Report { pages: ReportPages::spawn(rows), started_ms: manifest.created_ms }
        }
    };
    let mut listing = Listing {
        pages,
        prefix: project.key_prefix.as_str().to_owned(),
        done: false,
        buffer: VecDeque::new(),
        gap_started: i64::MAX,
        last_as_of: lookup::as_of(lookup::now_ms()),
    };
    let mut catalog = Catalog::new(inner, project.id, within);
    let mut batch: Vec<KeyUpdate> = Vec::new();
    let mut listed = listing.next().await?;
    loop {
        let stored = catalog.peek().await?.map(|k| k.key.clone());
        // The smaller key of the two streams goes first; on a tie, both.
        let take_listed = match (&listed, &stored) {
            (None, None) => break,
            (Some(l), Some(s)) => l.key <= *s,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let take_stored = match (&listed, &stored) {
            (Some(l), Some(s)) => *s <= l.key,
            (_, stored) => stored.is_some() && !take_listed,
        };
        let state = if take_stored { catalog.buffer.pop_front() } else { None };
        let seen = if take_listed {
            let current = listed.take();
            listed = listing.next().await?;
            current
        } else {
            None
        };
        let key = match (&seen, &state) {
            (Some(l), _) => l.key.clone(),
            (None, Some(s)) => s.key.clone(),
            (None, None) => continue,
        };
        // The project folder's own marker and validation's probes are not data.
        if key.is_empty() || is_probe_key(&key) {
            continue;
        }
        // A key the store cannot keep is left out, with a dead letter, rather than fail the run
        // (and every run after it) at its flush.
        if !storable_key(&key) {
            run.drift.skipped(&key);
            skip(inner, project, &key).await?;
            continue;
        }
        let observation = match &seen {
            Some(l) => {
                run.listed += 1;
                // Progress shows while the run goes, a page at a time.
                if run.listed.is_multiple_of(u64::from(PAGE)) {
                    flush(inner, project, run, &mut batch, record).await?;
                }
                lookup::observation(l.as_of, &l.entries)
            }
            // Not listed: S3 held none of it when the page that would hold it was asked for,
            // the page of the next listed key (or the last page).
            None => lookup::observation(listed.as_ref().map_or(listing.last_as_of, |l| l.gap_as_of), &[]),
        };
        let before = state.as_ref().map(|s| s.state.clone()).unwrap_or_default();
        let mut after: KeyState = before.clone();
        let _ = after.observe(&observation);
        // Tombstones are kept only while late events can still come.
        let mut pruned = after.clone();
        let prune = pruned.prune_tombstones(lookup::now_ms() - TOMBSTONE_LIFE_MS) == Applied::Changed;
        if before == after && !prune {
            continue;
        }
        note_drift(&mut run.drift, &key, &before, &after);
        if before != after {
            batch.push(KeyUpdate::Observed { key: key.clone(), observation, fence: Some(run.fence) });
        }
        if prune {
            batch.push(KeyUpdate::Prune { key, older_than_ms: lookup::now_ms() - TOMBSTONE_LIFE_MS });
        }
        if batch.len() >= PAGE as usize {
            flush(inner, project, run, &mut batch, record).await?;
        }
    }
    flush(inner, project, run, &mut batch, record).await
}

/// Keeps a dead letter for a listed key the store cannot keep, once per run.
async fn skip(inner: &Inner, project: &Project, key: &str) -> Result<(), SyncError> {
    let letter = DeadLetter {
        id: uuid::Uuid::new_v4(),
        queue: format!("reconcile:{}", project.id),
        message_id: key.escape_default().to_string(),
        body: format!("s3://{}/{}{}", project.bucket, project.key_prefix.as_str(), key.escape_default()),
        error: "the key contains NUL, which the catalog cannot keep; rename the object".to_owned(),
        received_at: OffsetDateTime::now_utc(),
    };
    inner.store.sync.insert_dead_letter(&letter).await?;
    tracing::warn!(project = %project.id, key = %key.escape_default(), "left a key the catalog cannot keep out");
    Ok(())
}

/// Counts what the listing showed that the catalog did not.
fn note_drift(drift: &mut Drift, key: &str, before: &KeyState, after: &KeyState) {
    match (before.visible(), after.visible()) {
        (None, Some(_)) => drift.added(key),
        (Some(_), None) => drift.removed(key),
        (Some(a), Some(b)) if a != b => drift.changed(key),
        _ => {}
    }
}

async fn flush(
    inner: &Inner,
    project: &Project,
    run: &mut ReconcileRun,
    batch: &mut Vec<KeyUpdate>,
    record: Record,
) -> Result<(), SyncError> {
    if !batch.is_empty() {
        inner.store.data.apply(project.id, batch).await?;
        batch.clear();
    }
    if record == Record::Progress {
        run.updated_at = OffsetDateTime::now_utc();
        inner.store.sync.update_reconcile(run).await?;
    }
    Ok(())
}

/// A new run of `project`, fenced at its current revision, recorded.
pub(crate) async fn start(inner: &Inner, project: &Project, reason: &str) -> Result<ReconcileRun, SyncError> {
    let run = start_run(inner, project, reason).await?;
    inner.store.sync.insert_reconcile(&run).await?;
    Ok(run)
}

/// A new run of `project`, fenced at its current revision.
async fn start_run(inner: &Inner, project: &Project, reason: &str) -> Result<ReconcileRun, SyncError> {
    let now = OffsetDateTime::now_utc();
    let run = ReconcileRun {
        id: uuid::Uuid::new_v4(),
        project_id: project.id,
        reason: reason.to_owned(),
        status: ReconcileStatus::Running,
        fence: inner.store.data.revision(project.id).await?,
        listed: 0,
        drift: Drift::default(),
        error: None,
        started_at: now,
        updated_at: now,
        finished_at: None,
        baseline: None,
    };
    Ok(run)
}

/// Records how a run ended.
pub(crate) async fn finish(inner: &Inner, run: &mut ReconcileRun, result: Result<(), SyncError>) {
    let now = OffsetDateTime::now_utc();
    run.updated_at = now;
    run.finished_at = Some(now);
    match result {
        Ok(()) => run.status = ReconcileStatus::Finished,
        Err(e @ (SyncError::ShuttingDown | SyncError::LeaseLost(_))) => {
            run.status = ReconcileStatus::Interrupted;
            run.error = Some(e.to_string());
        }
        Err(e) => {
            run.status = ReconcileStatus::Failed;
            run.error = Some(e.to_string());
        }
    }
    if let Err(e) = inner.store.sync.update_reconcile(run).await {
        tracing::warn!(reconcile = %run.id, error = %ErrorChain(&e), "cannot record the end of a reconcile");
    }
    tracing::info!(
        project = %run.project_id,
        reconcile = %run.id,
        status = run.status.as_str(),
        listed = run.listed,
        added = run.drift.added,
        removed = run.drift.removed,
        changed = run.drift.changed,
        "reconcile ended"
    );
}
