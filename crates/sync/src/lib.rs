//! The sync engine: keeps each project's catalog in sync with its bucket.
//!
//! - **Events** come from the region's SQS queue (the lifecycle provisions the buckets'
//!   notifications to it). Each batch of messages is parsed, routed to projects by bucket and
//!   longest prefix, and applied to the catalog under the domain's per-key rules
//!   ([`byos_domain::objects`]): any order, duplicates, delete markers, versions, restores. A
//!   message leaves the queue only after its batch is committed; one that cannot be read goes
//!   to the dead letters and never blocks the rest.
//! - **Reconciles** list a project's prefix as a stream and merge it with the catalog, fenced
//!   against events that arrive meanwhile: as the initial import of a new project, periodically,
//!   and on demand. Each run reports its progress and the drift it found.
//!
//! Several replicas consume one queue together: SQS hands each message to one of them, and
//! applying is idempotent, so a message delivered twice changes nothing the second time.
//! Reconciles hold a lease per project in the store.

mod apply;
mod commit;
mod inventory;
mod lookup;
mod partitions;
mod reconcile;
mod routes;
#[cfg(test)]
mod testing;
mod worker;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use byos_aws::Aws;
use byos_buckets::{Buckets, OpenError};
use byos_catalog::{Drift, KeyUpdate, Lease, LeaseLost, Project, ReconcileRun, ReconcileStatus, Store, StoreError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

pub use apply::{BatchOutcome, Inbound};
pub use commit::CommitError;
pub use worker::Workers;

use routes::Routes;

/// What a request that wrote or deleted a key answered, on a bucket that keeps no versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Relative to the project.
    pub key: String,
    /// When the request (or the first of those that made the answer) started, in ms since the
    /// epoch by this clock: the answer holds every change S3 made to the key before.
    pub started_ms: i64,
    /// The object the key holds, or `None` for a key the request deleted.
    pub head: Option<byos_aws::Head>,
}

impl Answer {
    /// The time to give a request starting now as its `started_ms`.
    pub fn now_ms() -> i64 {
        lookup::now_ms()
    }
}

/// How the sync engine behaves.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The queue of each region is `{queue_name_prefix}-{region}`, as the lifecycle names it.
    pub queue_name_prefix: String,
    /// Long polls per region at once: how many batches are read and applied concurrently. The
    /// ingest benchmark applies about half as fast with 2 as with 8 (BENCHMARKS.md).
    pub pollers: usize,
    /// Messages each poller holds at most, received but not yet committed: batches received
    /// while others are applied wait for the next group commit instead of for each other.
    pub in_flight: usize,
    /// How long a poller waits before its next receive when a receive brought fewer messages than
    /// SQS hands out at once (`Duration::ZERO`: it receives again at once). A trickle of events
    /// is then read in fuller batches, with fewer receives and deletes (each a request SQS bills,
    /// and load on the queue); the messages received are applied at once all the same, and the
    /// other pollers keep polling. Like Lambda's `MaximumBatchingWindowInSeconds` for SQS.
    pub batch_window: Duration,
    /// How long the leader of a group commit waits for more batches when others already wait
    /// besides its own (busy pollers), so that more share its transaction (the `commit`
    /// module); a batch alone commits at once. `Duration::ZERO`: what waits commits at once.
    pub commit_delay: Duration,
    /// How long a received message stays invisible to other consumers: longer than a batch
    /// takes to apply.
    pub visibility: Duration,
    /// Listing requests at once in a reconcile: its listing is split into key ranges listed
    /// concurrently (1 lists the prefix as one stream). S3's throttling lowers it while it lasts.
    pub listing_concurrency: usize,
    /// How old an S3 Inventory report may be for an initial import or a periodic reconcile to
    /// start from it instead of listing the prefix (`Duration::ZERO`: never).
    pub inventory_max_age: Duration,
    /// How often every project is reconciled.
    pub reconcile_interval: Duration,
    /// How often the workers look for new projects, regions and due reconciles.
    pub tick: Duration,
    /// How long a reconcile's lease lasts without renewal.
    pub lease: Duration,
    /// This replica's name in leases.
    pub replica: String,
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        SyncSettings {
            queue_name_prefix: "byos-events".to_owned(),
            pollers: 8,
            in_flight: 500,
            batch_window: Duration::ZERO,
            commit_delay: Duration::from_millis(20),
            listing_concurrency: 16,
            inventory_max_age: Duration::from_secs(48 * 3600),
            visibility: Duration::from_secs(120),
            reconcile_interval: Duration::from_secs(6 * 3600),
            tick: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            replica: format!("byos-{}", Uuid::new_v4().simple()),
        }
    }
}

