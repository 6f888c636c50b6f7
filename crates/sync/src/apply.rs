//! One batch of queue messages: parse, route each record to its project, read from S3 the keys
//! whose events cannot be placed by themselves, and apply everything to the catalog, one
//! transaction per project, shared with the batches ready at the same time ([`crate::commit`]).
//! The caller deletes a message from the queue only after this returns it as done: a message
//! leaves the queue only after its batch is committed.

use std::collections::HashMap;
use std::sync::Arc;

use byos_aws::BucketAccess;

use byos_catalog::{DeadLetter, KeyUpdate};
use byos_domain::VersioningState;
use byos_domain::events::{Message, parse_message};
use byos_domain::is_probe_key;
use byos_domain::objects::{Change, Observation};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{Inner, SyncError, lookup};

/// Keys of one batch read from S3 at once.
const LOOKUPS_AT_ONCE: usize = 16;

/// After this many deliveries, a message whose keys S3 still will not show, or whose batch still
/// cannot be committed, is kept as a dead letter rather than retried forever.
const MAX_RECEIVES: u32 = 10;

/// A message taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub message_id: String,
    pub body: String,
    /// How many times the queue has delivered it, this time included.
    pub receive_count: u32,
}

/// What a batch did. `done[i]` says whether message `i` may leave the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub done: Vec<bool>,
    /// Whether the batch's updates were committed. When they were not, the messages that fed
    /// them come back from the queue (or, delivered too often, are kept as dead letters).
    pub committed: bool,
    /// Records applied as events.
    pub records: u64,
    /// Records for keys read from S3 instead.
    pub looked_up: u64,
    /// Records of no project, probe objects, and events that change nothing the catalog keeps.
    pub ignored: u64,
    pub test_events: u64,
    pub dead_letters: u64,
}

/// A key to read from S3, and the messages that asked for it.
struct Lookup {
    configuration: Uuid,
    bucket: String,
    key: String,
    messages: Vec<usize>,
}

pub(crate) async fn apply_batch(inner: &Inner, queue: &str, messages: &[Inbound]) -> Result<BatchOutcome, SyncError> {
    let routes = inner.routes();
    let mut outcome = BatchOutcome { done: vec![true; messages.len()], ..BatchOutcome::default() };
    // The messages whose records feed the catalog's updates.
    let mut feeding = vec![false; messages.len()];
    // Per project, per relative key: its changes, in arrival order (order does not matter).
    let mut changes: HashMap<Uuid, HashMap<String, Vec<Change>>> = HashMap::new();
    let mut lookups: HashMap<(Uuid, String), Lookup> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let records = match parse_message(&message.body) {
            Ok(Message::TestEvent { .. }) => {
                outcome.test_events += 1;
                continue;
            }
            Ok(Message::Records(records)) => records,
            Err(e) => {
                dead_letter(inner, queue, message, &e.to_string()).await?;
                outcome.dead_letters += 1;
                continue;
            }
        };
        for record in &records {
            let routed = if is_probe_key(&record.key) { None } else { routes.route(&record.bucket, &record.key) };
            let Some((route, relative)) = routed else {
                outcome.ignored += 1;
                continue;
            };
            match Change::from_record(record) {
                Ok(Some(change)) => {
                    outcome.records += 1;
                    feeding[index] = true;
                    changes.entry(route.project).or_default().entry(relative.to_owned()).or_default().push(change);
                }
                Ok(None) => outcome.ignored += 1,
                Err(_) => {
                    outcome.looked_up += 1;
                    let lookup = lookups.entry((route.project, relative.to_owned())).or_insert_with(|| Lookup {
                        configuration: route.configuration,
                        bucket: record.bucket.clone(),
                        key: record.key.clone(),
                        messages: Vec::new(),
                    });
                    lookup.messages.push(index);
                }
            }
        }
    }

    let mut updates: HashMap<Uuid, Vec<KeyUpdate>> = HashMap::new();
    for (project, keys) in changes {
        updates
            .entry(project)
            .or_default()
            .extend(keys.into_iter().map(|(key, changes)| KeyUpdate::Changes { key, changes }));
    }
    for (project, relative, lookup, observed) in look_up_all(inner, lookups).await? {
        match observed {
            Ok(observation) => {
                for index in lookup.messages {
                    feeding[index] = true;
                }
                updates.entry(project).or_default().push(KeyUpdate::Observed {
                    key: relative,
                    observation,
                    fence: None,
                });
            }
            Err(e) => {
                tracing::warn!(bucket = %lookup.bucket, key = %lookup.key, error = %e, "cannot read the key from S3");
                for index in lookup.messages {
                    let message = &messages[index];
                    if message.receive_count >= MAX_RECEIVES {
                        dead_letter(inner, queue, message, &format!("S3 would not show {}: {e}", lookup.key)).await?;
                        outcome.dead_letters += 1;
                    } else {
                        outcome.done[index] = false;
                    }
                }
            }
        }
    }
    match inner.commits.commit(&inner.store, updates).await {
        Ok(()) => outcome.committed = true,
        // The batch could not be applied, alone or with others. Its messages come back from the
        // queue; one that came back too often is kept as a dead letter, as an unreadable one is,
        // rather than fail forever (the next reconcile brings in what it held).
        Err(SyncError::Commit(e)) => {
            for (index, message) in messages.iter().enumerate() {
                if !feeding[index] || !outcome.done[index] {
                    continue;
                }
                if message.receive_count >= MAX_RECEIVES {
                    dead_letter(inner, queue, message, &format!("its batch cannot be committed: {e}")).await?;
                    outcome.dead_letters += 1;
                } else {
                    outcome.done[index] = false;
                }
            }
        }
        Err(e) => return Err(e),
    }
    inner.metrics.observe(&outcome);
    Ok(outcome)
}

