//! Group commit: batches that are ready while a transaction runs wait, and go together into the
//! next one.
//!
//! A store pays per transaction (its commit, and the pages a scattered batch touches), not per
//! key: one transaction of 10,000 keys costs far less than a hundred of 100. The pollers hand
//! their batches here; there is no committing task of its own. The first batch to find no commit
//! running leads: it takes every batch waiting (up to [`MAX_GROUP_UPDATES`]), applies them
//! together, one transaction per project, and hands each batch its project's result. A batch
//! taken by a leader waits for that result; one left out leads the next group. Under light load
//! a group is one batch and nothing waits; under heavy load groups grow by themselves, and a
//! leader that finds others waiting besides its own batch (more are on their way) waits for them
//! up to `sync.commit_delay_ms` before it takes the group, like PostgreSQL's `commit_delay`:
//! a transaction's cost is mostly the pages its keys touch, scattered over the folders, so a
//! group of 500 messages costs little more than one of 80.
//!
//! Merging is sound because the per-key rules do not depend on the order in which updates come
//! ([`byos_domain::objects`]), and a key's updates within one transaction apply in turn to one
//! state ([`byos_catalog::DataStore::apply`]). A batch's messages leave the queue only after every
//! project it touched has committed. A group whose transaction fails is applied again batch by
//! batch, so that a batch is failed only by its own updates.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use byos_catalog::{KeyUpdate, Store, StoreError};
use byos_domain::ErrorChain;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::SyncError;

/// A group closes at this many updates (the batches already in it stay whole): the longest a
/// transaction holds the store's write lock, and the memory a group takes.
const MAX_GROUP_UPDATES: usize = 20_000;

/// A batch's updates, waiting for a leader.
struct Waiting {
    updates: HashMap<Uuid, Vec<KeyUpdate>>,
    size: usize,
    result: oneshot::Sender<Result<(), SyncError>>,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<Waiting>>,
    /// Held by the leader while it commits.
    leading: tokio::sync::Mutex<()>,
    /// Told when a batch starts waiting.
    arrived: Notify,
    /// How long a leader waits for more batches when others already wait.
    delay: Duration,
    /// Transactions committed: the batches per transaction tell how well batches group.
    pub(crate) transactions: Counter,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Group commits whose leader, when others already wait, waits up to `delay` for more.
    pub(crate) fn new(delay: Duration) -> GroupCommit {
        GroupCommit { delay, ..GroupCommit::default() }
    }

