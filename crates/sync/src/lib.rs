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
mod lookup;
mod reconcile;
mod routes;
#[cfg(test)]
mod testing;
mod worker;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use byos_aws::Aws;
use byos_catalog::{Project, ReconcileRun, ReconcileStatus, Store, StoreError};
use byos_lifecycle::{Lifecycle, LifecycleError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use uuid::Uuid;

pub use apply::{BatchOutcome, Inbound};
pub use worker::Workers;

use routes::Routes;

/// How the sync engine behaves.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The queue of each region is `{queue_name_prefix}-{region}`, as the lifecycle names it.
    pub queue_name_prefix: String,
    /// Long polls per region at once: how many batches are read and applied concurrently.
    pub pollers: usize,
    /// Messages each poller holds at most, received but not yet committed: batches received
    /// while others are applied wait for the next group commit instead of for each other.
    pub in_flight: usize,
    /// How long a received message stays invisible to other consumers: longer than a batch
    /// takes to apply.
    pub visibility: Duration,
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
            pollers: 2,
            in_flight: 500,
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
    #[error(transparent)]
    Lifecycle(LifecycleError),
    /// A batch's transaction did not commit; the batch is to be applied again.
    #[error("the batch was not committed: {0}")]
    Commit(String),
    /// A task of the engine's failed (a bug); what it was doing is to be done again.
    #[error("a task failed: {0}")]
    Task(String),
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> SyncError {
        match e {
            StoreError::NotFound => SyncError::NotFound,
            e => SyncError::Store(e),
        }
    }
}

impl From<LifecycleError> for SyncError {
    fn from(e: LifecycleError) -> SyncError {
        match e {
            LifecycleError::NotFound => SyncError::NotFound,
            e => SyncError::Lifecycle(e),
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
    lifecycle: Lifecycle,
    settings: SyncSettings,
    routes: RwLock<Arc<Routes>>,
    metrics: Metrics,
    commits: commit::GroupCommit,
    /// Wakes the supervisor when a project was created, so that its region's consumers start
    /// without waiting for a tick.
    wake: tokio::sync::Notify,
}

impl Inner {
    fn routes(&self) -> Arc<Routes> {
        self.routes.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |r| r.clone())
    }
}

impl SyncEngine {
    pub fn new(store: Store, aws: Aws, lifecycle: Lifecycle, settings: SyncSettings) -> SyncEngine {
        SyncEngine {
            inner: Arc::new(Inner {
                store,
                aws,
                lifecycle,
                settings,
                routes: RwLock::new(Arc::new(Routes::default())),
                metrics: Metrics::default(),
                commits: commit::GroupCommit::default(),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Adds the engine's metrics to the server's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }

    /// Reads the projects again, so that events reach the projects created (or not the ones
    /// deleted) since. The workers also do it on every tick, for other replicas' changes.
    pub async fn refresh_routes(&self) -> Result<(), SyncError> {
        let projects = self.inner.store.projects.list_projects().await?;
        let routes = Arc::new(Routes::new(&projects));
        match self.inner.routes.write() {
            Ok(mut current) => *current = routes,
            Err(poisoned) => *poisoned.into_inner() = routes,
        }
        Ok(())
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
        let (lease, mut run) = self.start_reconcile(&project, reason).await?;
        let started = run.clone();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = reconcile::run(&inner, &project, &mut run).await;
            reconcile::finish(&inner, &mut run, result).await;
            lease.release(&inner).await;
        });
        Ok(started)
    }

    /// Runs a reconcile of the project to its end and returns the finished run.
    pub async fn reconcile(&self, project: Uuid, reason: &str) -> Result<ReconcileRun, SyncError> {
        let project = self.inner.store.projects.get_project(project).await?;
        let (lease, mut run) = self.start_reconcile(&project, reason).await?;
        let result = reconcile::run(&self.inner, &project, &mut run).await;
        reconcile::finish(&self.inner, &mut run, result).await;
        lease.release(&self.inner).await;
        Ok(run)
    }

    /// Takes the project's reconcile lease and records a new run, or gives the lease back.
    async fn start_reconcile(
        &self,
        project: &Project,
        reason: &str,
    ) -> Result<(worker::Lease, ReconcileRun), SyncError> {
        let lease = worker::Lease::take(&self.inner, &format!("reconcile:{}", project.id)).await?;
        match reconcile::start(&self.inner, project, reason).await {
            Ok(run) => Ok((lease, run)),
            Err(e) => {
                lease.release(&self.inner).await;
                Err(e)
            }
        }
    }

    /// Starts the queue consumers and the periodic reconciles.
    pub fn spawn_workers(&self) -> Workers {
        worker::spawn(self.inner.clone())
    }
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
