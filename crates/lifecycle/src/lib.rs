//! The lifecycle of storage configurations: validation (a report of named checks), provisioning
//! of the bucket's event notifications, clean-up on delete, and the background worker that
//! validates new configurations at once, ready ones periodically, and failed ones with backoff.
//!
//! Work on one configuration is guarded by a lease in the store, so that of several replicas
//! sharing one PostgreSQL database exactly one validates it at a time.

mod problems;
mod provision;
mod validate;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use byos_aws::Aws;
use byos_buckets::{Buckets, OpenError};
use byos_catalog::{Configuration, Lease, LeaseLost, Store, StoreError};
use byos_domain::ErrorChain;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use uuid::Uuid;

pub use byos_domain::PROBE_MARKER;
pub use problems::problem as aws_problem;
use worker::Metrics;

/// How the lifecycle behaves.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// The platform's queue in each region is `{queue_name_prefix}-{region}`.
    pub queue_name_prefix: String,
    /// How often a ready configuration is validated again.
    pub reverify_interval: Duration,
    /// The first retry delay of a configuration in error; it doubles with each failure, up to
    /// `reverify_interval`.
    pub retry_base: Duration,
    /// The web console's origin, which the bucket's CORS rules must allow for browser uploads.
    pub console_origin: String,
    /// How many configurations are validated at once.
    pub concurrency: usize,
    /// How long a lease on a piece of work lasts unless renewed; held leases renew every third
    /// of it, and work whose lease is lost stops.
    pub lease: Duration,
    /// How often the worker looks for due configurations when nothing wakes it.
    pub tick: Duration,
    /// This replica's name in leases.
    pub replica: String,
}

impl Default for LifecycleSettings {
    fn default() -> LifecycleSettings {
        LifecycleSettings {
            queue_name_prefix: "byos-events".to_owned(),
            reverify_interval: Duration::from_secs(600),
            retry_base: Duration::from_secs(15),
            console_origin: "http://127.0.0.1:8080".to_owned(),
            concurrency: 16,
            lease: Duration::from_secs(60),
            tick: Duration::from_secs(5),
            replica: format!("byos-{}", Uuid::new_v4().simple()),
        }
    }
}

/// Why a lifecycle operation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error("no such storage configuration")]
    NotFound,
    /// Another replica (or request) is validating this configuration right now.
    #[error("a validation of this configuration is running")]
    Busy,
    /// The configuration's credential cannot be opened.
    #[error(transparent)]
    Open(OpenError),
    /// The work's lease was lost (it could not be renewed in time, or another holder took it
    /// over), so the work stopped where it was; it runs again when next due.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    #[error(transparent)]
    Store(StoreError),
}

impl From<OpenError> for LifecycleError {
    fn from(e: OpenError) -> LifecycleError {
        match e {
            OpenError::NotFound => LifecycleError::NotFound,
            OpenError::Store(e) => LifecycleError::Store(e),
            e => LifecycleError::Open(e),
        }
    }
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> LifecycleError {
        match e {
            StoreError::NotFound => LifecycleError::NotFound,
            e => LifecycleError::Store(e),
        }
    }
}

/// The lifecycle service. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    aws: Aws,
    buckets: Buckets,
    settings: LifecycleSettings,
    wake: Notify,
    metrics: Metrics,
    /// The queue of each region, once known; held while its policy is read, changed and
    /// written, so that concurrent validations do not lose each other's buckets.
    queues: tokio::sync::Mutex<std::collections::HashMap<String, byos_aws::QueueInfo>>,
    /// The platform's own identity, asked of STS once.
    platform: tokio::sync::OnceCell<byos_aws::Identity>,
}

impl Inner {
    /// Takes the lease `name` for this replica, or [`LifecycleError::Busy`].
    async fn lease(&self, name: &str) -> Result<Lease, LifecycleError> {
        Lease::take(&self.store.leases, name, &self.settings.replica, self.settings.lease)
            .await?
            .ok_or(LifecycleError::Busy)
    }

    /// Takes the lease `name`, waiting up to `patience` for its holder to give it up.
    async fn wait_lease(&self, name: &str, patience: Duration) -> Result<Lease, LifecycleError> {
        Lease::wait(&self.store.leases, name, &self.settings.replica, self.settings.lease, patience)
            .await?
            .ok_or(LifecycleError::Busy)
    }
}