    /// Commits `updates` (per project), with whatever other batches are waiting. Returns once
    /// every project's transaction that holds them has committed; an error means some did not,
    /// and the batch must be applied again (applying is idempotent).
    pub(crate) async fn commit(&self, store: &Store, updates: HashMap<Uuid, Vec<KeyUpdate>>) -> Result<(), SyncError> {
        if updates.is_empty() {
            return Ok(());
        }
        let size = updates.values().map(Vec::len).sum();
        let (sender, mut result) = oneshot::channel();
        self.lock_waiting().push(Waiting { updates, size, result: sender });
        self.arrived.notify_waiters();
        loop {
            let _leading = self.leading.lock().await;
            // A leader before us may have taken our batch in its group.
            match result.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            self.gather().await;
            let group = self.take_group();
            if group.is_empty() {
                // Our batch is in a group whose leader is still to answer: not possible while we
                // hold the lock, since a leader answers before it lets go.
                return Err(abandoned());
            }
            lead(store, group, &self.transactions).await;
            match result.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
                // Our batch did not fit this group: lead the next one.
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
    }

    /// With other batches waiting besides the leader's own, the pollers are busy and more batches
    /// are on their way: waits for them, up to the delay or until a whole group waits. A batch
    /// alone commits at once. Called by the leader.
    async fn gather(&self) {
        if self.delay.is_zero() || self.lock_waiting().len() < 2 {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.delay;
        loop {
            let arrived = self.arrived.notified();
            if self.lock_waiting().iter().map(|w| w.size).sum::<usize>() >= MAX_GROUP_UPDATES {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return;
            }
        }
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The batches that waited longest, up to the group's size; at least one.
    fn take_group(&self) -> Vec<Waiting> {
        let mut waiting = self.lock_waiting();
        let mut size = 0;
        let mut count = 0;
        for batch in waiting.iter() {
            if count > 0 && size + batch.size > MAX_GROUP_UPDATES {
                break;
            }
            size += batch.size;
            count += 1;
        }
        waiting.drain(..count).collect()
    }
}

/// Applies a group, one transaction per project, and answers each batch in it. When a project's
/// transaction fails and more than one batch fed it, each of those batches is applied again on
/// its own, so that one batch that cannot be applied (or a moment's failure) does not fail the
/// others with it.
async fn lead(store: &Store, group: Vec<Waiting>, transactions: &Counter) {
    let mut failures: Vec<Option<CommitError>> = (0..group.len()).map(|_| None).collect();
    let mut projects: HashMap<Uuid, Merged> = HashMap::new();
    let mut answers = Vec::with_capacity(group.len());
    for (index, batch) in group.into_iter().enumerate() {
        for (project, updates) in batch.updates {
            let merged = projects.entry(project).or_default();
            let start = merged.updates.len();
            merged.updates.extend(updates);
            merged.shares.push((index, start..merged.updates.len()));
        }
        answers.push(batch.result);
    }
    for (project, Merged { updates, shares }) in projects {
        let merged = Arc::new(updates);
        let Err(error) = apply(store, project, &merged, 0..merged.len(), transactions).await else { continue };
        if let [(index, _)] = shares.as_slice() {
            failures[*index] = Some(error);
            continue;
        }
        tracing::warn!(
            project = %project,
            error = %ErrorChain(&error),
            batches = shares.len(),
            "a group's commit failed: its batches go one by one"
        );
        for (index, share) in shares {
            if let Err(error) = apply(store, project, &merged, share, transactions).await {
                failures[index] = Some(error);
            }
        }
    }
    for (answer, failure) in answers.into_iter().zip(failures) {
        let _ = answer.send(match failure {
            None => Ok(()),
            Some(e) => Err(SyncError::Commit(e)),
        });
    }
}

/// A project's updates in a group, batch after batch, and each batch's share of them (its index
/// in the group, and the range of its updates).
#[derive(Default)]
struct Merged {
    updates: Vec<KeyUpdate>,
    shares: Vec<(usize, Range<usize>)>,
}

/// One transaction of `updates[share]` for the project, in a task of its own so that a panic
/// (a bug) fails this transaction's batches only; counted in `transactions` once it commits. A
/// project deleted meanwhile is no failure: its updates go with it.
async fn apply(
    store: &Store,
    project: Uuid,
    updates: &Arc<Vec<KeyUpdate>>,
    share: Range<usize>,
    transactions: &Counter,
) -> Result<(), CommitError> {
    let (store, updates) = (store.clone(), updates.clone());
    let applied = tokio::spawn(async move { store.data.apply(project, &updates[share]).await }).await;
    match applied {
        Ok(Ok(_)) => {
            transactions.inc();
            Ok(())
        }
        Ok(Err(StoreError::NotFound)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(project = %project, error = %ErrorChain(&e), "cannot commit a batch");
            Err(CommitError::Store(e))
        }
        Err(e) => {
            tracing::error!(project = %project, error = %ErrorChain(&e), "applying a batch failed");
            Err(CommitError::Failed(e))
        }
    }
}

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The store refused the transaction that held the batch.
    #[error(transparent)]
    Store(StoreError),
    /// Applying the batch failed (a bug); the batch is to be applied again.
    #[error("applying the batch failed")]
    Failed(#[source] tokio::task::JoinError),
    /// The commit that held the batch was dropped before it answered.
    #[error("the commit holding this batch was abandoned")]
    Abandoned,
}

fn abandoned() -> SyncError {
    SyncError::Commit(CommitError::Abandoned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{store_with_project, written};

    /// Holds the lead until every batch is waiting, as a running commit would, so that what is
    /// grouped does not depend on how fast the batches arrive.
    async fn commit_waiting_together(
        store: &Store,
        commits: &Arc<GroupCommit>,
        batches: Vec<HashMap<Uuid, Vec<KeyUpdate>>>,
    ) -> Vec<Result<(), SyncError>> {
        let count = batches.len();
        let leading = commits.leading.lock().await;
        let mut tasks = tokio::task::JoinSet::new();
        for (n, updates) in batches.into_iter().enumerate() {
            let (commits, store) = (commits.clone(), store.clone());
            tasks.spawn(async move { (n, commits.commit(&store, updates).await) });
        }
        while commits.lock_waiting().len() < count {
            tokio::task::yield_now().await;
        }
        drop(leading);
        let mut results: Vec<(usize, Result<(), SyncError>)> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            results.push(done.unwrap());
        }
        results.sort_by_key(|(n, _)| *n);
        results.into_iter().map(|(_, result)| result).collect()
    }

    #[tokio::test]
    async fn batches_ready_together_commit_together() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), None).await;
        let commits = Arc::new(GroupCommit::default());
        let batches = (0..50).map(|n| HashMap::from([(project, vec![written(&format!("k{n:02}"), n)])])).collect();
        for result in commit_waiting_together(&store, &commits, batches).await {
            result.unwrap();
        }
        let keys = store.data.keys(project, None, 100).await.unwrap();
        assert_eq!(keys.len(), 50, "every batch's key is committed");
        // Each transaction takes the project's next revision: the first leader took all 50.
        assert_eq!(store.data.revision(project).await.ok(), Some(1), "50 waiting batches commit in one transaction");
        assert_eq!(commits.transactions.get(), 1, "the transaction is counted once");
        assert!(commits.lock_waiting().is_empty());
    }

