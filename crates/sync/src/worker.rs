//! The background work: per region, long polls on the queue that apply batches as they come;
//! and a ticker that refreshes the routes, starts consumers for new regions, and reconciles the
//! projects that are due, each under its lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use byos_aws::{QueueInfo, Queues, ReceivedMessage};
use byos_catalog::ReconcileStatus;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{Inbound, Inner, SyncEngine, SyncError};

/// A lease held for one piece of work, renewed in the background while it is held.
pub(crate) struct Lease {
    name: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease, or [`SyncError::Busy`] when someone else holds it.
    pub(crate) async fn take(inner: &Arc<Inner>, name: &str) -> Result<Lease, SyncError> {
        let holder = format!("{}:{}", inner.settings.replica, Uuid::new_v4().simple());
        let now = OffsetDateTime::now_utc();
        if !inner.store.leases.try_lease(name, &holder, now + inner.settings.lease, now).await? {
            return Err(SyncError::Busy);
        }
        let renewal = {
            let (inner, name, holder) = (inner.clone(), name.to_owned(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(inner.settings.lease / 3).await;
                    let now = OffsetDateTime::now_utc();
                    match inner.store.leases.try_lease(&name, &holder, now + inner.settings.lease, now).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(lease = name, "lost a lease to another holder");
                            return;
                        }
                        Err(e) => tracing::warn!(lease = name, error = %e, "cannot renew a lease"),
                    }
                }
            })
        };
        Ok(Lease { name: name.to_owned(), holder, renewal })
    }

    pub(crate) async fn release(self, inner: &Inner) {
        self.renewal.abort();
        if let Err(e) = inner.store.leases.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = self.name, error = %e, "cannot release a lease; it expires by itself");
        }
    }
}

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Stops taking new messages and starting reconciles; what is running goes on.
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops taking new messages and starting reconciles; batches being applied finish, up to
    /// `grace`, and are abandoned after it (their messages come back to the queue).
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

pub(crate) fn spawn(inner: Arc<Inner>) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(supervise(inner, stopped));
    Workers { stop, tasks }
}

/// Waits until `stopped` turns true; returns at once if it already has.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The ticker: routes, consumers per region, and due reconciles.
async fn supervise(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let engine = SyncEngine { inner: inner.clone() };
    let mut consumers: JoinSet<()> = JoinSet::new();
    let mut regions: HashMap<String, ()> = HashMap::new();
    let mut ticker = tokio::time::interval(inner.settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(replica = inner.settings.replica, "sync workers started");
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = inner.wake.notified() => {}
            () = stopping(&mut stopped) => break,
        }
        if let Err(e) = engine.refresh_routes().await {
            tracing::warn!(error = %e, "cannot read the projects");
            continue;
        }
        let projects = match inner.store.projects.list_projects().await {
            Ok(projects) => projects,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the projects");
                continue;
            }
        };
        for project in &projects {
            if regions.insert(project.region.clone(), ()).is_none() {
                for _ in 0..inner.settings.pollers.max(1) {
                    consumers.spawn(consume(inner.clone(), project.region.clone(), stopped.clone()));
                }
            }
        }
        for project in &projects {
            if *stopped.borrow() {
                break;
            }
            if due(&inner, project).await {
                match engine.request_reconcile(project.id, "periodic").await {
                    Ok(_) | Err(SyncError::Busy) => {}
                    Err(e) => tracing::warn!(project = %project.id, error = %e, "cannot start a reconcile"),
                }
            }
        }
    }
    while consumers.join_next().await.is_some() {}
}

/// Whether the project's last reconcile is older than the interval (or failed, or never ran;
/// a project just created gets its import from the request that created it).
async fn due(inner: &Inner, project: &byos_catalog::Project) -> bool {
    match inner.store.sync.latest_reconcile(project.id).await {
        Ok(None) => OffsetDateTime::now_utc() - project.created_at > inner.settings.tick * 12,
        Ok(Some(run)) => match (run.status, run.finished_at) {
            (ReconcileStatus::Running, _) => false,
            (ReconcileStatus::Failed, Some(at)) => OffsetDateTime::now_utc() - at > inner.settings.tick * 12,
            (_, Some(at)) => OffsetDateTime::now_utc() - at > inner.settings.reconcile_interval,
            (_, None) => true,
        },
        Err(e) => {
            tracing::warn!(project = %project.id, error = %e, "cannot read the last reconcile");
            false
        }
    }
}

/// One long poller of a region's queue: receives batches and applies them as they come, up to
/// `sync.in_flight` messages at once, so that batches ready together commit together
/// ([`crate::commit`]); deletes each batch's messages once it is committed.
async fn consume(inner: Arc<Inner>, region: String, mut stopped: watch::Receiver<bool>) {
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
                Err(e) => tracing::warn!(queue = name, error = %e, "cannot look the queue up"),
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
                tracing::warn!(queue = name, error = %e, "cannot receive from the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        // Give back the room the receive did not use.
        if messages.len() < RECEIVE_MAX {
            drop(permits.split(RECEIVE_MAX - messages.len()));
        }
        let (inner, queues, name, url) = (inner.clone(), queues.clone(), name.clone(), found.url.clone());
        batches.spawn(async move {
            let applied = apply_and_delete(&inner, &queues, &name, &url, &messages).await;
            drop(permits);
            applied
        });
    }
    // Batches already received are applied and deleted; the caller bounds how long that takes.
    while batches.join_next().await.is_some() {}
}

/// SQS hands out at most this many messages per receive.
const RECEIVE_MAX: usize = 10;

/// Applies a batch and deletes the messages it is done with; false when it could not be applied.
async fn apply_and_delete(inner: &Inner, queues: &Queues, name: &str, url: &str, messages: &[ReceivedMessage]) -> bool {
    let inbound: Vec<Inbound> = messages
        .iter()
        .map(|m| Inbound { message_id: m.message_id.clone(), body: m.body.clone(), receive_count: m.receive_count })
        .collect();
    match crate::apply::apply_batch(inner, name, &inbound).await {
        Ok(outcome) => {
            let done: Vec<String> = messages
                .iter()
                .zip(&outcome.done)
                .filter(|(_, done)| **done)
                .map(|(m, _)| m.receipt_handle.clone())
                .collect();
            match queues.delete(url, &done).await {
                Ok(0) => {}
                Ok(failed) => tracing::warn!(queue = name, failed, "some applied messages were not deleted"),
                Err(e) => tracing::warn!(queue = name, error = %e, "cannot delete applied messages"),
            }
            outcome.committed
        }
        // The messages come back after the visibility timeout and are applied then.
        Err(e) => {
            tracing::warn!(queue = name, error = %e, "cannot apply a batch");
            false
        }
    }
}
