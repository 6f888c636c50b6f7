//! Test fixtures shared by the engine's unit tests.

use byos_buckets::Buckets;
use byos_catalog::{KeyUpdate, Store};
use byos_domain::events::Sequencer;
use byos_domain::objects::{Change, NULL_VERSION};
use byos_secrets::MasterKey;
use byos_test_support::{Records, open_store};
use uuid::Uuid;

use crate::SyncEngine;

/// The bucket of [`store_with_project`]'s project, whose folder is `p/`.
pub(crate) const BUCKET: &str = "bucket";

/// A store with one project, on folder `p/` of [`BUCKET`]: SQLite in `dir`, or the PostgreSQL
/// database at `url`.
pub(crate) async fn store_with_project(dir: &std::path::Path, url: Option<&str>) -> (Store, Uuid) {
    let store = open_store(dir, url).await;
    let key = MasterKey::generate();
    let records = Records { store: &store, key: &key };
    let credential = records.example_access_key().await;
    let configuration = records.configuration(credential.id, BUCKET, None).await;
    let project = records.project(&configuration, "p").await;
    (store, project.id)
}

pub(crate) fn written(key: &str, n: u32) -> KeyUpdate {
    let sequencer = Sequencer::parse(&format!("0055AED6DCD9{n:08X}")).unwrap();
    let change = Change::Created {
        version_id: NULL_VERSION.to_owned(),
        sequencer,
        size: 1,
        etag: format!("etag-{n}"),
        at_ms: 1_000,
    };
    KeyUpdate::Changes { key: key.to_owned(), changes: vec![change] }
}

/// An engine on `store` whose AWS is a closed local port: nothing in these tests may reach it.
pub(crate) async fn engine(store: &Store) -> SyncEngine {
    let aws = byos_test_support::unreachable_aws().await;
    let buckets = Buckets::new(store.clone(), aws.clone(), MasterKey::generate());
    let engine = SyncEngine::new(store.clone(), aws, buckets, Default::default());
    engine.refresh_routes().await.unwrap();
    engine
}
