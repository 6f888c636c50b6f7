//! Group commit: batches that are ready while a transaction runs wait, and go together into the
//! next one.
//!
//! A store pays per transaction (its commit, and the pages a scattered batch touches), not per
//! key: one transaction of 10,000 keys costs far less than a hundred of 100. The pollers hand
//! their batches here; there is no committing task of its own. The first batch to find no commit
//! running leads: it takes every batch waiting (up to [`MAX_GROUP_UPDATES`]), applies them
//! together, one transaction per project, and hands each batch its project's result. A batch
//! taken by a leader waits for that result; one left out leads the next group. Under light load
//! a group is one batch and nothing waits; under heavy load groups grow by themselves.
//!
//! Merging is sound because the per-key rules do not depend on the order in which updates come
//! ([`byos_domain::objects`]), and a key's updates within one transaction apply in turn to one
//! state ([`byos_catalog::DataStore::apply`]). A batch's messages leave the queue only after every
//! project it touched has committed.

use std::collections::HashMap;
use std::sync::Mutex;

use byos_catalog::{KeyUpdate, StoreError};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::SyncError;

/// A group closes at this many updates (the batches already in it stay whole): the longest a
/// transaction holds the store's write lock, and the memory a group takes.
const MAX_GROUP_UPDATES: usize = 20_000;

