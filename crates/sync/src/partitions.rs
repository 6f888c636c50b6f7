//! The reconcile's listing in pieces listed at once and handed out in key order, so that a
//! bucket of millions of keys lists at many pages per round trip while the merge with the
//! catalog stays one bounded stream.
//!
//! A listing starts as one piece: the whole prefix. A piece that *discovers* asks for one page
//! of the folder's direct keys and subfolders (a listing with `/` as delimiter) and is replaced
//! by what it found, in key order: the keys it already has, a piece per subfolder, and the rest
//! of the folder when the page was not the last. Subfolders discover in turn while they are
//! fewer than the listing's concurrency (a narrow tree is split until there is enough to list
//! at once); otherwise each is listed whole. A piece that the merge waits for is split at a key
//! between where it has got to and where it ends (its end lowered, the rest a new piece after
//! it), so a flat folder of a million keys is listed at once too; splits that land where no key
//! is cost one empty page.
//!
//! Pieces are started in key order, a bounded number ahead of the merge, and each lists at most
//! [`AHEAD`] pages ahead before it waits: memory is bounded whatever the bucket's size. Requests
//! in flight are bounded by the concurrency, which S3's throttling lowers and success raises
//! again. With a concurrency of 1 a listing is one piece listed from start to end, as S3 pages
//! it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use byos_aws::{AwsError, AwsErrorKind, BucketAccess, ListPage, ListedVersion, PageMarker};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::{SyncError, lookup};

/// Pages a piece lists ahead of the merge before it waits.
const AHEAD: usize = 1;

/// How often a page that S3 throttled (after the SDK's own retries) is asked for again.
const THROTTLED_TRIES: u32 = 6;

/// One page of a listing, in key order with the pages before and after it.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) entries: Vec<ListedVersion>,
    /// When the page was asked for (ms since the epoch).
    pub(crate) started_ms: i64,
    /// Whether the page is the last of its piece: what it says covers the keys up to the
    /// piece's end, past its last entry.
    pub(crate) ends_piece: bool,
}

/// What a listing lists, and how.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) bucket: String,
    /// Every key listed starts with it.
    pub(crate) prefix: String,
    /// Versions and delete markers (ListObjectVersions), or current objects (ListObjectsV2).
    pub(crate) versions: bool,
    /// Requests at once; 1 lists the prefix as one stream.
    pub(crate) concurrency: usize,
    /// Keys (and folders) per page: S3's most, 1,000, but for tests.
    pub(crate) page_size: i32,
}

/// A listing's pages in key order.
pub(crate) struct Pages {
    context: Arc<Context>,
    pieces: VecDeque<Piece>,
    /// Pieces listing (started and not yet handed out to their end).
    running: usize,
    /// At most this many pieces list at once: what bounds the pages held ahead of the merge.
    max_running: usize,
    /// Pieces split so far.
    splits: u64,
}

struct Context {
    access: BucketAccess,
    plan: Plan,
    limit: Limit,
}

enum Piece {
    /// Keys a discovery listed already.
    Listed(Page),
    Range(Range),
}

/// Keys under a prefix after a marker, up to an end that a split may lower.
struct Range {
    prefix: String,
    start: Option<PageMarker>,
    /// Asks for the folder's subfolders first, to be replaced by them.
    discover: bool,
    bounds: Arc<Bounds>,
    task: Option<Task>,
    /// Where it had got to when it was last split.
    split_from: Option<String>,
}

/// What the merge and a piece's task share.
#[derive(Default)]
struct Bounds {
    /// The piece's last key (`None`: the prefix's last), lowered by a split. Keys past it are
    /// another piece's.
    through: Mutex<Option<String>>,
    /// The last key the task has listed.
    reached: Mutex<Option<String>>,
}

struct Task {
    chunks: mpsc::Receiver<Result<Chunk, SyncError>>,
    handle: Aborting,
    /// Whether its last page has come.
    ended: bool,
}