impl Lifecycle {
    /// A lifecycle that opens credentials with `buckets`, the opener the server shares.
    pub fn new(store: Store, aws: Aws, buckets: Buckets, settings: LifecycleSettings) -> Lifecycle {
        Lifecycle {
            inner: Arc::new(Inner {
                store,
                aws,
                buckets,
                settings,
                wake: Notify::new(),
                metrics: Metrics::default(),
                queues: tokio::sync::Mutex::new(std::collections::HashMap::new()),
                platform: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Adds the lifecycle's metrics to the server's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }

    /// The platform's own AWS identity: its account, whose roles are never assumed for a
    /// customer, and the principal customers' role trust policies name. Asked of STS once.
    pub async fn platform_identity(&self) -> Result<byos_aws::Identity, byos_aws::AwsError> {
        self.inner.platform.get_or_try_init(|| self.inner.aws.platform_identity()).await.cloned()
    }

    /// Tells the worker that a configuration is waiting (it was just created), so that it does
    /// not wait for its next tick.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Validates (and provisions) a configuration now, holding its lease; returns it as
    /// recorded. [`LifecycleError::Busy`] when another validation of it is running.
    pub async fn validate_now(&self, id: Uuid) -> Result<Configuration, LifecycleError> {
        self.validate(id, false).await
    }

    /// Validates a configuration if it is still due once its lease is held (another replica
    /// may have validated it since the worker read the due list).
    pub(crate) async fn validate_if_due(&self, id: Uuid) -> Result<(), LifecycleError> {
        self.validate(id, true).await.map(|_| ())
    }

    async fn validate(&self, id: Uuid, only_if_due: bool) -> Result<Configuration, LifecycleError> {
        let lease = self.inner.lease(&format!("configuration:{id}")).await?;
        let result = lease.hold(self.validate_holding_lease(id, only_if_due)).await;
        lease.release().await;
        result?
    }

    async fn validate_holding_lease(&self, id: Uuid, only_if_due: bool) -> Result<Configuration, LifecycleError> {
        let configuration = self.inner.store.configurations.get_configuration(id).await?;
        let now = time::OffsetDateTime::now_utc();
        if only_if_due && configuration.next_check_at.is_some_and(|due| due > now) {
            return Ok(configuration);
        }
        let credential = self.inner.store.credentials.get_credential(configuration.spec.credential_id).await.map_err(
            |e| match e {
                // The foreign key makes this impossible short of a damaged database.
                StoreError::NotFound => LifecycleError::Store(StoreError::Corrupt {
                    table: "storage_configurations",
                    reason: format!("configuration {id} names a credential that does not exist"),
                }),
                e => LifecycleError::Store(e),
            },
        )?;
        let secret = self.inner.buckets.secret(&credential, id)?;
        validate::run(&self.inner, &configuration, &secret).await?;
        Ok(self.inner.store.configurations.get_configuration(id).await?)
    }

    /// Removes what the platform provisioned on the bucket for this configuration (its
    /// notification rules, and the bucket from the queue policy when no other configuration
    /// uses it), then the configuration itself. A bucket that cannot be reached does not stop
    /// the delete: the rules left behind are adopted by the next configuration on that prefix.
    pub async fn delete(&self, id: Uuid) -> Result<(), LifecycleError> {
        // Under the lease: a validation running now would put the rules back after removal.
        let lease = self.inner.lease(&format!("configuration:{id}")).await?;
        let result = lease.hold(self.delete_holding_lease(id)).await;
        lease.release().await;
        result?
    }

    async fn delete_holding_lease(&self, id: Uuid) -> Result<(), LifecycleError> {
        let configuration = self.inner.store.configurations.get_configuration(id).await?;
        // Projects keep a configuration: refuse before anything is removed from the bucket.
        let users: Vec<String> = self
            .inner
            .store
            .projects
            .list_projects()
            .await?
            .into_iter()
            .filter(|p| p.configuration_id == id)
            .map(|p| p.name.to_string())
            .collect();
        if !users.is_empty() {
            return Err(LifecycleError::Store(StoreError::Conflict(byos_catalog::Conflict::InUse {
                resource: "storage configuration",
                name: configuration.spec.name.to_string(),
                used_by: "project",
                users,
            })));
        }
        if configuration.validation.is_some() {
            match self.inner.store.credentials.get_credential(configuration.spec.credential_id).await {
                Ok(credential) => match self.inner.buckets.secret(&credential, id) {
                    Ok(secret) => provision::remove(&self.inner, &configuration, &secret).await,
                    Err(e) => {
                        tracing::warn!(configuration = %id, error = %ErrorChain(&e), "cannot clean the bucket up");
                    }
                },
                Err(e) => tracing::warn!(configuration = %id, error = %ErrorChain(&e), "cannot clean the bucket up"),
            }
        }
        self.inner.store.configurations.delete_configuration(id).await?;
        self.inner.buckets.forget(id);
        Ok(())
    }

    /// The background worker: validates what is due until `shutdown` resolves, then lets the
    /// validations under way finish.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        worker::run(self.inner.clone(), shutdown).await;
    }

    /// Runs the worker on its own task until [`Worker::stop`].
    pub fn spawn_worker(&self) -> Worker {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let lifecycle = self.clone();
        let task = tokio::spawn(async move {
            lifecycle
                .run(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                })
                .await;
        });
        Worker { stop, task }
    }
}

/// A running background worker.
#[derive(Debug)]
pub struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Stops looking for new work; the validations under way go on.
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops looking for work, and returns once the validations under way have finished, or
    /// after `grace`, abandoning them (their leases expire by themselves).
    pub async fn stop(mut self, grace: Duration) {
        self.request_stop();
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!("validations did not finish within the grace period; abandoning them");
            self.task.abort();
        }
    }
}
