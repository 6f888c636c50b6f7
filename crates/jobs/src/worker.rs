//! The workers: on a tick or a new job, take up the unfinished jobs whose lease is free, up to
//! `jobs.concurrency` at once; run each to its end under its lease, recording its progress after
//! every step; and say how it ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use byos_aws::AwsError;
use byos_buckets::OpenError;
use byos_catalog::{
    Job, JobObject, JobPlan, JobProgress, JobSpec, JobStatus, Lease, LeaseLost, ObjectResult, Project, StoreError,
};
use byos_domain::{ErrorChain, Problem, ValidationReport};
use byos_sync::SyncError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::{self, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

use crate::Inner;

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Stops taking up jobs; the running ones stop at their next step.
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the workers: the running jobs stop where they are and stay `running`, their leases
    /// given back so that another replica (or this one's next start) takes them up at once.
    pub async fn stop(mut self, grace: Duration) {
        self.request_stop();
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!("jobs did not stop within the grace period; abandoning them");
            self.task.abort();
        }
    }
}

pub(crate) fn spawn(inner: Arc<Inner>) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(supervise(inner, stopped));
    Workers { stop, task }
}

async fn supervise(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(inner.settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: JoinSet<Ended> = JoinSet::new();
    // The jobs this replica runs, by their runner's task.
    let mut here: HashMap<task::Id, Uuid> = HashMap::new();
    // Jobs that stopped on a failure that may pass, and when they are taken up again: a bucket
    // that keeps failing is not asked again and again.
    let mut waiting: HashMap<Uuid, (Instant, Duration)> = HashMap::new();
    let concurrency = inner.settings.concurrency.max(1);
    tracing::info!(replica = inner.settings.replica, concurrency, "job workers started");
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = inner.wake.notified() => {}
            Some(ended) = running.join_next_with_id(), if !running.is_empty() => {
                let (task, ended) = match ended {
                    Ok((task, ended)) => (task, ended),
                    Err(e) => {
                        // A bug: the job stays `running`, and its lease expires by itself.
                        tracing::error!(job = ?here.get(&e.id()), error = %e, "a job's runner failed");
                        (e.id(), Ended::Later)
                    }
                };
                if let Some(id) = here.remove(&task) {
                    match ended {
                        Ended::Done => {
                            waiting.remove(&id);
                        }
                        Ended::Later => {
                            let delay = retry_delay(waiting.get(&id).map(|(_, d)| *d), inner.settings.tick);
                            waiting.insert(id, (Instant::now() + delay, delay));
                        }
                    }
                }
            }
            _ = stopped.wait_for(|s| *s) => break,
        }
        if running.len() >= concurrency {
            continue;
        }
        let jobs = match inner.store.jobs.unfinished_jobs(u32::try_from(concurrency * 4).unwrap_or(u32::MAX)).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot read the unfinished jobs");
                continue;
            }
        };
        // Forget the waits of jobs that ended meanwhile (on another replica, or cancelled).
        waiting.retain(|id, _| jobs.iter().any(|job| job.id == *id));
        for job in jobs {
            if running.len() >= concurrency {
                break;
            }
            if here.values().any(|id| *id == job.id) || waiting.get(&job.id).is_some_and(|(at, _)| *at > Instant::now())
            {
                continue;
            }
            let name = format!("job:{}", job.id);
            match Lease::take(&inner.store.leases, &name, &inner.settings.replica, inner.settings.lease).await {
                Ok(Some(lease)) => {
                    let (inner, stopped, id) = (inner.clone(), stopped.clone(), job.id);
                    let task = running.spawn(async move { run_to_end(&inner, job, lease, stopped).await });
                    here.insert(task.id(), id);
                }
                // Another replica runs it: a copy's planned objects are shared, a range at a time.
                Ok(None) if crate::copy::shared(&job) => {
                    let (inner, stopped, id) = (inner.clone(), stopped.clone(), job.id);
                    let task = running.spawn(async move { help(&inner, job, stopped).await });
                    here.insert(task.id(), id);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(job = %job.id, error = %ErrorChain(&e), "cannot take a job's lease"),
            }
        }
    }
    // The runners heard the stop too: each stops at its next step.
    while running.join_next().await.is_some() {}
}

/// How a runner stopped: the job ended (or is gone), or it is to be taken up again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    Later,
}

/// The longest wait before a job that failed in a way that may pass is taken up again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// How long a job waits after a failure that may pass: the tick after the first, then twice the
/// last wait, up to [`MAX_RETRY_DELAY`].
fn retry_delay(last: Option<Duration>, tick: Duration) -> Duration {
    last.map_or(tick, |last| last * 2).min(MAX_RETRY_DELAY)
}

