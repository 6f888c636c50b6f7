//! The background work: per region, long polls on the queue that apply batches as they come;
//! and a ticker that refreshes the routes, starts consumers for new regions, and reconciles the
//! projects that are due, each under its lease.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use byos_aws::{QueueInfo, Queues, ReceivedMessage};
use byos_catalog::ReconcileSchedule;
use byos_domain::{AwsRegion, ErrorChain};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::{Inbound, Inner, SyncEngine, SyncError};

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Stops taking new messages and starting reconciles; what is running goes on.
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops taking new messages and starting reconciles, and stops the reconciles running
    /// (they end `interrupted`, so that the next start runs them again); batches being applied
    /// finish, up to `grace`, and are abandoned after it (their messages come back to the queue).
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let inner = self.inner.clone();
        let all = async {
            while self.tasks.join_next().await.is_some() {}
            inner.stop_reconciles().await;
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

pub(crate) fn spawn(inner: Arc<Inner>) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(supervise(inner.clone(), stopped));
    Workers { inner, stop, tasks }
}

/// Waits until `stopped` turns true; returns at once if it already has.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The ticker: routes, consumers per region (restarted if one ends), and due reconciles.
async fn supervise(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let engine = SyncEngine { inner: inner.clone() };
    let mut consumers = {
        let (inner, stopped) = (inner.clone(), stopped.clone());
        Consumers::new(
            inner.settings.pollers.max(1),
            RESTART_BASE,
            stopped.clone(),
            move |region: AwsRegion, delay: Duration| {
                let (inner, mut stopped) = (inner.clone(), stopped.clone());
                Box::pin(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stopping(&mut stopped) => return,
                    }
                    consume(inner, region, stopped).await;
                }) as ConsumerFuture
            },
        )
    };
    let mut ticker = tokio::time::interval(inner.settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(replica = inner.settings.replica, "sync workers started");
    // Changes of keys outside projects are noted from now on (an inventory report older than
    // this cannot be completed by them).
    if let Err(e) = engine.start_noting().await {
        tracing::warn!(error = %ErrorChain(&e), "cannot record since when changes outside projects are noted");
    }
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = inner.wake.notified() => {}
            () = consumers.restart_ended(), if !consumers.is_empty() => continue,
            () = stopping(&mut stopped) => break,
        }
        let projects = match engine.reload_routes().await {
            Ok(projects) => projects,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot read the projects");
                continue;
            }
        };
        for project in &projects {
            consumers.ensure(&project.region);
        }
        let due = match inner.store.sync.due_reconciles(&schedule(&inner.settings, OffsetDateTime::now_utc())).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot read the due reconciles");
                continue;
            }
        };
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            if let Err(e) = crate::inventory::prune(&inner).await {
                tracing::warn!(error = %ErrorChain(&e), "cannot forget the old changes noted outside projects");
            }
        }
        for project in due {
            if *stopped.borrow() {
                break;
            }
            match engine.request_reconcile(project, "periodic").await {
                Ok(_) | Err(SyncError::Busy | SyncError::NotFound) => {}
                Err(e) => tracing::warn!(project = %project, error = %ErrorChain(&e), "cannot start a reconcile"),
            }
        }
    }
    consumers.join().await;
}

/// When a project is due for a reconcile: its interval after the last finished run; soon after
/// a failed or interrupted one; a run that has recorded no progress for a lease's time may have
/// lost its replica (the project's lease decides); a project that never ran once its creator
/// had the time to start its import.
fn schedule(settings: &crate::SyncSettings, now: OffsetDateTime) -> ReconcileSchedule {
    ReconcileSchedule {
        created_before: now - settings.tick * 12,
        running_stale_before: now - settings.lease,
        failed_before: now - settings.tick * 12,
        finished_before: now - settings.reconcile_interval,
    }
}

/// How often the changes noted outside projects are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The first restart of a consumer that ended comes after this; each further one in a row
/// after twice the last, up to [`RESTART_MAX`].
const RESTART_BASE: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A consumer that ran this long before it ended starts its backoff afresh.
const RESTART_FORGIVEN_AFTER: Duration = Duration::from_secs(300);

type ConsumerFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The long pollers of each region's queue, `pollers` per region. A poller only ends when the
/// workers stop; one that ends before (a panic: a bug) is restarted with a doubling backoff, so
/// that a region never goes unconsumed.
struct Consumers<S> {
    pollers: usize,
    base: Duration,
    /// Turns true when the workers stop: pollers that end then are done, not failed.
    stopped: watch::Receiver<bool>,
    /// Makes a poller of a region that starts after a delay.
    spawn: S,
    tasks: JoinSet<()>,
    /// Each running poller's region and when it started.
    running: HashMap<tokio::task::Id, (AwsRegion, tokio::time::Instant)>,
    regions: HashSet<AwsRegion>,
    /// Restarts in a row, per region.
    restarts: HashMap<AwsRegion, u32>,
}