/// Why the sync engine could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("no such project")]
    NotFound,
    /// Another replica (or request) is reconciling this project.
    #[error("a reconcile of this project is running")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Aws(#[from] byos_aws::AwsError),
    /// The project's bucket cannot be opened.
    #[error(transparent)]
    Open(OpenError),
    /// A batch's transaction did not commit; the batch is to be applied again.
    #[error("the batch was not committed: {0}")]
    Commit(#[source] commit::CommitError),
    /// A task of the engine's failed (a bug); what it was doing is to be done again.
    #[error("a task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The work's lease was lost, so it stopped where it was.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// An inventory report could not stand for a listing (the run lists instead).
    #[error("the inventory report cannot be used: {0}")]
    Report(#[source] byos_aws::ReportError),
    /// The engine is stopping: the work stopped where it was, to be done again after a start.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> SyncError {
        match e {
            StoreError::NotFound => SyncError::NotFound,
            e => SyncError::Store(e),
        }
    }
}

impl From<OpenError> for SyncError {
    fn from(e: OpenError) -> SyncError {
        match e {
            OpenError::NotFound => SyncError::NotFound,
            e => SyncError::Open(e),
        }
    }
}

/// The sync engine. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct SyncEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    aws: Aws,
    buckets: Buckets,
    settings: SyncSettings,
    routes: RwLock<Arc<Routes>>,
    metrics: Metrics,
    commits: commit::GroupCommit,
    /// Wakes the supervisor when a project was created, so that its region's consumers start
    /// without waiting for a tick.
    wake: tokio::sync::Notify,
    /// Reconciles running in the background, so that a shutdown stops and records them.
    reconciles: Mutex<JoinSet<()>>,
    /// Turns true when the engine stops.
    stopping: watch::Sender<bool>,
}

impl Inner {
    fn routes(&self) -> Arc<Routes> {
        self.routes.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |r| r.clone())
    }

    fn background_reconciles(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.reconciles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the background reconciles and waits until each has recorded its end.
    async fn stop_reconciles(&self) {
        let _ = self.stopping.send(true);
        let mut running = std::mem::take(&mut *self.background_reconciles());
        while running.join_next().await.is_some() {}
    }
}

impl SyncEngine {
    /// An engine that opens buckets with `buckets`, the opener the server shares.
    pub fn new(store: Store, aws: Aws, buckets: Buckets, settings: SyncSettings) -> SyncEngine {
        let commits = commit::GroupCommit::new(settings.commit_delay);
        SyncEngine {
            inner: Arc::new(Inner {
                store,
                aws,
                buckets,
                settings,
                routes: RwLock::new(Arc::new(Routes::default())),
                metrics: Metrics::default(),
                commits,
                wake: tokio::sync::Notify::new(),
                reconciles: Mutex::new(JoinSet::new()),
                stopping: watch::channel(false).0,
            }),
        }
    }