/// Runs a job under its lease until it ends, stops or must wait, and records which.
async fn run_to_end(inner: &Inner, job: Job, lease: Lease, mut stopped: watch::Receiver<bool>) -> Ended {
    let started = job.status == JobStatus::Queued;
    let mut run = Run { inner, job, pace: Pace::new(inner.settings.objects_per_second) };
    if started {
        tracing::info!(job = %run.job.id, r#type = run.job.spec.kind(), "job started");
    } else {
        tracing::info!(job = %run.job.id, r#type = run.job.spec.kind(), "job taken up again");
    }
    let outcome = tokio::select! {
        outcome = lease.hold(run.execute()) => outcome.unwrap_or_else(|lost| Err(Stop::LeaseLost(lost))),
        _ = stopped.wait_for(|s| *s) => Err(Stop::ShuttingDown),
    };
    let job = &run.job;
    let (status, error) = match outcome {
        Ok(()) => (JobStatus::Succeeded, None),
        Err(Stop::Cancelled) => (JobStatus::Cancelled, None),
        Err(Stop::Failed(problem)) => (JobStatus::Failed, Some(problem)),
        Err(Stop::Gone) => {
            tracing::info!(job = %job.id, "the job's project is gone, and the job with it");
            lease.release().await;
            return Ended::Done;
        }
        Err(Stop::Internal(cause)) => {
            let error_id = Uuid::new_v4().simple().to_string();
            tracing::error!(job = %job.id, error_id, error = %ErrorChain(cause.as_ref()), "a job failed");
            (JobStatus::Failed, Some(Problem::internal(&error_id)))
        }
        Err(stop @ (Stop::Retry(_) | Stop::LeaseLost(_) | Stop::ShuttingDown)) => {
            // Left `running`: the next holder of the lease takes it up where the bucket shows
            // it stopped.
            match &stop {
                Stop::Retry(cause) => {
                    tracing::warn!(job = %job.id, error = %ErrorChain(cause.as_ref()), "a job stopped; it is taken up again later");
                }
                _ => tracing::info!(job = %job.id, reason = %stop, "a job stopped; it is taken up again"),
            }
            lease.release().await;
            return if matches!(stop, Stop::Retry(_)) { Ended::Later } else { Ended::Done };
        }
    };
    let now = OffsetDateTime::now_utc();
    if let Err(e) = inner.store.jobs.finish_job(job.id, status, &job.progress, error.as_ref(), now).await {
        // Still `running` in the store: taken up again, it finds its work done and ends.
        tracing::warn!(job = %job.id, error = %ErrorChain(&e), "cannot record the end of a job");
    }
    inner.metrics.ended(job.spec.kind(), status);
    let p = &job.progress;
    match &error {
        None => tracing::info!(
            job = %job.id, status = status.as_str(), objects = p.objects_done, bytes = p.bytes_done,
            failed = p.objects_failed, "job ended"
        ),
        Some(problem) => tracing::warn!(
            job = %job.id, status = status.as_str(), objects = p.objects_done, failed = p.objects_failed,
            problem = problem.message(), "job ended"
        ),
    }
    lease.release().await;
    Ended::Done
}

/// Copies free ranges of a copy job another replica runs, until none is left; the job's runner
/// ends it. Waits before it helps again when it found nothing to do.
async fn help(inner: &Inner, job: Job, mut stopped: watch::Receiver<bool>) -> Ended {
    let id = job.id;
    let mut run = Run { inner, job, pace: Pace::new(inner.settings.objects_per_second) };
    let helped = tokio::select! {
        helped = crate::copy::help(&mut run) => helped,
        _ = stopped.wait_for(|s| *s) => Err(Stop::ShuttingDown),
    };
    match helped {
        Ok(0) => Ended::Later,
        Ok(objects) => {
            tracing::info!(job = %id, objects, "helped with a copy job another server runs");
            Ended::Done
        }
        Err(stop) => {
            tracing::info!(job = %id, reason = %stop, "stopped helping with a copy job");
            Ended::Later
        }
    }
}

/// Why a job stopped before its end, and so what becomes of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    /// Someone asked it to stop: it ends `cancelled`.
    #[error("cancelled")]
    Cancelled,
    /// It cannot be done: it ends `failed` with this problem.
    #[error("{0}")]
    Failed(Problem),
    /// The platform failed in a way a retry will not mend: it ends `failed`, the cause logged.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
    /// A failure that may pass: the job is taken up again at a later tick.
    #[error(transparent)]
    Retry(Box<dyn std::error::Error + Send + Sync>),
    /// Its project was deleted, and the job with it.
    #[error("the project is gone")]
    Gone,
    #[error(transparent)]
    LeaseLost(LeaseLost),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        match e {
            StoreError::NotFound => Stop::Gone,
            e if e.is_retryable() => Stop::Retry(Box::new(e)),
            e => Stop::Internal(Box::new(e)),
        }
    }
}