/// A task that a dropped listing stops.
struct Aborting(JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Chunk {
    Page(Page),
    /// What a discovery found, in key order, to take the piece's place.
    Replace(Vec<Piece>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pages {
    pub(crate) fn new(access: BucketAccess, plan: Plan) -> Pages {
        let concurrency = plan.concurrency.max(1);
        let root = Range {
            prefix: plan.prefix.clone(),
            start: None,
            discover: concurrency > 1,
            bounds: Arc::default(),
            task: None,
            split_from: None,
        };
        Pages {
            context: Arc::new(Context { access, limit: Limit::new(concurrency), plan }),
            pieces: VecDeque::from([Piece::Range(root)]),
            running: 0,
            max_running: if concurrency > 1 { 2 * concurrency } else { 1 },
            splits: 0,
        }
    }

    /// The next page, or `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<Page>, SyncError> {
        loop {
            self.start_pieces();
            let Some(head) = self.pieces.front_mut() else { return Ok(None) };
            let Piece::Range(range) = head else {
                let Some(Piece::Listed(page)) = self.pieces.pop_front() else { unreachable!("the head is listed") };
                return Ok(Some(page));
            };
            // The head lists whatever the count: the merge reads nothing else.
            if range.task.is_none() {
                range.task = Some(start(&self.context, range));
                self.running += 1;
            }
            let Some(task) = range.task.as_mut() else { unreachable!("the head was just started") };
            let chunk = match task.chunks.try_recv() {
                Ok(chunk) => Some(chunk),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    // The merge waits for this piece: let another list a part of what it has left.
                    self.split_head();
                    let Some(Piece::Range(Range { task: Some(task), .. })) = self.pieces.front_mut() else {
                        unreachable!("the head is the running piece")
                    };
                    task.chunks.recv().await
                }
            };
            let Some(Piece::Range(range)) = self.pieces.front_mut() else { unreachable!("the head is a range") };
            match chunk {
                Some(Err(e)) => return Err(e),
                Some(Ok(Chunk::Page(mut page))) => {
                    if let Some(through) = lock(&range.bounds.through).as_deref() {
                        let inside = page.entries.partition_point(|e| e.key.as_str() <= through);
                        page.entries.truncate(inside);
                    }
                    if let Some(task) = range.task.as_mut() {
                        task.ended |= page.ends_piece;
                    }
                    return Ok(Some(page));
                }
                Some(Ok(Chunk::Replace(found))) => {
                    self.pieces.pop_front();
                    self.running -= 1;
                    for piece in found.into_iter().rev() {
                        self.pieces.push_front(piece);
                    }
                }
                None => {
                    let Some(Piece::Range(Range { task: Some(mut task), .. })) = self.pieces.pop_front() else {
                        unreachable!("the head is a started range")
                    };
                    self.running -= 1;
                    if !task.ended {
                        // Its task ended without its last page: it panicked.
                        match (&mut task.handle.0).await {
                            Err(e) => return Err(SyncError::Task(e)),
                            Ok(()) => unreachable!("a listing task returns after its last page only"),
                        }
                    }
                }
            }
        }
    }

    /// Starts pieces in key order while fewer than `max_running` list.
    fn start_pieces(&mut self) {
        for piece in &mut self.pieces {
            if self.running >= self.max_running {
                return;
            }
            if let Piece::Range(range @ Range { task: None, .. }) = piece {
                range.task = Some(start(&self.context, range));
                self.running += 1;
            }
        }
    }

    /// Splits the head piece where it has got to and its end, when there is room for one more
    /// piece: it keeps the first half, a new piece right after it lists the second.
    fn split_head(&mut self) {
        if self.context.plan.concurrency <= 1 || self.running >= self.max_running {
            return;
        }
        let Some(Piece::Range(head)) = self.pieces.front_mut() else { return };
        if head.discover || head.task.as_ref().is_some_and(|task| task.ended) {
            return;
        }
        // Only a piece that listed a page since it was last split: there are keys where it goes
        // on (its page was full), and splits stay fewer than pages.
        let Some(from) = lock(&head.bounds.reached).clone() else { return };
        if head.split_from.as_ref() == Some(&from) {
            return;
        }
        let mut through = lock(&head.bounds.through);
        let Some(at) = between(&head.prefix, &from, through.as_deref()) else {
            return;
        };
        let rest = Range {
            prefix: head.prefix.clone(),
            start: Some(PageMarker::After { key: at.clone() }),
            discover: false,
            bounds: Arc::new(Bounds { through: Mutex::new(through.clone()), reached: Mutex::default() }),
            task: None,
            split_from: None,
        };
        *through = Some(at);
        drop(through);
        head.split_from = Some(from);
        self.pieces.insert(1, Piece::Range(rest));
        self.splits += 1;
    }
}

fn start(context: &Arc<Context>, range: &Range) -> Task {
    let (sender, chunks) = mpsc::channel(AHEAD);
    let job = Job {
        context: context.clone(),
        prefix: range.prefix.clone(),
        marker: range.start.clone(),
        discover: range.discover,
        bounds: range.bounds.clone(),
    };
    let handle = tokio::spawn(async move {
        if let Err(e) = job.run(&sender).await {
            let _ = sender.send(Err(e)).await;
        }
    });
    Task { chunks, handle: Aborting(handle), ended: false }
}

/// A piece's task.
struct Job {
    context: Arc<Context>,
    prefix: String,
    marker: Option<PageMarker>,
    discover: bool,
    bounds: Arc<Bounds>,
}

impl Job {
    async fn run(mut self, sender: &mpsc::Sender<Result<Chunk, SyncError>>) -> Result<(), SyncError> {
        loop {
            let (page, started_ms) = self.request().await?;
            if self.discover {
                let found =
                    discovered(&self.prefix, self.marker.as_ref(), page, started_ms, self.context.plan.concurrency);
                let _ = sender.send(Ok(Chunk::Replace(found))).await;
                return Ok(());
            }
            let ListPage { mut entries, next, .. } = page;
            let through = lock(&self.bounds.through).clone();
            let mut ends_piece = next.is_none();
            if let Some(through) = through {
                let inside = entries.partition_point(|e| e.key <= through);
                ends_piece |= inside < entries.len() || entries.last().is_some_and(|e| e.key == through);
                entries.truncate(inside);
            }
            if let Some(last) = entries.last() {
                *lock(&self.bounds.reached) = Some(last.key.clone());
            }
            let page = Page { entries, started_ms, ends_piece };
            if sender.send(Ok(Chunk::Page(page))).await.is_err() || ends_piece {
                return Ok(());
            }
            self.marker = next;
        }
    }

    /// The next page, asked for again while S3 throttles (and with fewer requests at once).
    async fn request(&self) -> Result<(ListPage, i64), AwsError> {
        let Context { access, plan, limit } = &*self.context;
        let mut tries = 0;
        loop {
            let permit = limit.acquire().await;
            let started_ms = lookup::now_ms();
            let marker = self.marker.as_ref();
            let result = if self.discover {
                access.list_folder_page(&plan.bucket, &self.prefix, marker, plan.page_size, plan.versions).await
            } else if plan.versions {
                access.list_versions_page(&plan.bucket, &self.prefix, marker, plan.page_size).await
            } else {
                access.list_objects_page(&plan.bucket, &self.prefix, marker, plan.page_size).await
            };
            drop(permit);
            match result {
                Ok(page) => {
                    limit.succeeded();
                    return Ok((page, started_ms));
                }
                Err(e) if e.kind == AwsErrorKind::Throttled && tries + 1 < THROTTLED_TRIES => {
                    limit.throttled();
                    tries += 1;
                    tracing::debug!(prefix = self.prefix, tries, "a listing request was throttled; fewer at once");
                    tokio::time::sleep(Duration::from_millis(200 << tries.min(5))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a discovery's page says, as pieces in key order: runs of keys, the folders, and the rest
/// of the folder when the page was not its last. Fewer folders than `concurrency` get a piece
/// each (which looks into them in turn when the page was the folder's last); more are grouped
/// into `concurrency` ranges of neighbours, listed whole, so that a folder of thousands of
/// small subfolders costs no request per subfolder. `start` is where the page started.
fn discovered(
    prefix: &str,
    start: Option<&PageMarker>,
    page: ListPage,
    started_ms: i64,
    concurrency: usize,
) -> Vec<Piece> {
    let ListPage { entries, folders, next } = page;
    let last_page = next.is_none();
    let range = |prefix: &str, start: Option<PageMarker>, through: Option<String>, discover: bool| {
        Piece::Range(Range {
            prefix: prefix.to_owned(),
            start,
            discover,
            bounds: Arc::new(Bounds { through: Mutex::new(through), reached: Mutex::default() }),
            task: None,
            split_from: None,
        })
    };
    // The rest goes on after the page's last folder or key (a continuation token is only good
    // for a request like the one it came from), or where S3 says for a key whose versions go
    // on. A folder that showed no subfolder is flat: its rest is listed without folders.
    let last_folder = folders.last().filter(|f| entries.last().is_none_or(|e| e.key < **f));
    let rest = next.map(|marker| {
        let start = match (last_folder, marker, entries.last()) {
            (Some(folder), _, _) => PageMarker::After { key: past(folder) },
            (None, PageMarker::Objects { .. }, Some(last)) => PageMarker::After { key: last.key.clone() },
            (None, marker, _) => marker,
        };
        range(prefix, Some(start), None, !folders.is_empty())
    });
    let mut pieces = Vec::new();
    let mut entries = entries.into_iter().peekable();
    if folders.len() >= concurrency {
        let before: Vec<ListedVersion> = entries.peeking_take_while(|e| e.key < folders[0]);
        let mut lower = match (before.last(), start) {
            (Some(last), _) => Some(PageMarker::After { key: last.key.clone() }),
            (None, None) => None,
            (None, Some(PageMarker::After { key } | PageMarker::Versions { key_marker: key, .. })) => {
                Some(PageMarker::After { key: if key.ends_with('/') { past(key) } else { key.clone() } })
            }
            (None, Some(marker @ PageMarker::Objects { .. })) => Some(marker.clone()),
        };
        if !before.is_empty() {
            pieces.push(Piece::Listed(Page { entries: before, started_ms, ends_piece: true }));
        }
        for group in folders.chunks(folders.len().div_ceil(concurrency)) {
            let through = past(group.last().map_or("", String::as_str));
            pieces.push(range(prefix, lower.take(), Some(through.clone()), false));
            lower = Some(PageMarker::After { key: through });
        }
        // The keys between the folders are the groups' to list.
        let last = past(folders.last().map_or("", String::as_str));
        while entries.next_if(|e| e.key <= last).is_some() {}
    } else {
        for folder in &folders {
            let run: Vec<ListedVersion> = entries.peeking_take_while(|e| e.key < *folder);
            if !run.is_empty() {
                pieces.push(Piece::Listed(Page { entries: run, started_ms, ends_piece: true }));
            }
            pieces.push(range(folder, None, None, last_page));
        }
    }
    let run: Vec<ListedVersion> = entries.collect();
    // The folder's last keys; also when there are none, to say when the page was asked for.
    if !run.is_empty() || pieces.is_empty() || rest.is_none() {
        pieces.push(Piece::Listed(Page { entries: run, started_ms, ends_piece: true }));
    }
    pieces.extend(rest);
    pieces
}

/// A key after every key in `folder`: S3's keys are at most 1,024 bytes, and none can follow the
/// folder with more of the greatest character than this has.
fn past(folder: &str) -> String {
    let room = (1024usize.saturating_sub(folder.len()) / char::MAX.len_utf8()).max(1);
    let mut key = String::with_capacity(folder.len() + room * char::MAX.len_utf8());
    key.push_str(folder);
    key.extend(std::iter::repeat_n(char::MAX, room));
    key
}

trait PeekingTakeWhile<T> {
    fn peeking_take_while(&mut self, keep: impl FnMut(&T) -> bool) -> Vec<T>;
}

impl<I: Iterator> PeekingTakeWhile<I::Item> for std::iter::Peekable<I> {
    fn peeking_take_while(&mut self, mut keep: impl FnMut(&I::Item) -> bool) -> Vec<I::Item> {
        let mut taken = Vec::new();
        while let Some(item) = self.next_if(&mut keep) {
            taken.push(item);
        }
        taken
    }
}

/// A key after `from` and before `through` (`None`: the end of `prefix`), both under `prefix`,
/// roughly halfway as strings of printable characters go: where a piece is split. `None` when
/// there is none to be found.
fn between(prefix: &str, from: &str, through: Option<&str>) -> Option<String> {
    /// Above every printable ASCII character: where an open end stops, for keys written in it.
    const ASCII_END: u32 = 0x7f;
    let low: Vec<u32> = from.strip_prefix(prefix)?.chars().map(u32::from).collect();
    let high: Option<Vec<u32>> = match through {
        Some(through) => Some(through.strip_prefix(prefix)?.chars().map(u32::from).collect()),
        None => None,
    };
    let mut at = prefix.to_owned();
    // Whether `through` still bounds the characters from here on (the key so far is its start).
    let mut bounded = high.is_some();
    for i in 0..=low.len() {
        let x = low.get(i).map_or(-1, |&c| i64::from(c));
        let y = match (&high, bounded) {
            (Some(high), true) => i64::from(*high.get(i)?),
            _ if x < i64::from(ASCII_END) - 1 => i64::from(ASCII_END),
            _ => i64::from(u32::from(char::MAX)) + 1,
        };
        if y - x >= 2 {
            let mut middle = u32::try_from((x + y) / 2).ok()?;
            if (0xd800..0xe000).contains(&middle) {
                middle = 0xe000;
            }
            if i64::from(middle) >= y {
                return None;
            }
            at.push(char::from_u32(middle)?);
            return Some(at);
        }
        at.push(char::from_u32(u32::try_from(x).ok()?)?);
        bounded &= x == y;
    }
    None
}

/// Requests at once: a semaphore whose size throttling halves and success raises again by one.
struct Limit {
    permits: Semaphore,
    state: Mutex<LimitState>,
}

struct LimitState {
    max: usize,
    /// The size the permits are meant to have.
    size: usize,
    /// Permits to withdraw as they come back.
    owed: usize,
    /// Successes since the size last changed.
    successes: usize,
    /// Throttled answers so far.
    throttles: u64,
}

impl Limit {
    fn new(max: usize) -> Limit {
        Limit {
            permits: Semaphore::new(max),
            state: Mutex::new(LimitState { max, size: max, owed: 0, successes: 0, throttles: 0 }),
        }
    }

    async fn acquire(&self) -> tokio::sync::SemaphorePermit<'_> {
        loop {
            let permit = self.permits.acquire().await.expect("the semaphore is never closed");
            let mut state = lock(&self.state);
            if state.owed == 0 {
                return permit;
            }
            state.owed -= 1;
            permit.forget();
        }
    }

    fn throttled(&self) {
        let mut state = lock(&self.state);
        let withdrawn = state.size / 2;
        state.size -= withdrawn;
        state.owed += withdrawn;
        state.successes = 0;
        state.throttles += 1;
    }

    fn succeeded(&self) {
        let mut state = lock(&self.state);
        state.successes += 1;
        if state.size < state.max && state.successes >= state.size {
            state.size += 1;
            state.successes = 0;
            if state.owed > 0 {
                state.owed -= 1;
            } else {
                self.permits.add_permits(1);
            }
        }
    }

    #[cfg(test)]
    fn size(&self) -> usize {
        lock(&self.state).size
    }

    #[cfg(test)]
    fn throttles(&self) -> u64 {
        lock(&self.state).throttles
    }
}

#[cfg(test)]
mod tests {
    use byos_aws::{Aws, AwsSettings};
    use byos_domain::VersioningState;
    use byos_test_support::{Fault, FaultPlan, FaultProxy, MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, region};

    use super::*;

    /// What a listing says of one entry.
    type Said = (String, Option<String>, bool, u64);

    async fn aws(endpoint: &str) -> Aws {
        Aws::new(&AwsSettings {
            endpoint_url: Some(endpoint.to_owned()),
            static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await
    }

    /// Keys of every shape a split or a discovery could get wrong: a flat folder of many pages,
    /// a narrow deep tree, keys beside folders of the same name, folder markers, escapes,
    /// characters outside ASCII, and keys just outside the prefix.
    fn keys() -> Vec<String> {
        let mut keys: Vec<String> = (0..7).map(|i| format!("p/top-{i}.txt")).collect();
        keys.extend((0..120).map(|i| format!("p/flat/f{i:04}.bam")));
        for a in 0..2 {
            for b in 0..3 {
                keys.extend((0..4).map(|c| format!("p/tree/{a}/{b}/x{c}")));
            }
        }
        keys.extend((0..30).map(|i| format!("p/many/s{i:02}/r1.fastq")));
        for odd in [
            "p/",
            "p/odd/",
            "p/odd/a",
            "p/odd/a/",
            "p/odd/a/b",
            "p/odd/a!",
            "p/odd/ a+b%c",
            "p/odd/é/x",
            "p/odd/a b+c%d/x",
        ] {
            keys.push(odd.to_owned());
        }
        keys.extend(["p/odd/\u{1f600}", "p/~", "p/zz/last", "p", "pz/x", "q/x"].map(str::to_owned));
        keys
    }

    /// Every entry under `p/` as one stream lists it, page by page.
    async fn one_stream(access: &BucketAccess, bucket: &str, versions: bool) -> Vec<Said> {
        let mut said = Vec::new();
        let mut marker = None;
        loop {
            let page = if versions {
                access.list_versions_page(bucket, "p/", marker.as_ref(), 1000).await.unwrap()
            } else {
                access.list_objects_page(bucket, "p/", marker.as_ref(), 1000).await.unwrap()
            };
            said.extend(page.entries.iter().map(|e| (e.key.clone(), e.version_id.clone(), e.delete_marker, e.size)));
            match page.next {
                Some(next) => marker = Some(next),
                None => return said,
            }
        }
    }

    /// Every entry as pieces list it, checking that pages come in key order and that the last
    /// one ends its piece.
    async fn in_pieces(access: &BucketAccess, bucket: &str, versions: bool, concurrency: usize) -> (Vec<Said>, u64) {
        let plan = Plan { bucket: bucket.to_owned(), prefix: "p/".to_owned(), versions, concurrency, page_size: 5 };
        let mut pages = Pages::new(access.clone(), plan);
        let (mut said, mut last_ended) = (Vec::<Said>::new(), false);
        while let Some(page) = pages.next().await.unwrap() {
            said.extend(page.entries.iter().map(|e| (e.key.clone(), e.version_id.clone(), e.delete_marker, e.size)));
            last_ended = page.ends_piece;
        }
        assert!(last_ended, "the last page ends its piece");
        assert!(said.windows(2).all(|w| w[0].0 <= w[1].0), "pages in key order");
        (said, pages.splits)
    }

    #[tokio::test]
    async fn pieces_list_what_one_stream_lists() {
        let moto = Moto::start();
        let aws = aws(moto.url()).await;
        let setup = aws.setup(&region("eu-central-1"));
        let access = aws.own_bucket_access(&region("eu-central-1"));
        setup.create_bucket("pieces").await.unwrap();
        setup.create_bucket("versions").await.unwrap();
        setup.set_versioning("versions", VersioningState::Enabled).await.unwrap();
        for (i, key) in keys().iter().enumerate() {
            access.put_object("pieces", key, vec![0; i % 7], None).await.unwrap();
            access.put_object("versions", key, vec![1; i % 5], None).await.unwrap();
            // Some keys have older versions, some are deleted, in folders and beside them.
            if i % 3 == 0 {
                access.put_object("versions", key, vec![2; 3], None).await.unwrap();
            }
            if i % 4 == 1 {
                access.delete_object("versions", key, None).await.unwrap();
            }
        }
        for (bucket, versions) in [("pieces", false), ("versions", true)] {
            let expected = one_stream(&access, bucket, versions).await;
            assert!(expected.len() > keys().len() - 4, "{bucket}: {}", expected.len());
            for concurrency in [1, 2, 3, 16] {
                let (said, splits) = in_pieces(&access, bucket, versions, concurrency).await;
                assert_eq!(said, expected, "{bucket}, {concurrency} at once");
                // One stream is never split; with room for more pieces than the tree's folders,
                // the flat folder of many pages is.
                if concurrency == 1 {
                    assert_eq!(splits, 0);
                } else if concurrency == 16 {
                    assert!(splits > 0, "{bucket}: no split");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_throttled_listing_slows_down_and_lists_everything() {
        let moto = Moto::start();
        let direct = aws(moto.url()).await;
        direct.setup(&region("eu-central-1")).create_bucket("throttled").await.unwrap();
        let access = direct.own_bucket_access(&region("eu-central-1"));
        for key in keys() {
            access.put_object("throttled", &key, Vec::new(), None).await.unwrap();
        }
        let expected = one_stream(&access, "throttled", false).await;
        // Most listing requests throttled: the SDK's four attempts often all fail.
        let listings = FaultPlan {
            rate: 0.6,
            faults: vec![Fault::SlowDown],
            only: std::sync::Arc::new(|call| call.operation.starts_with("GET bucket")),
        };
        let proxy = FaultProxy::start(moto.url(), listings, 11).await;
        let through = aws(proxy.url()).await.own_bucket_access(&region("eu-central-1"));
        let plan = Plan {
            bucket: "throttled".to_owned(),
            prefix: "p/".to_owned(),
            versions: false,
            concurrency: 8,
            page_size: 5,
        };
        let mut pages = Pages::new(through, plan);
        let mut said = Vec::new();
        while let Some(page) = pages.next().await.unwrap() {
            said.extend(page.entries.iter().map(|e| (e.key.clone(), e.version_id.clone(), e.delete_marker, e.size)));
        }
        assert_eq!(said, expected);
        assert!(pages.context.limit.throttles() > 0, "{:?}", proxy.injected());
    }

    #[test]
    fn a_split_falls_between_its_ends_under_the_prefix() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("p/", "p/sample_000999", None),
            ("p/", "p/sample_000999", Some("p/sample_9")),
            ("p/", "p/a", Some("p/b")),
            ("p/", "p/ab", Some("p/abc")),
            ("p/", "p/", None),
            ("", "", None),
            ("p/", "p/~~~", None),
            ("p/", "p/é", None),
            ("p/", "p/a\u{d7ff}", Some("p/a\u{e001}")),
            ("p/", "p/x", Some("p/x\u{0}")),
        ];
        for &(prefix, from, through) in cases {
            let Some(at) = between(prefix, from, through) else {
                assert_eq!((from, through), ("p/x", Some("p/x\u{0}")), "no split found");
                continue;
            };
            assert!(at.starts_with(prefix) && at.as_str() > from, "{at:?} after {from:?}");
            assert!(through.is_none_or(|t| at.as_str() < t), "{at:?} before {through:?}");
        }
    }

    #[test]
    fn many_folders_are_listed_in_groups_of_neighbours() {
        let key = |key: &str| ListedVersion {
            key: key.to_owned(),
            version_id: None,
            is_latest: true,
            delete_marker: false,
            size: 0,
            etag: String::new(),
            last_modified_ms: 0,
            storage_class: None,
        };
        let folders: Vec<String> = (0..40).map(|i| format!("p/s{i:02}/")).collect();
        let entries = vec![key("p/a"), key("p/s05"), key("p/s05.txt"), key("p/z")];
        let page = ListPage { entries, folders, next: None };
        let pieces = discovered("p/", None, page, 7, 16);
        let mut ranges = Vec::new();
        let mut listed = Vec::new();
        for piece in &pieces {
            match piece {
                Piece::Listed(page) => listed.extend(page.entries.iter().map(|e| e.key.clone())),
                Piece::Range(range) => {
                    let after = match &range.start {
                        Some(PageMarker::After { key }) => Some(key.clone()),
                        _ => None,
                    };
                    ranges.push((range.prefix.clone(), after, lock(&range.bounds.through).clone(), range.discover));
                }
            }
        }
        // The keys before the first folder and after the last; those between are the groups'.
        assert_eq!(listed, ["p/a", "p/z"]);
        assert_eq!(ranges.len(), 14, "groups of 3 folders");
        assert_eq!(ranges[0].1.as_deref(), Some("p/a"));
        for pair in ranges.windows(2) {
            assert_eq!(pair[1].1, pair[0].2, "each group starts where the one before ends");
        }
        for (prefix, _, through, discover) in &ranges {
            assert!(prefix == "p/" && !discover);
            let through = through.as_deref().unwrap_or_default();
            assert!(through.len() <= 1024 && through.ends_with(char::MAX));
        }
        assert!(ranges[0].2.as_deref().is_some_and(|t| t.starts_with("p/s02/") && t > "p/s02/x/y/z"));
        // Fewer folders than the concurrency: a piece each, looked into.
        let page = ListPage { entries: vec![key("p/a")], folders: vec!["p/b/".to_owned()], next: None };
        let pieces = discovered("p/", None, page, 7, 16);
        assert!(matches!(&pieces[1], Piece::Range(r) if r.prefix == "p/b/" && r.discover && r.start.is_none()));
    }

    #[test]
    fn splits_home_in_on_where_the_keys_are() {
        // Keys that all start alike: each split halves what is left until one lands among them.
        let (mut through, mut splits) = (None::<String>, 0);
        while through.as_ref().is_none_or(|t| !t.starts_with("p/sample_")) {
            through = between("p/", "p/sample_000999", through.as_deref());
            splits += 1;
            assert!(splits < 40, "{through:?}");
        }
        assert!(through.unwrap().as_str() > "p/sample_000999");
    }

    #[tokio::test]
    async fn throttling_halves_the_requests_at_once_and_success_brings_them_back() {
        let limit = Limit::new(16);
        limit.throttled();
        limit.throttled();
        assert_eq!(limit.size(), 4);
        let held: Vec<_> = acquire(&limit, 4).await;
        assert_eq!(limit.permits.available_permits(), 0, "the withdrawn permits are gone");
        drop(held);
        for _ in 0..200 {
            limit.succeeded();
        }
        assert_eq!(limit.size(), 16);
        let all = acquire(&limit, 16).await;
        assert_eq!(all.len(), 16);
    }

    async fn acquire(limit: &Limit, n: usize) -> Vec<tokio::sync::SemaphorePermit<'_>> {
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(limit.acquire().await);
        }
        permits
    }
}