    /// Adds the engine's metrics to the server's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
        registry.register(
            "sync_transactions",
            "Store transactions that committed batches of queue messages (batches ready together share one)",
            self.inner.commits.transactions.clone(),
        );
    }

    /// Reads the projects again, so that events reach the projects created (or not the ones
    /// deleted) since. The workers also do it on every tick, for other replicas' changes.
    pub async fn refresh_routes(&self) -> Result<(), SyncError> {
        self.reload_routes().await.map(|_| ())
    }

    /// [`SyncEngine::refresh_routes`], returning the projects it read.
    async fn reload_routes(&self) -> Result<Vec<Project>, SyncError> {
        let projects = self.inner.store.projects.list_projects().await?;
        let routes = Arc::new(Routes::new(&projects));
        match self.inner.routes.write() {
            Ok(mut current) => *current = routes,
            Err(poisoned) => *poisoned.into_inner() = routes,
        }
        Ok(projects)
    }

    /// Marks the time from which this engine notes the changes of keys outside projects, unless
    /// an engine did before: what the workers do as they start. An inventory report older than
    /// that is never a reconcile's baseline.
    pub async fn start_noting(&self) -> Result<(), SyncError> {
        inventory::noted_since(&self.inner).await.map(|_| ())
    }

    /// Applies a batch of queue messages (see [`BatchOutcome::done`] for which may leave the
    /// queue). `queue` names where they came from, for the dead letters.
    pub async fn apply(&self, queue: &str, messages: &[Inbound]) -> Result<BatchOutcome, SyncError> {
        apply::apply_batch(&self.inner, queue, messages).await
    }

    /// A new project: route its events from now on and import what its folder already holds.
    pub async fn project_created(&self, project: &Project) -> Result<ReconcileRun, SyncError> {
        self.refresh_routes().await?;
        // The import starts before the workers hear of the project, and if a worker's tick took
        // the project's lease first, its run is the import.
        let run = match self.request_reconcile(project.id, "initial-import").await {
            Err(SyncError::Busy) => self.running_reconcile(project.id).await,
            result => result,
        };
        self.inner.wake.notify_one();
        run
    }

    /// The project's run in progress, waiting a moment for a run whose lease is taken to be
    /// recorded.
    async fn running_reconcile(&self, project: Uuid) -> Result<ReconcileRun, SyncError> {
        for _ in 0..50 {
            if let Some(run) = self.inner.store.sync.latest_reconcile(project).await?
                && run.status == ReconcileStatus::Running
            {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(SyncError::Busy)
    }

    /// Reads `key` (relative to the project) from S3 and applies what S3 holds to the catalog,
    /// through the per-key rules: what an upload, a new folder or a delete changed shows at once,
    /// before its event comes (which then changes nothing).
    pub async fn observe(&self, project: &Project, key: &str) -> Result<(), SyncError> {
        let bucket = self.inner.buckets.open(project.configuration_id).await?;
        let full = format!("{}{key}", project.key_prefix);
        let versioning = bucket.configuration.versioning;
        let observation = lookup::look_up(&bucket.access, project.bucket.as_str(), &full, versioning).await?;
        let update = KeyUpdate::Observed { key: key.to_owned(), observation, fence: None };
        self.inner.store.data.apply(project.id, &[update]).await?;
        Ok(())
    }

    /// Applies what the requests that wrote or deleted keys of `project` answered, as
    /// [`observe`](Self::observe) would after reading each key again, without reading them: for a
    /// job's copies as they land. Only on a bucket that keeps no versions is one answer all S3
    /// holds for its key; on a versioned one an observation needs every version of the key, so
    /// refresh the folder instead.
    pub async fn answered(&self, project: &Project, answers: &[Answer]) -> Result<(), SyncError> {
        let updates: Vec<KeyUpdate> = answers
            .iter()
            .map(|answer| KeyUpdate::Observed {
                key: answer.key.clone(),
                observation: lookup::from_head(lookup::as_of(answer.started_ms), answer.head.clone()),
                fence: None,
            })
            .collect();
        if !updates.is_empty() {
            self.inner.store.data.apply(project.id, &updates).await?;
        }
        Ok(())
    }

    /// Brings the catalog of `folder` (a key relative to the project, ending with `/`) in line
    /// with the bucket, as a reconcile of that folder alone would, and answers what differed:
    /// for a job that changed many keys at once, one listing instead of a read of each key.
    pub async fn refresh_folder(&self, project: &Project, folder: &str) -> Result<Drift, SyncError> {
        reconcile::refresh(&self.inner, project, folder).await
    }

    /// Starts a reconcile of the project in the background and returns its run, or the run in
    /// progress when there is one.
    pub async fn request_reconcile(&self, project: Uuid, reason: &str) -> Result<ReconcileRun, SyncError> {
        let project = self.inner.store.projects.get_project(project).await?;
        if let Some(latest) = self.inner.store.sync.latest_reconcile(project.id).await?
            && latest.status == ReconcileStatus::Running
            && OffsetDateTime::now_utc() - latest.updated_at < self.inner.settings.lease
        {
            return Ok(latest);
        }
        let (lease, run) = self.start_reconcile(&project, reason).await?;
        let started = run.clone();
        let inner = self.inner.clone();
        let mut running = self.inner.background_reconciles();
        // Forget the ones that ended, so the set holds the running ones only.
        while running.try_join_next().is_some() {}
        running.spawn(async move {
            run_to_end(&inner, &project, lease, run).await;
        });
        Ok(started)
    }

    /// Runs a reconcile of the project to its end and returns the finished run.
    pub async fn reconcile(&self, project: Uuid, reason: &str) -> Result<ReconcileRun, SyncError> {
        let project = self.inner.store.projects.get_project(project).await?;
        let (lease, run) = self.start_reconcile(&project, reason).await?;
        Ok(run_to_end(&self.inner, &project, lease, run).await)
    }

    /// Takes the project's reconcile lease and records a new run, or gives the lease back.
    async fn start_reconcile(&self, project: &Project, reason: &str) -> Result<(Lease, ReconcileRun), SyncError> {
        let inner = &self.inner;
        let name = format!("reconcile:{}", project.id);
        let lease = Lease::take(&inner.store.leases, &name, &inner.settings.replica, inner.settings.lease)
            .await?
            .ok_or(SyncError::Busy)?;
        let started = async {
            // With the lease held, no run of the project is going on: one still marked running
            // lost its replica (a crash, a kill) before it could record its end.
            let now = OffsetDateTime::now_utc();
            let orphans = inner.store.sync.interrupt_reconciles(project.id, ORPHANED, now).await?;
            if orphans > 0 {
                tracing::warn!(project = %project.id, runs = orphans, "recorded runs left running as interrupted");
            }
            reconcile::start(inner, project, reason).await
        };
        match started.await {
            Ok(run) => Ok((lease, run)),
            Err(e) => {
                lease.release().await;
                Err(e)
            }
        }
    }

    /// Starts the queue consumers and the periodic reconciles.
    pub fn spawn_workers(&self) -> Workers {
        worker::spawn(self.inner.clone())
    }
}

/// Why a run found still running by the next holder of its project's lease ended.
const ORPHANED: &str = "its replica stopped before the run ended";

/// Runs a started reconcile to its end under its lease, records how it ended, and gives the
/// lease back. A lost lease or a stopping engine stops the run where it is: it ends
/// `interrupted`, and a later run starts again from the beginning.
async fn run_to_end(inner: &Inner, project: &Project, lease: Lease, mut run: ReconcileRun) -> ReconcileRun {
    let mut stopping = inner.stopping.subscribe();
    let result = tokio::select! {
        result = lease.hold(reconcile::run(inner, project, &mut run)) => result.map_err(SyncError::from).and_then(|r| r),
        _ = stopping.wait_for(|stopping| *stopping) => Err(SyncError::ShuttingDown),
    };
    reconcile::finish(inner, &mut run, result).await;
    lease.release().await;
    run
}

/// The engine's counters.
#[derive(Debug, Default)]
struct Metrics {
    records: Family<[(&'static str, &'static str); 1], Counter>,
    dead_letters: Counter,
    batches: Counter,
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sync_records",
            "Event records by what became of them: applied, looked-up (read from S3), ignored",
            self.records.clone(),
        );
        registry.register(
            "sync_dead_letters",
            "Queue messages that could not be read and were kept as dead letters",
            self.dead_letters.clone(),
        );
        registry.register("sync_batches", "Batches of queue messages applied", self.batches.clone());
    }

    /// Records count once their batch is committed: a batch that is not comes back.
    fn observe(&self, outcome: &BatchOutcome) {
        self.dead_letters.inc_by(outcome.dead_letters);
        if !outcome.committed {
            return;
        }
        self.batches.inc();
        self.records.get_or_create(&[("outcome", "applied")]).inc_by(outcome.records);
        self.records.get_or_create(&[("outcome", "looked-up")]).inc_by(outcome.looked_up);
        self.records.get_or_create(&[("outcome", "ignored")]).inc_by(outcome.ignored);
    }
}
