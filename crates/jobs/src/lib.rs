//! Jobs: long operations on a project's data (a folder's delete, a folder's move, copies and
//! moves between projects), kept in the
//! store and run by the workers of every replica, each job under its lease `job:{id}`.
//!
//! A job survives its replica: one that stops (a shutdown, a kill, a lost lease) leaves its job
//! `running` in the store, and the next holder of the lease takes it up. Every step of a job is
//! safe to do again, so a job resumes from what the bucket shows: a delete lists what is left, a
//! move copies what is not yet at its destination. Progress is recorded after each step; a
//! cancel request is heard at the next one. Errors that may pass (throttling, an unreachable
//! endpoint, a busy database) leave the job to be taken up again at a later tick; the others end
//! it `failed` with the catalogue's problem.

mod copy;
mod delete;
mod moves;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use byos_buckets::Buckets;
use byos_catalog::{Job, Store, StoreError};
use byos_domain::RegionTable;
use byos_sync::SyncEngine;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

pub use copy::{destination_path, glob_of};
pub use moves::{CopyError, CopySettings, Source, copy_verified};
pub use worker::Workers;

/// How jobs run.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs one replica runs at once.
    pub concurrency: usize,
    /// Objects a job deletes or copies per second at most: S3 takes about 3,500 writes a second
    /// on one prefix before it answers SlowDown, and a job must leave room for the bucket's
    /// other users.
    pub objects_per_second: u32,
    /// Copies one job makes at once (a folder's move, a copy or move job); S3 throttling halves
    /// a copy job's for a while. A small object's copy takes S3 tens of milliseconds, so
    /// `objects_per_second` (3,000) needs about 250 in flight; s5cmd runs 256 workers.
    pub copies_at_once: usize,
    /// Objects of a copy job's plan one replica takes at a time: several replicas share a job
    /// by ranges of its plan, each under a lease of its own.
    pub copy_range_objects: u64,
    /// How each object is copied: in one request, or in parts.
    pub copies: CopySettings,
    /// How often the workers look for jobs to take up (a new job wakes them at once).
    pub tick: Duration,
    /// How long a job's lease lasts without renewal: how soon another replica takes over the
    /// job of one that died.
    pub lease: Duration,
    /// This replica's name in leases.
    pub replica: String,
}

impl Default for JobSettings {
    fn default() -> JobSettings {
        JobSettings {
            concurrency: 4,
            objects_per_second: 3_000,
            copies_at_once: 256,
            copy_range_objects: 10_000,
            copies: CopySettings::default(),
            tick: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            replica: format!("byos-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

/// The job engine: takes new jobs, and runs them in its workers. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    buckets: Buckets,
    sync: SyncEngine,
    settings: JobSettings,
    /// The platform's regions: each one's cross-account copy role copies between
    /// configurations that share no credential.
    regions: RegionTable,
    /// Wakes the workers when a job is submitted.
    wake: Notify,
    metrics: worker::Metrics,
}

impl Jobs {
    pub fn new(store: Store, buckets: Buckets, sync: SyncEngine, settings: JobSettings, regions: RegionTable) -> Jobs {
        let metrics = worker::Metrics::default();
        let inner = Inner { store, buckets, sync, settings, regions, wake: Notify::new(), metrics };
        Jobs { inner: Arc::new(inner) }
    }

    /// Keeps a new job and wakes the workers; `NotFound` when its project is gone.
    pub async fn submit(&self, job: Job) -> Result<Job, StoreError> {
        self.inner.store.jobs.insert_job(&job).await?;
        tracing::info!(job = %job.id, project = %job.project_id, r#type = job.spec.kind(), "job queued");
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Starts the workers that take up jobs.
    pub fn spawn_workers(&self) -> Workers {
        worker::spawn(self.inner.clone())
    }

    pub fn settings(&self) -> &JobSettings {
        &self.inner.settings
    }

    /// The engine's counters: jobs ended, by type and status.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }
}