/// How one project's share of a group ended, for the batches that had updates for it.
#[derive(Debug, Clone)]
enum Committed {
    Done,
    /// The project was deleted since the routes were read: its updates go with it.
    Gone,
    Failed(String),
}

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
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Commits `updates` (per project), with whatever other batches are waiting. Returns once
    /// every project's transaction that holds them has committed; an error means some did not,
    /// and the batch must be applied again (applying is idempotent).
    pub(crate) async fn commit(
        &self,
        store: &byos_catalog::Store,
        updates: HashMap<Uuid, Vec<KeyUpdate>>,
    ) -> Result<(), SyncError> {
        if updates.is_empty() {
            return Ok(());
        }
        let size = updates.values().map(Vec::len).sum();
        let (sender, mut result) = oneshot::channel();
        self.lock_waiting().push(Waiting { updates, size, result: sender });
        loop {
            let _leading = self.leading.lock().await;
            // A leader before us may have taken our batch in its group.
            match result.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = self.take_group();
            if group.is_empty() {
                // Our batch is in a group whose leader is still to answer: not possible while we
                // hold the lock, since a leader answers before it lets go.
                return Err(abandoned());
            }
            lead(store, group).await;
            match result.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
                // Our batch did not fit this group: lead the next one.
                Err(oneshot::error::TryRecvError::Empty) => {}
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

/// Applies a group, one transaction per project, and answers each batch in it.
async fn lead(store: &byos_catalog::Store, group: Vec<Waiting>) {
    let mut merged: HashMap<Uuid, Vec<KeyUpdate>> = HashMap::new();
    let mut answers = Vec::with_capacity(group.len());
    for batch in group {
        let projects: Vec<Uuid> = batch.updates.keys().copied().collect();
        for (project, updates) in batch.updates {
            merged.entry(project).or_default().extend(updates);
        }
        answers.push((projects, batch.result));
    }
    let mut results = HashMap::with_capacity(merged.len());
    for (project, updates) in merged {
        let committed = match store.data.apply(project, &updates).await {
            Ok(_) => Committed::Done,
            Err(StoreError::NotFound) => Committed::Gone,
            Err(e) => {
                tracing::warn!(project = %project, error = %e, "cannot commit a group of batches");
                Committed::Failed(e.to_string())
            }
        };
        results.insert(project, committed);
    }
    for (projects, answer) in answers {
        let failed = projects.iter().find_map(|p| match results.get(p) {
            Some(Committed::Failed(e)) => Some(e.clone()),
            Some(Committed::Done | Committed::Gone) => None,
            None => Some("the project's updates were not committed".to_owned()),
        });
        let _ = answer.send(match failed {
            None => Ok(()),
            Some(e) => Err(SyncError::Commit(e)),
        });
    }
}

fn abandoned() -> SyncError {
    SyncError::Commit("the commit holding this batch was abandoned".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use byos_catalog::{
        Configuration, ConfigurationSpec, Credential, CredentialIdentity, Project, Store, StoreOptions,
    };
    use byos_domain::events::Sequencer;
    use byos_domain::objects::{Change, NULL_VERSION};
    use byos_domain::{AccessKeyId, BucketName, ProjectFolder, ResourceName};
    use time::OffsetDateTime;

    use super::*;

    /// A store in `dir` with one project, `p`.
    async fn store_with_project(dir: &std::path::Path) -> (Store, Uuid) {
        let options = StoreOptions { url: None, max_connections: 4, connect_timeout: Duration::from_secs(10) };
        let store = Store::open(&options, dir).await.unwrap_or_else(|e| panic!("{e:?}"));
        let now = OffsetDateTime::now_utc();
        let name = |n: &str| ResourceName::parse(n).unwrap_or_else(|e| panic!("{e}"));
        let credential = Credential {
            id: Uuid::new_v4(),
            name: name("credential"),
            identity: CredentialIdentity::AwsUser {
                access_key_id: AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap_or_else(|e| panic!("{e}")),
            },
            sealed_secret: vec![0; 40],
            created_at: now,
            updated_at: now,
        };
        store.credentials.insert_credential(&credential).await.unwrap_or_else(|e| panic!("{e}"));
        let spec = ConfigurationSpec {
            name: name("storage"),
            region: "eu-central-1".to_owned(),
            bucket: BucketName::parse("bucket").unwrap_or_else(|e| panic!("{e}")),
            key_prefix: None,
            credential_id: credential.id,
            server_side_encryption: None,
            default_for_region: false,
        };
        let configuration = Configuration::new(Uuid::new_v4(), spec, now);
        store.configurations.insert_configuration(&configuration).await.unwrap_or_else(|e| panic!("{e}"));
        let folder = ProjectFolder::parse("p").unwrap_or_else(|e| panic!("{e}"));
        let project = Project {
            id: Uuid::new_v4(),
            name: name("project"),
            region: "eu-central-1".to_owned(),
            configuration_id: configuration.id,
            key_prefix: folder.key_prefix(None),
            folder,
            bucket: configuration.spec.bucket.clone(),
            created_at: now,
            updated_at: now,
        };
        store.projects.insert_project(&project).await.unwrap_or_else(|e| panic!("{e}"));
        (store, project.id)
    }

    fn written(key: &str, n: u32) -> KeyUpdate {
        let sequencer = Sequencer::parse(&format!("0055AED6DCD9{n:08X}")).unwrap_or_else(|e| panic!("{e}"));
        let change = Change::Created {
            version_id: NULL_VERSION.to_owned(),
            sequencer,
            size: 1,
            etag: format!("etag-{n}"),
            at_ms: 1_000,
        };
        KeyUpdate::Changes { key: key.to_owned(), changes: vec![change] }
    }

    #[tokio::test]
    async fn batches_ready_together_commit_together() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path()).await;
        let commits = Arc::new(GroupCommit::default());
        let mut batches = tokio::task::JoinSet::new();
        for n in 0..50 {
            let (commits, store) = (commits.clone(), store.clone());
            batches.spawn(async move {
                let updates = HashMap::from([(project, vec![written(&format!("k{n:02}"), n)])]);
                commits.commit(&store, updates).await
            });
        }
        while let Some(done) = batches.join_next().await {
            done.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
        }
        let keys = store.data.keys(project, None, 100).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.len(), 50, "every batch's key is committed");
        // Each transaction takes the project's next revision.
        let transactions = store.data.revision(project).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(transactions < 50, "50 batches took {transactions} transactions: none were grouped");
    }

    #[tokio::test]
    async fn a_deleted_project_does_not_hold_up_the_others_in_its_group() {
        let dir = byos_test_support::temp_dir();
        let (store, project) = store_with_project(dir.path()).await;
        let commits = GroupCommit::default();
        let gone = Uuid::new_v4();
        let updates = HashMap::from([(gone, vec![written("x", 1)]), (project, vec![written("y", 2)])]);
        commits.commit(&store, updates).await.unwrap_or_else(|e| panic!("{e}"));
        let keys = store.data.keys(project, None, 10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["y"]);
        commits.commit(&store, HashMap::new()).await.unwrap_or_else(|e| panic!("{e}"));
    }
}