impl From<OpenError> for Stop {
    fn from(e: OpenError) -> Stop {
        match e {
            OpenError::Store(e) => e.into(),
            // A project keeps its configuration, and so its credential.
            e => Stop::Internal(Box::new(e)),
        }
    }
}

impl From<SyncError> for Stop {
    fn from(e: SyncError) -> Stop {
        match e {
            SyncError::NotFound => Stop::Gone,
            SyncError::Store(e) => e.into(),
            SyncError::Open(e) => e.into(),
            SyncError::Aws(e) if e.retryable() => Stop::Retry(Box::new(e)),
            SyncError::LeaseLost(lost) => Stop::LeaseLost(lost),
            SyncError::ShuttingDown => Stop::ShuttingDown,
            e @ (SyncError::Busy | SyncError::Commit(_)) => Stop::Retry(Box::new(e)),
            e => Stop::Internal(Box::new(e)),
        }
    }
}

/// An AWS failure on the project's bucket: one that may pass is retried later; the others (a
/// permission the credential lacks, a bucket gone) end the job with the catalogue's problem.
pub(crate) fn aws_stop(e: AwsError, project: &Project) -> Stop {
    if e.retryable() {
        return Stop::Retry(Box::new(e));
    }
    tracing::warn!(project = %project.id, error = %ErrorChain(&e), "an AWS request of a job failed");
    Stop::Failed(byos_lifecycle::aws_problem(&e, project.bucket.as_str(), project.region.as_str()))
}

/// A job being run: its record (progress included) and its pace.
pub(crate) struct Run<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) job: Job,
    pace: Pace,
}