    /// A group closes at [`MAX_GROUP_UPDATES`]: the batches left out lead the next one.
    #[tokio::test]
    async fn a_group_closes_at_its_size() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), None).await;
        let commits = Arc::new(GroupCommit::default());
        let half = u32::try_from(MAX_GROUP_UPDATES / 2).unwrap();
        let batches = (0..3)
            .map(|b| {
                let updates = (0..half).map(|i| written(&format!("b{b}/k{i:05}"), b * half + i)).collect();
                HashMap::from([(project, updates)])
            })
            .collect();
        for result in commit_waiting_together(&store, &commits, batches).await {
            result.unwrap();
        }
        // Two batches fill a group: a group of two, then one of the third.
        assert_eq!(store.data.revision(project).await.ok(), Some(2));
        assert_eq!(commits.transactions.get(), 2);
        let keys = store.data.keys(project, None, 3 * half + 1).await.unwrap();
        assert_eq!(keys.len(), 3 * half as usize);
    }

    /// A leader that finds other batches waiting besides its own waits for more, and stops
    /// waiting once a whole group waits: the late batch joins the group's transaction. (On one
    /// thread, the test sees the lead held only once the leader has yielded: without waiting, it
    /// would have taken the first two batches by then.)
    #[tokio::test]
    async fn a_busy_leader_waits_for_batches_on_their_way() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), None).await;
        let commits = Arc::new(GroupCommit::new(Duration::from_secs(3600)));
        let leading = commits.leading.lock().await;
        let mut tasks = tokio::task::JoinSet::new();
        let commit = |tasks: &mut tokio::task::JoinSet<Result<(), SyncError>>, updates: Vec<KeyUpdate>| {
            let (commits, store) = (commits.clone(), store.clone());
            tasks.spawn(async move { commits.commit(&store, HashMap::from([(project, updates)])).await });
        };
        commit(&mut tasks, vec![written("a", 1)]);
        commit(&mut tasks, vec![written("b", 2)]);
        while commits.lock_waiting().len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(leading);
        while commits.leading.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        assert_eq!(commits.lock_waiting().len(), 2, "the leader waits before it takes its group");
        let rest = u32::try_from(MAX_GROUP_UPDATES - 2).unwrap();
        commit(&mut tasks, (0..rest).map(|i| written(&format!("c/{i:05}"), 3 + i)).collect());
        let all = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
        });
        all.await.expect("a whole group waiting ends the wait");
        assert_eq!(commits.transactions.get(), 1, "the three batches share one transaction");
        assert_eq!(store.data.revision(project).await.ok(), Some(1));
    }

    /// A batch alone does not wait for others, however long the delay.
    #[tokio::test]
    async fn a_batch_alone_commits_at_once() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), None).await;
        let commits = GroupCommit::new(Duration::from_secs(3600));
        let updates = HashMap::from([(project, vec![written("alone", 1)])]);
        let committed = tokio::time::timeout(Duration::from_secs(120), commits.commit(&store, updates)).await;
        committed.expect("no wait for others").unwrap();
        assert_eq!(commits.transactions.get(), 1);
    }

    #[tokio::test]
    async fn a_deleted_project_does_not_hold_up_the_others_in_its_group() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), None).await;
        let commits = GroupCommit::default();
        let gone = Uuid::new_v4();
        let updates = HashMap::from([(gone, vec![written("x", 1)]), (project, vec![written("y", 2)])]);
        commits.commit(&store, updates).await.unwrap();
        let keys = store.data.keys(project, None, 10).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["y"]);
        assert_eq!(commits.transactions.get(), 1, "the deleted project's updates took no transaction");
        commits.commit(&store, HashMap::new()).await.unwrap();
    }

    /// A batch that cannot be committed fails alone: the group's transaction fails, its batches
    /// are applied one by one, and the good one commits. PostgreSQL refuses a NUL byte in text,
    /// which makes a batch that no store retry can apply.
    #[tokio::test]
    async fn a_batch_that_cannot_be_committed_fails_alone() {
        let postgres = byos_test_support::TestPostgres::create().await;
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path(), Some(postgres.url())).await;
        let commits = Arc::new(GroupCommit::default());
        // Both batches wait while the lead is held, so that one leader takes them together.
        let leading = commits.leading.lock().await;
        let mut batches = tokio::task::JoinSet::new();
        for key in ["good", "bad\0key"] {
            let (commits, store) = (commits.clone(), store.clone());
            batches.spawn(async move {
                let updates = HashMap::from([(project, vec![written(key, 1)])]);
                (key, commits.commit(&store, updates).await)
            });
        }
        while commits.lock_waiting().len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(leading);
        let mut results = HashMap::new();
        while let Some(done) = batches.join_next().await {
            let (key, result) = done.unwrap();
            results.insert(key, result);
        }
        assert!(results["good"].is_ok(), "{:?}", results["good"]);
        assert!(matches!(results["bad\0key"], Err(SyncError::Commit(_))), "{:?}", results["bad\0key"]);
        let keys = store.data.keys(project, None, 10).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["good"]);
        // Only the good batch alone took a revision: a failed transaction takes none.
        assert_eq!(store.data.revision(project).await.ok(), Some(1));
        assert_eq!(commits.transactions.get(), 1, "a failed transaction is not counted");
        store.close().await;
    }
}
