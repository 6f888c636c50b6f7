//! One batch of queue messages: parse, route each record to its project, read from S3 the keys
//! whose events cannot be placed by themselves, and apply everything to the catalog, one
//! transaction per project, shared with the batches ready at the same time ([`crate::commit`]).
//! The caller deletes a message from the queue only after this returns it as done: a message
//! leaves the queue only after its batch is committed.

use std::collections::HashMap;
use std::sync::Arc;

use byos_aws::{AwsError, BucketAccess};
use byos_buckets::OpenError;
use byos_catalog::{DeadLetter, KeyUpdate, OutsideChange, storable_key};
use byos_domain::events::{Message, parse_message};
use byos_domain::is_probe_key;
use byos_domain::objects::{Change, Observation};
use byos_domain::{ErrorChain, VersioningState};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{CommitError, Inner, SyncError, lookup};

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
    let Prepared { mut outcome, feeding, updates } = prepare(inner, queue, messages).await?;
    match inner.commits.commit(&inner.store, updates).await {
        Ok(()) => outcome.committed = true,
        // The batch could not be applied, alone or with others. With several messages feeding
        // it, each is applied on its own, so that one that cannot be applied does not hold back
        // the others.
        Err(SyncError::Commit(e)) => {
            let failed: Vec<usize> = (0..messages.len()).filter(|&i| feeding[i] && outcome.done[i]).collect();
            let mut committed = true;
            if let [index] = failed.as_slice() {
                committed = false;
                not_committed(inner, queue, messages, *index, &e, &mut outcome).await?;
            } else {
                for index in failed {
                    let alone = prepare(inner, queue, &messages[index..=index]).await?;
                    outcome.done[index] = alone.outcome.done[0];
                    outcome.dead_letters += alone.outcome.dead_letters;
                    match inner.commits.commit(&inner.store, alone.updates).await {
                        Ok(()) => {}
                        Err(SyncError::Commit(e)) => {
                            committed = false;
                            not_committed(inner, queue, messages, index, &e, &mut outcome).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            outcome.committed = committed;
        }
        Err(e) => return Err(e),
    }
    inner.metrics.observe(&outcome);
    Ok(outcome)
}

/// A message whose updates could not be committed comes back from the queue; one that came back
/// too often is kept as a dead letter, as an unreadable one is, rather than fail forever (the
/// next reconcile brings in what it held).
async fn not_committed(
    inner: &Inner,
    queue: &str,
    messages: &[Inbound],
    index: usize,
    error: &CommitError,
    outcome: &mut BatchOutcome,
) -> Result<(), SyncError> {
    if !outcome.done[index] {
        return Ok(());
    }
    let message = &messages[index];
    if message.receive_count >= MAX_RECEIVES {
        dead_letter(inner, queue, message, &format!("its updates cannot be committed: {}", ErrorChain(error))).await?;
        outcome.dead_letters += 1;
    } else {
        outcome.done[index] = false;
    }
    Ok(())
}

/// A batch read and ready to commit.
struct Prepared {
    /// What became of each message so far: `done` is false for those whose keys S3 would not
    /// show; unreadable ones are dead letters already.
    outcome: BatchOutcome,
    /// The messages whose records feed `updates`.
    feeding: Vec<bool>,
    updates: HashMap<Uuid, Vec<KeyUpdate>>,
}

/// Parses the messages, routes their records, reads from S3 the keys whose events cannot be
/// placed by themselves, and gathers the updates per project.
async fn prepare(inner: &Inner, queue: &str, messages: &[Inbound]) -> Result<Prepared, SyncError> {
    let routes = inner.routes();
    let mut outcome = BatchOutcome { done: vec![true; messages.len()], ..BatchOutcome::default() };
    let mut feeding = vec![false; messages.len()];
    // Per project, per relative key: its changes, in arrival order (order does not matter).
    let mut changes: HashMap<Uuid, HashMap<String, Vec<Change>>> = HashMap::new();
    let mut lookups: HashMap<(Uuid, String), Lookup> = HashMap::new();
    let mut outside: Vec<OutsideChange> = Vec::new();
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
            if is_probe_key(&record.key) {
                outcome.ignored += 1;
                continue;
            }
            let Some((route, relative)) = routes.route(&record.bucket, &record.key) else {
                // A key no project holds yet: noted, for a project made later whose import
                // starts from an inventory report older than this change.
                outside.push(OutsideChange {
                    bucket: record.bucket.clone(),
                    key: record.key.clone(),
                    at_ms: record.event_time_millis().unwrap_or_else(lookup::now_ms),
                });
                outcome.ignored += 1;
                continue;
            };
            // A key the store cannot keep would fail the whole batch, delivery after delivery:
            // the record is kept as a dead letter, and the message's other records go on.
            if !storable_key(relative) {
                let error =
                    format!("the key {} contains NUL, which the catalog cannot keep", record.key.escape_default());
                dead_letter(inner, queue, message, &error).await?;
                outcome.dead_letters += 1;
                continue;
            }
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

    if !outside.is_empty() {
        inner.store.sync.note_outside_changes(&outside).await?;
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
                let e = ErrorChain(&e).to_string();
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
    Ok(Prepared { outcome, feeding, updates })
}

/// Why a key could not be read from S3.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    /// The configuration's bucket could not be opened (shared by the batch's keys on it).
    #[error("cannot open the bucket")]
    Open(#[source] Arc<OpenError>),
    #[error(transparent)]
    S3(AwsError),
}

/// Reads the keys from S3, up to [`LOOKUPS_AT_ONCE`] at a time, each configuration's bucket
/// opened once.
async fn look_up_all(
    inner: &Inner,
    lookups: HashMap<(Uuid, String), Lookup>,
) -> Result<Vec<(Uuid, String, Lookup, Result<Observation, LookupError>)>, SyncError> {
    type Opened = Result<(Option<VersioningState>, BucketAccess), Arc<OpenError>>;
    let mut access: HashMap<Uuid, Opened> = HashMap::new();
    for lookup in lookups.values() {
        if let std::collections::hash_map::Entry::Vacant(vacant) = access.entry(lookup.configuration) {
            let opened = inner.buckets.open(lookup.configuration).await;
            vacant.insert(opened.map(|open| (open.configuration.versioning, open.access)).map_err(Arc::new));
        }
    }
    let room = Arc::new(Semaphore::new(LOOKUPS_AT_ONCE));
    let mut running = JoinSet::new();
    let mut done = Vec::with_capacity(lookups.len());
    for ((project, relative), lookup) in lookups {
        let (versioning, access) = match access.get(&lookup.configuration) {
            Some(Ok((versioning, access))) => (*versioning, access.clone()),
            Some(Err(e)) => {
                done.push((project, relative, lookup, Err(LookupError::Open(e.clone()))));
                continue;
            }
            None => unreachable!("every lookup's configuration was opened above"),
        };
        let room = room.clone();
        running.spawn(async move {
            let _turn = room.acquire_owned().await;
            let observed = lookup::look_up(&access, &lookup.bucket, &lookup.key, versioning).await;
            (project, relative, lookup, observed.map_err(LookupError::S3))
        });
    }
    while let Some(finished) = running.join_next().await {
        // A lookup cannot panic short of a bug; the whole batch then comes back from the queue.
        done.push(finished.map_err(SyncError::Task)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{BUCKET, engine, store_with_project, written};

    /// A message of one S3 event: `key` (url-encoded, under the project's folder `p/`) written.
    fn message(id: &str, key: &str, n: u32, receive_count: u32) -> Inbound {
        let record = serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-central-1",
            "eventTime": "2020-01-01T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "gds:objectcreated",
                   "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
                   "object": {"key": format!("p/{key}"), "size": 1, "eTag": "e", "sequencer": format!("{n:016X}")}}
        });
        Inbound { message_id: id.to_owned(), body: serde_json::json!({"Records": [record]}).to_string(), receive_count }
    }

    /// Makes the test's database refuse to keep any key that starts with `bad`: a failure of the
    /// database itself, which no retry cures.
    async fn refuse_bad_keys(postgres: &byos_test_support::TestPostgres) {
        postgres
            .execute(
                "CREATE FUNCTION refuse_bad_keys() RETURNS trigger AS $$ BEGIN \
                   IF NEW.key LIKE 'bad%' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; \
                 END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_bad_keys BEFORE INSERT OR UPDATE ON objects \
                   FOR EACH ROW EXECUTE FUNCTION refuse_bad_keys();",
            )
            .await;
    }

    /// A message whose updates cannot be committed does not hold back the others of its batch;
    /// it comes back from the queue, and after ten deliveries it is kept as a dead letter.
    #[tokio::test]
    async fn a_message_that_cannot_be_committed_fails_alone_then_is_kept_as_a_dead_letter() {
        let postgres = byos_test_support::TestPostgres::create().await;
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), Some(postgres.url())).await;
        refuse_bad_keys(&postgres).await;
        let engine = engine(&store).await;

        let batch = [message("good", "good", 1, 1), message("bad", "bad-key", 2, 1)];
        let outcome = engine.apply("queue", &batch).await.unwrap();
        assert_eq!(outcome.done, [true, false], "{outcome:?}");
        assert!(!outcome.committed && outcome.dead_letters == 0, "{outcome:?}");
        let keys = store.data.keys(project, None, 10).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["good"]);

        let outcome = engine.apply("queue", &[message("bad", "bad-key", 2, MAX_RECEIVES)]).await.unwrap();
        assert_eq!(outcome.done, [true], "{outcome:?}");
        assert_eq!(outcome.dead_letters, 1, "{outcome:?}");
        assert_eq!(store.sync.count_dead_letters().await.ok(), Some(1));
        let Err(SyncError::Commit(error)) =
            engine.inner.commits.commit(&store, HashMap::from([(project, vec![written("bad-key", 3)])])).await
        else {
            panic!("a refused key was committed")
        };
        let error = ErrorChain(&error).to_string();
        assert!(error.starts_with("database error: ") && error.contains("refused by the test"), "the cause: {error}");
        store.close().await;
    }

    /// A key with NUL (`%00`), which the store cannot keep, is a dead letter at once: the other
    /// records of the batch are committed, and the message does not come back ten times.
    #[tokio::test]
    async fn a_key_the_store_cannot_keep_is_a_dead_letter_at_once() {
        let postgres = byos_test_support::TestPostgres::create().await;
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), Some(postgres.url())).await;
        let engine = engine(&store).await;
        let batch = [message("good", "good", 1, 1), message("nul", "bad%00key", 2, 1)];
        let outcome = engine.apply("queue", &batch).await.unwrap();
        assert_eq!(outcome.done, [true, true], "{outcome:?}");
        assert!(outcome.committed && outcome.dead_letters == 1, "{outcome:?}");
        let keys = store.data.keys(project, None, 10).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(store.sync.count_dead_letters().await.ok(), Some(1));
        store.close().await;
    }
}