impl Run<'_> {
    async fn execute(&mut self) -> Result<(), Stop> {
        let project = self.inner.store.projects.get_project(self.job.project_id).await?;
        // Recorded running, and a cancel heard, before the first step. A copy taken up again
        // may have helpers on other replicas whose results grow its counters in the store: it
        // reads them rather than writing its own over them.
        if self.job.status == JobStatus::Running && crate::copy::shared(&self.job) {
            self.refresh().await?;
        } else {
            self.step().await?;
        }
        match self.job.spec.clone() {
            JobSpec::DeleteFolder { folder } => crate::delete::delete_folder(self, &project, &folder).await,
            JobSpec::MoveFolder { from, to, overwrite } => {
                crate::moves::move_folder(self, &project, &from, &to, overwrite).await
            }
            JobSpec::Copy(spec) => crate::copy::copy(self, &project, &spec, false).await,
            JobSpec::Move(spec) => crate::copy::copy(self, &project, &spec, true).await,
        }
    }

    /// Sets the job's totals, once, to what the catalog knows of `folder`: they show while the
    /// job runs, and the job's end sets them to what it found.
    pub(crate) async fn count_totals(&mut self, project: &Project, folder: &str) -> Result<(), Stop> {
        if self.job.progress.objects_total.is_some() {
            return Ok(());
        }
        let totals = self.inner.store.data.folder_totals(project.id, folder).await?;
        let progress = self.progress();
        (progress.objects_total, progress.bytes_total) = (Some(totals.files), Some(totals.bytes));
        self.step().await
    }

    /// When the job first started, in milliseconds since the epoch: now, on its first run.
    pub(crate) fn started_ms(&self) -> i64 {
        let started = self.job.started_at.unwrap_or_else(OffsetDateTime::now_utc);
        i64::try_from(started.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    pub(crate) fn progress(&mut self) -> &mut JobProgress {
        &mut self.job.progress
    }

    /// Records the progress so far; stops the job when someone asked it to.
    pub(crate) async fn step(&mut self) -> Result<(), Stop> {
        let now = OffsetDateTime::now_utc();
        let cancel = self.inner.store.jobs.record_job_progress(self.job.id, &self.job.progress, now).await?;
        if cancel {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Records what a copy's preflight found.
    pub(crate) async fn record_preflight(&mut self, report: &ValidationReport) -> Result<(), Stop> {
        self.inner.store.jobs.record_job_preflight(self.job.id, report).await?;
        self.job.preflight = Some(report.clone());
        Ok(())
    }

    /// Records the next objects of a copy's plan, where the plan stands and the progress (its
    /// totals); stops the job when someone asked it to.
    pub(crate) async fn record_plan(&mut self, objects: &[JobObject], plan: &JobPlan) -> Result<(), Stop> {
        let now = OffsetDateTime::now_utc();
        let jobs = &self.inner.store.jobs;
        let cancel = jobs.plan_job_objects(self.job.id, objects, plan, &self.job.progress, now).await?;
        self.job.plan = Some(plan.clone());
        if cancel {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Records what became of some objects of a copy, with the progress they make (the job's
    /// progress is then every replica's); stops the job when someone asked it to.
    pub(crate) async fn record_objects(&mut self, results: &[(u64, ObjectResult, Option<String>)]) -> Result<(), Stop> {
        let now = OffsetDateTime::now_utc();
        let recorded = self.inner.store.jobs.record_job_objects(self.job.id, results, now).await?;
        for (_, result, _) in results {
            self.inner.metrics.object(*result);
        }
        self.job.progress = recorded.progress;
        if recorded.cancel {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// The job as the store has it now (other replicas' results in its progress); stops the
    /// job when someone asked it to.
    pub(crate) async fn refresh(&mut self) -> Result<(), Stop> {
        let stored = self.inner.store.jobs.get_job(self.job.id).await?;
        self.job.progress = stored.progress;
        if stored.cancel_requested || stored.status == JobStatus::Cancelled {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Waits until a batch may be written under `jobs.objects_per_second`.
    pub(crate) async fn pace(&mut self) {
        self.pace.wait().await;
    }

    /// Counts a batch of `objects` written now: the next waits its time.
    pub(crate) fn paced(&mut self, objects: usize) {
        self.pace.done(objects, Instant::now());
    }
}

/// How late the timer may wake a task: tokio's counts whole milliseconds.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Spreads writes at `per_second` objects a second at most: after a batch of `n` ends, the next
/// waits `n / per_second`. Counted from a batch's end, so that slow answers slow the job down
/// rather than let it catch up in a burst.
///
/// Writes closer together than the timer's tick (a copy started every third of a millisecond
/// at 3,000 a second) keep to their schedule instead: a wait the timer ended up to a tick late
/// is made up by the writes after it, which go at once, so the rate is the one asked for and
/// not a write per tick.
struct Pace {
    per_second: f64,
    next: Instant,
}

impl Pace {
    fn new(per_second: u32) -> Pace {
        Pace { per_second: f64::from(per_second.max(1)), next: Instant::now() }
    }

    /// Waits until the next write's time; not at all when it has come.
    async fn wait(&self) {
        if self.next > Instant::now() {
            tokio::time::sleep_until(self.next).await;
        }
    }

    fn done(&mut self, objects: usize, now: Instant) {
        let from = if now.saturating_duration_since(self.next) <= TIMER_TICK { self.next } else { now };
        self.next = from + Duration::from_secs_f64(objects as f64 / self.per_second);
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    r#type: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    result: &'static str,
}

/// Jobs ended, by type and status; copy and move jobs' objects this replica recorded.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    ended: Family<EndLabels, Counter>,
    objects: Family<ObjectLabels, Counter>,
}

impl Metrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("jobs_ended", "Jobs that ended, by type and status", self.ended.clone());
        registry.register(
            "job_objects",
            "Objects of copy and move jobs this server recorded, by result",
            self.objects.clone(),
        );
    }

    fn ended(&self, kind: &'static str, status: JobStatus) {
        self.ended.get_or_create(&EndLabels { r#type: kind, status: status.as_str() }).inc();
    }

    fn object(&self, result: ObjectResult) {
        self.objects.get_or_create(&ObjectLabels { result: result.as_str() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time() {
        let tick = Duration::from_secs(5);
        let mut waits = Vec::new();
        let mut last = None;
        for _ in 0..8 {
            let next = retry_delay(last, tick);
            waits.push(next.as_secs());
            last = Some(next);
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn batches_keep_to_the_rate() {
        let mut pace = Pace::new(1_000);
        let t0 = pace.next;
        assert!(t0 <= Instant::now(), "the first batch goes at once");
        pace.done(1_000, t0);
        assert_eq!(pace.next, t0 + Duration::from_secs(1));
        // A slow batch: the next waits its time after it, not after the one before.
        let late = t0 + Duration::from_secs(5);
        pace.done(10, late);
        assert_eq!(pace.next, late + Duration::from_millis(10));
    }

    /// At 3,000 a second a copy starts every third of a millisecond, closer than the timer's
    /// tick: the rate must still be 3,000, not the one start per tick the timer would allow.
    #[tokio::test(start_paused = true)]
    async fn starts_closer_than_a_timer_tick_keep_to_the_rate() {
        let mut pace = Pace::new(3_000);
        let second = Instant::now() + Duration::from_secs(1);
        let mut started = 0;
        loop {
            pace.wait().await;
            let now = Instant::now();
            if now >= second {
                break;
            }
            pace.done(1, now);
            started += 1;
        }
        assert!((2_990..=3_000).contains(&started), "{started} starts in a second at 3,000 a second");
    }
}