impl<S: Fn(AwsRegion, Duration) -> ConsumerFuture> Consumers<S> {
    fn new(pollers: usize, base: Duration, stopped: watch::Receiver<bool>, spawn: S) -> Consumers<S> {
        Consumers {
            pollers,
            base,
            stopped,
            spawn,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            regions: HashSet::new(),
            restarts: HashMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Starts the region's pollers, if it has none yet.
    fn ensure(&mut self, region: &AwsRegion) {
        if self.regions.insert(region.clone()) {
            for _ in 0..self.pollers {
                self.start(region, Duration::ZERO);
            }
        }
    }

    fn start(&mut self, region: &AwsRegion, delay: Duration) {
        let handle = self.tasks.spawn((self.spawn)(region.clone(), delay));
        self.running.insert(handle.id(), (region.clone(), tokio::time::Instant::now() + delay));
    }

    /// Waits for a poller to end, and starts it again after its backoff, unless the workers are
    /// stopping (pollers end then). Cancel-safe.
    async fn restart_ended(&mut self) {
        let Some(ended) = self.tasks.join_next_with_id().await else { return };
        let (id, panic) = match ended {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        let Some((region, started)) = self.running.remove(&id) else { return };
        if *self.stopped.borrow() {
            if let Some(panic) = panic.filter(tokio::task::JoinError::is_panic) {
                tracing::error!(region = %region, error = %panic, "a queue consumer failed while the workers stop");
            }
            return;
        }
        let restarts = self.restarts.entry(region.clone()).or_default();
        if started.elapsed() >= RESTART_FORGIVEN_AFTER {
            *restarts = 0;
        }
        let delay = self.base.saturating_mul(1 << (*restarts).min(16)).min(RESTART_MAX);
        *restarts += 1;
        let error = panic.map(|e| e.to_string()).unwrap_or_else(|| "it returned".to_owned());
        tracing::error!(region = %region, error, ?delay, "a queue consumer ended; restarting it");
        self.start(&region, delay);
    }

    /// How many times the region's pollers were restarted in a row.
    #[cfg(test)]
    fn restarts(&self, region: &AwsRegion) -> u32 {
        self.restarts.get(region).copied().unwrap_or_default()
    }

    /// Waits for every poller to end (the workers are stopping).
    async fn join(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One long poller of a region's queue: receives batches and applies them as they come, up to
/// `sync.in_flight` messages at once, so that batches ready together commit together
/// ([`crate::commit`]); deletes each batch's messages once it is committed.
async fn consume(inner: Arc<Inner>, region: AwsRegion, mut stopped: watch::Receiver<bool>) {
    let name = format!("{}-{region}", inner.settings.queue_name_prefix);
    let queues = inner.aws.queues(&region);
    let mut queue: Option<QueueInfo> = None;
    let visibility = i32::try_from(inner.settings.visibility.as_secs()).unwrap_or(i32::MAX);
    let in_flight = Arc::new(Semaphore::new(inner.settings.in_flight.max(RECEIVE_MAX)));
    // Each batch says whether it was applied.
    let mut batches: JoinSet<bool> = JoinSet::new();
    while !*stopped.borrow() {
        let mut failed = false;
        while let Some(finished) = batches.try_join_next() {
            failed |= !finished.unwrap_or(false);
        }
        if failed {
            // The store (or S3) is failing: slow down rather than take messages only to fail them.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stopping(&mut stopped) => break,
            }
        }
        let Some(found) = &queue else {
            // The lifecycle creates the queue when it validates the region's first configuration.
            match queues.find(&name).await {
                Ok(Some(found)) => queue = Some(found),
                Ok(None) => {}
                Err(e) => tracing::warn!(queue = name, error = %ErrorChain(&e), "cannot look the queue up"),
            }
            if queue.is_none() {
                tokio::select! {
                    () = tokio::time::sleep(inner.settings.tick) => {}
                    () = stopping(&mut stopped) => {}
                }
            }
            continue;
        };
        // Room for a whole receive first: messages are never held without a batch to apply them.
        let permits = tokio::select! {
            permits = in_flight.clone().acquire_many_owned(RECEIVE_MAX as u32) => permits,
            () = stopping(&mut stopped) => break,
        };
        let Ok(mut permits) = permits else { break };
        let received = tokio::select! {
            received = queues.receive(&found.url, RECEIVE_MAX as i32, 20, visibility) => received,
            () = stopping(&mut stopped) => break,
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(queue = name, error = %ErrorChain(&e), "cannot receive from the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let partial = messages.len() < RECEIVE_MAX;
        // Give back the room the receive did not use.
        if partial {
            drop(permits.split(RECEIVE_MAX - messages.len()));
        }
        let batch = (inner.clone(), queues.clone(), name.clone(), found.url.clone());
        batches.spawn(async move {
            let (inner, queues, name, url) = batch;
            let applied = apply_and_delete(&inner, &queues, &name, &url, messages).await;
            drop(permits);
            applied
        });
        // A trickle: the next receive waits for more to gather (`sync.batch_window`).
        if partial && !inner.settings.batch_window.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(inner.settings.batch_window) => {}
                () = stopping(&mut stopped) => break,
            }
        }
    }
    // Batches already received are applied and deleted; the caller bounds how long that takes.
    while batches.join_next().await.is_some() {}
}

/// SQS hands out at most this many messages per receive.
const RECEIVE_MAX: usize = 10;

/// Applies a batch and deletes the messages it is done with; false when it could not be applied.
/// The messages' bodies move into the batch, uncopied.
async fn apply_and_delete(
    inner: &Inner,
    queues: &Queues,
    name: &str,
    url: &str,
    messages: Vec<ReceivedMessage>,
) -> bool {
    let (handles, inbound): (Vec<String>, Vec<Inbound>) = messages
        .into_iter()
        .map(|m| (m.receipt_handle, Inbound { message_id: m.message_id, body: m.body, receive_count: m.receive_count }))
        .unzip();
    match crate::apply::apply_batch(inner, name, &inbound).await {
        Ok(outcome) => {
            let done: Vec<String> =
                handles.into_iter().zip(&outcome.done).filter(|(_, done)| **done).map(|(handle, _)| handle).collect();
            match queues.delete(url, &done).await {
                Ok(0) => {}
                Ok(failed) => tracing::warn!(queue = name, failed, "some applied messages were not deleted"),
                Err(e) => tracing::warn!(queue = name, error = %ErrorChain(&e), "cannot delete applied messages"),
            }
            outcome.committed
        }
        // The messages come back after the visibility timeout and are applied then.
        Err(e) => {
            tracing::warn!(queue = name, error = %ErrorChain(&e), "cannot apply a batch");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A poller that panics is started again, with its backoff, until it keeps running.
    #[tokio::test]
    async fn a_consumer_that_ends_is_restarted() {
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let (_stop, stopped) = watch::channel(false);
        let mut consumers = Consumers::new(2, Duration::ZERO, stopped, move |region: AwsRegion, _delay: Duration| {
            // The first three starts fail; the rest run until stopped.
            let start = counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if start < 3 {
                    panic!("the consumer of {region} failed");
                }
                std::future::pending::<()>().await;
            }) as ConsumerFuture
        });
        let region = AwsRegion::parse("eu-central-1").unwrap();
        consumers.ensure(&region);
        consumers.ensure(&region);
        // Two pollers, three failures, each restarted: five starts in all, then both run on.
        for _ in 0..3 {
            consumers.restart_ended().await;
        }
        assert_eq!(consumers.restarts(&region), 3);
        assert_eq!(consumers.tasks.len(), 2, "both pollers run");
        let still = tokio::time::timeout(Duration::from_millis(50), consumers.restart_ended()).await;
        assert!(still.is_err(), "no poller ended");
        assert_eq!(starts.load(Ordering::SeqCst), 5);
    }

    /// Pollers end when the workers stop: that is no failure, and none is started again.
    #[tokio::test]
    async fn consumers_that_end_because_the_workers_stop_are_not_restarted() {
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let (stop, stopped) = watch::channel(false);
        let watched = stopped.clone();
        let mut consumers = Consumers::new(3, Duration::ZERO, stopped, move |_region: AwsRegion, _delay: Duration| {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut stopped = watched.clone();
            Box::pin(async move { stopping(&mut stopped).await }) as ConsumerFuture
        });
        consumers.ensure(&AwsRegion::parse("eu-west-2").unwrap());
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        stop.send(true).unwrap();
        // Each call sees one poller end; with all three gone it returns at once.
        for _ in 0..4 {
            consumers.restart_ended().await;
        }
        assert!(consumers.is_empty(), "every poller ended and none was started again");
        assert_eq!(starts.load(Ordering::SeqCst), 3, "no poller was restarted");
        assert_eq!(consumers.restarts(&AwsRegion::parse("eu-west-2").unwrap()), 0);
    }

    #[test]
    fn reconciles_are_due_by_their_latest_run() {
        let settings = crate::SyncSettings {
            tick: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(3600),
            ..crate::SyncSettings::default()
        };
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let schedule = schedule(&settings, now);
        assert_eq!(now - schedule.created_before, time::Duration::seconds(60));
        assert_eq!(now - schedule.running_stale_before, time::Duration::seconds(60));
        assert_eq!(now - schedule.failed_before, time::Duration::seconds(60));
        assert_eq!(now - schedule.finished_before, time::Duration::seconds(3600));
    }
}