/// Reads the keys from S3, up to [`LOOKUPS_AT_ONCE`] at a time, each configuration's access
/// opened once.
async fn look_up_all(
    inner: &Inner,
    lookups: HashMap<(Uuid, String), Lookup>,
) -> Result<Vec<(Uuid, String, Lookup, Result<Observation, String>)>, SyncError> {
    let mut access: HashMap<Uuid, Result<(Option<VersioningState>, BucketAccess), String>> = HashMap::new();
    for lookup in lookups.values() {
        if let std::collections::hash_map::Entry::Vacant(vacant) = access.entry(lookup.configuration) {
            let opened = inner.lifecycle.bucket_access(lookup.configuration).await;
            vacant.insert(opened.map(|(c, a)| (c.versioning, a)).map_err(|e| SyncError::from(e).to_string()));
        }
    }
    let room = Arc::new(Semaphore::new(LOOKUPS_AT_ONCE));
    let mut running = JoinSet::new();
    let mut done = Vec::with_capacity(lookups.len());
    for ((project, relative), lookup) in lookups {
        let (versioning, access) = match access.get(&lookup.configuration) {
            Some(Ok((versioning, access))) => (*versioning, access.clone()),
            Some(Err(e)) => {
                done.push((project, relative, lookup, Err(e.clone())));
                continue;
            }
            None => unreachable!("every lookup's configuration was opened above"),
        };
        let room = room.clone();
        running.spawn(async move {
            let _turn = room.acquire_owned().await;
            let observed = lookup::look_up(&access, &lookup.bucket, &lookup.key, versioning).await;
            let observed = observed.map_err(|e| e.to_string());
            (project, relative, lookup, observed)
        });
    }
    while let Some(finished) = running.join_next().await {
        // A lookup cannot panic short of a bug; the whole batch then comes back from the queue.
        done.push(finished.map_err(|e| SyncError::Task(e.to_string()))?);
    }
    Ok(done)
}

async fn dead_letter(inner: &Inner, queue: &str, message: &Inbound, error: &str) -> Result<(), SyncError> {
    tracing::warn!(queue, message = %message.message_id, error, "a message went to the dead letters");
    let letter = DeadLetter {
        id: Uuid::new_v4(),
        queue: queue.to_owned(),
        message_id: message.message_id.clone(),
        body: message.body.clone(),
        error: error.to_owned(),
        received_at: OffsetDateTime::now_utc(),
    };
    inner.store.sync.insert_dead_letter(&letter).await?;
    Ok(())
}
