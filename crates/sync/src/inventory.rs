//! S3 Inventory as a reconcile's baseline: for a bucket of tens of millions of objects, an
//! initial import or a periodic reconcile reads the latest inventory report instead of listing
//! the prefix, then reads again the keys that changed since the report.
//!
//! A report at time R stands for a listing made at R: the merge applies its rows as
//! observations as of R, so an event newer than R wins over them (the per-key rules of
//! `domain::objects`), and keys it lacks are observed absent as of R. What changed after R
//! reaches the catalog by events: the project's own since it was made, and, for the time
//! before, the changes the engine noted of keys no project held (`SyncStore::note_outside_changes`),
//! which [`catch_up`] reads again from S3. A report is therefore taken only when it is younger
//! than `sync.inventory_max_age`, and no older than the configuration and than the noting of
//! changes (the store's `outside_changes_since_ms`); otherwise the run lists the prefix.

use std::sync::Arc;

use byos_aws::{BucketAccess, Inventory, Manifest};
use byos_catalog::{Configuration, KeyUpdate, Project, ReconcileRun, storable_key};
use byos_domain::{ErrorChain, VersioningState, is_probe_key};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{Inner, SyncError, lookup};

/// The store's fact: since when the changes of keys outside projects are noted.
pub(crate) const NOTED_SINCE: &str = "outside_changes_since_ms";

/// Keys read again from S3 at once.
const LOOKUPS_AT_ONCE: usize = 16;

/// Keys per page of noted changes.
const PAGE: u32 = 1000;

/// Noted changes are kept this long beyond the oldest report a run may take.
const KEEP_BEYOND_MS: i64 = 24 * 3600 * 1000;

/// The reconciles that may start from a report: the initial import and the periodic ones. One
/// asked for by a person lists the prefix: they want what the bucket holds now.
fn may_start_from_a_report(reason: &str) -> bool {
    matches!(reason, "initial-import" | "periodic")
}

/// The report a reconcile of `project` may start from, if any.
pub(crate) async fn baseline(
    inner: &Inner,
    project: &Project,
    configuration: &Configuration,
    access: &BucketAccess,
    reason: &str,
) -> Option<Manifest> {
    if inner.settings.inventory_max_age.is_zero() || !may_start_from_a_report(reason) {
        return None;
    }
    match find(inner, project, configuration, access).await {
        Ok(manifest) => {
            tracing::info!(project = %project.id, report = %manifest.key, "the reconcile starts from an inventory report");
            Some(manifest)
        }
        Err(why) => {
            tracing::info!(project = %project.id, why = %why, "the reconcile lists the prefix: no inventory report fits");
            None
        }
    }
}

/// The newest report that fits, or why none does.
async fn find(
    inner: &Inner,
    project: &Project,
    configuration: &Configuration,
    access: &BucketAccess,
) -> Result<Manifest, String> {
    let bucket = project.bucket.as_str();
    let prefix = project.key_prefix.as_str();
    let versioned = matches!(configuration.versioning, Some(VersioningState::Enabled | VersioningState::Suspended));
    let mut why = Vec::new();
    // ICA's policy grants no s3:GetInventoryConfiguration: the reports of the inventory that
    // `byos aws bootstrap --inventory` sets up are then looked for where it puts them.
    let inventories = match access.inventories(bucket).await {
        Ok(inventories) => inventories,
        Err(e) => {
            why.push(format!("cannot read the bucket's inventory configurations: {}", ErrorChain(&e)));
            let filter = configuration.spec.key_prefix.as_ref().map(|p| p.as_str());
            vec![Inventory::byos(bucket, filter, versioned)]
        }
    };
    let mut best: Option<Manifest> = None;
    for inventory in inventories {
        if let Some(unfit) = inventory.unfit_for(prefix, versioned) {
            why.push(format!("inventory {:?}: {unfit}", inventory.id));
            continue;
        }
        match access.latest_report(bucket, &inventory).await {
            Ok(Some(manifest)) if manifest.source_bucket != bucket => {
                why.push(format!("inventory {:?}: its report is of bucket {}", inventory.id, manifest.source_bucket));
            }
            Ok(Some(manifest)) if versioned && !manifest.schema.iter().any(|c| c == "VersionId") => {
                why.push(format!("inventory {:?}: its report lists only current versions", inventory.id));
            }
            Ok(Some(manifest)) => {
                if best.as_ref().is_none_or(|b| b.created_ms < manifest.created_ms) {
                    best = Some(manifest);
                }
            }
            Ok(None) => why.push(format!("inventory {:?} has no complete report yet", inventory.id)),
            Err(e) => why.push(format!("inventory {:?}: {}", inventory.id, ErrorChain(&e))),
        }
    }
    let Some(manifest) = best else {
        return Err(if why.is_empty() {
            "the bucket has no inventory configuration".to_owned()
        } else {
            why.join("; ")
        });
    };
    let now = lookup::now_ms();
    let max_age_ms = i64::try_from(inner.settings.inventory_max_age.as_millis()).unwrap_or(i64::MAX);
    if now - manifest.created_ms > max_age_ms {
        let hours = (now - manifest.created_ms) / 3_600_000;
        return Err(format!("the latest report ({}) is {hours} hours old", manifest.key));
    }
    let noted_since = noted_since(inner).await.map_err(|e| format!("cannot read the store: {}", ErrorChain(&e)))?;
    let created = i64::try_from(configuration.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    if manifest.created_ms < noted_since.max(created) {
        return Err(format!(
            "the latest report ({}) is older than the changes byos has followed on the bucket",
            manifest.key
        ));
    }
    Ok(manifest)
}

/// Since when the changes of keys outside projects are noted: the first time this is asked,
/// which the workers do as they start (the engine notes them from its start, so the answer is
/// never too early).
pub(crate) async fn noted_since(inner: &Inner) -> Result<i64, SyncError> {
    let value = inner.store.meta.init_meta(NOTED_SINCE, &lookup::now_ms().to_string()).await?;
    Ok(value.parse().unwrap_or(i64::MAX))
}

/// Reads again from S3 every key of the project noted as changed since the report (while no
/// project held it), and applies what S3 holds, fenced like the rest of the run. It runs before
/// the report's merge: the merge's observations of these keys, older and fenced, then change
/// nothing, where after it the fence would keep these newer ones out.
pub(crate) async fn catch_up(
    inner: &Inner,
    project: &Project,
    access: &BucketAccess,
    versioning: Option<VersioningState>,
    manifest: &Manifest,
    run: &mut ReconcileRun,
) -> Result<(), SyncError> {
    let bucket = project.bucket.as_str();
    let prefix = project.key_prefix.as_str();
    let since = lookup::as_of(manifest.created_ms);
    let room = Arc::new(Semaphore::new(LOOKUPS_AT_ONCE));
    let mut after: Option<String> = None;
    loop {
        let page = inner.store.sync.outside_changes(bucket, prefix, since, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let mut reads = JoinSet::new();
        for change in &page {
            let relative = change.key.strip_prefix(prefix).unwrap_or(&change.key).to_owned();
            if relative.is_empty() || is_probe_key(&relative) || !storable_key(&relative) {
                continue;
            }
            let (access, room, bucket, key) = (access.clone(), room.clone(), bucket.to_owned(), change.key.clone());
            reads.spawn(async move {
                let _turn = room.acquire_owned().await;
                (relative, lookup::look_up(&access, &bucket, &key, versioning).await)
            });
        }
        let mut batch = Vec::with_capacity(page.len());
        while let Some(read) = reads.join_next().await {
            let (key, observation) = read.map_err(SyncError::Task)?;
            batch.push(KeyUpdate::Observed { key, observation: observation?, fence: Some(run.fence) });
        }
        run.listed += batch.len() as u64;
        inner.store.data.apply(project.id, &batch).await?;
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(())
}

/// Forgets the noted changes no report a run may take can still need.
pub(crate) async fn prune(inner: &Inner) -> Result<u64, SyncError> {
    let max_age_ms = i64::try_from(inner.settings.inventory_max_age.as_millis()).unwrap_or(i64::MAX);
    let before = lookup::now_ms().saturating_sub(max_age_ms).saturating_sub(KEEP_BEYOND_MS);
    Ok(inner.store.sync.prune_outside_changes(before).await?)
}

#[cfg(test)]
mod tests {
    use byos_aws::{Aws, AwsSettings};
    use byos_buckets::Buckets;
    use byos_catalog::Store;
    use byos_secrets::MasterKey;
    use byos_test_support::{
        EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY, Moto, Records, ReportRow, csv_inventory, open_store,
        put_report, region,
    };

    use super::*;
    use crate::{Inbound, SyncEngine, SyncSettings};

    const BUCKET: &str = "inventoried";

    async fn aws(url: &str) -> Aws {
        Aws::new(&AwsSettings {
            endpoint_url: Some(url.to_owned()),
            static_credentials: Some((EXAMPLE_ACCESS_KEY_ID.to_owned(), EXAMPLE_SECRET_ACCESS_KEY.to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await
    }

    /// An S3 event of `key` put at `at`, as the queue delivers it.
    fn put_event(key: &str, at: &str, n: u32) -> Inbound {
        let record = serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-central-1",
            "eventTime": at, "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "gds:objectcreated",
                   "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
                   "object": {"key": key, "size": 4, "eTag": "e", "sequencer": format!("{n:016X}")}}
        });
        Inbound {
            message_id: format!("m{n}"),
            body: serde_json::json!({"Records": [record]}).to_string(),
            receive_count: 1,
        }
    }

    /// moto with [`BUCKET`] holding `keys`, a store with a configuration of the bucket (no
    /// project yet), and an engine that notes changes outside projects from now on.
    struct Lab {
        _moto: Moto,
        aws: Aws,
        access: byos_aws::BucketAccess,
        _dir: byos_test_support::TempDir,
        store: Store,
        master: MasterKey,
        configuration: byos_catalog::Configuration,
        engine: SyncEngine,
    }

    impl Lab {
        async fn new(keys: &[&str]) -> Lab {
            let moto = Moto::start();
            let aws = aws(moto.url()).await;
            let access = aws.own_bucket_access(&region("eu-central-1"));
            aws.setup(&region("eu-central-1")).create_bucket(BUCKET).await.unwrap();
            for key in keys {
                access.put_object(BUCKET, key, b"data".to_vec(), None).await.unwrap();
            }
            let dir = byos_test_support::temp_dir();
            let store = open_store(dir.path(), None).await;
            let master = MasterKey::generate();
            let records = Records { store: &store, key: &master };
            let credential = records.example_access_key().await;
            let configuration = records.configuration(credential.id, BUCKET, None).await;
            let buckets = Buckets::new(store.clone(), aws.clone(), master.clone());
            let engine = SyncEngine::new(store.clone(), aws.clone(), buckets, SyncSettings::default());
            engine.start_noting().await.unwrap();
            // Reports made from now on are younger than the noting.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            Lab { _moto: moto, aws, access, _dir: dir, store, master, configuration, engine }
        }

        fn records(&self) -> Records<'_> {
            Records { store: &self.store, key: &self.master }
        }
    }

    async fn catalog(store: &Store, project: uuid::Uuid) -> Vec<String> {
        let keys = store.data.keys(project, None, 10_000).await.unwrap();
        keys.into_iter().filter(|k| k.state.visible().is_some()).map(|k| k.key).collect()
    }

    fn iso(ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    }

    #[tokio::test]
    async fn an_import_starts_from_the_report_then_reads_what_changed_since() {
        let lab = Lab::new(&["p/a.txt", "p/b/c.txt"]).await;
        let Lab { access, store, engine, configuration, .. } = &lab;
        let records = lab.records();

        // The report, as of now: the two objects, one it alone shows (so that the catalog
        // shows whether the report was read), a key beside the project; its files listed
        // out of key order.
        let inventory = csv_inventory(BUCKET, None, false);
        access.put_inventory(BUCKET, &inventory).await.unwrap();
        let now = lookup::now_ms();
        let files = [
            vec![
                ReportRow::object("p/only in report.txt", 3, "e3", now),
                ReportRow::object("q/beside.txt", 1, "e4", now),
            ],
            vec![ReportRow::object("p/a.txt", 4, "e1", now), ReportRow::object("p/b/c.txt", 4, "e2", now)],
        ];
        put_report(access, BUCKET, &inventory, now, &files).await;

        // A key written after the report, while no project held it: noted.
        access.put_object(BUCKET, "p/late.txt", b"late".to_vec(), None).await.unwrap();
        engine.apply("queue", &[put_event("p/late.txt", &iso(now + 1000), 1)]).await.unwrap();

        let project = records.project(configuration, "p").await;
        engine.refresh_routes().await.unwrap();
        let run = engine.reconcile(project.id, "initial-import").await.unwrap();
        assert_eq!(run.error, None);
        // The report's three rows in the project, the key read again.
        assert_eq!((run.listed, run.drift.added), (4, 3));
        assert!(run.baseline.as_deref().is_some_and(|m| m.ends_with("/manifest.json")), "{run:?}");
        assert_eq!(catalog(store, project.id).await, ["a.txt", "b/c.txt", "late.txt", "only in report.txt"]);

        // The same from a Parquet report: a periodic reconcile takes the newest report.
        let parquet = Inventory { format: byos_aws::ReportFormat::Parquet, ..inventory.clone() };
        access.put_inventory(BUCKET, &parquet).await.unwrap();
        let later = lookup::now_ms();
        let rows =
            vec![ReportRow::object("p/a.txt", 4, "e1", now), ReportRow::object("p/from parquet.txt", 2, "e5", now)];
        put_report(access, BUCKET, &parquet, later, &[rows]).await;
        let run = engine.reconcile(project.id, "periodic").await.unwrap();
        assert_eq!(run.error, None);
        // What that report lacks is observed absent as of it; the key noted since is read again.
        assert_eq!(catalog(store, project.id).await, ["a.txt", "from parquet.txt", "late.txt"]);

        // A reconcile a person asks for lists the bucket: the keys only a report showed go.
        let run = engine.reconcile(project.id, "requested").await.unwrap();
        assert_eq!((run.drift.added, run.drift.removed, run.baseline), (1, 1, None));
        assert_eq!(catalog(store, project.id).await, ["a.txt", "b/c.txt", "late.txt"]);
    }

    /// A versioned bucket's Parquet report, its files named out of key order and one key's
    /// versions split between them, reads as a listing of versions does.
    #[tokio::test]
    async fn a_parquet_report_reads_as_a_listing_of_versions() {
        let moto = Moto::start();
        let aws = aws(moto.url()).await;
        aws.setup(&region("eu-central-1")).create_bucket("reports").await.unwrap();
        let access = aws.own_bucket_access(&region("eu-central-1"));
        let inventory = Inventory { format: byos_aws::ReportFormat::Parquet, ..Inventory::byos("reports", None, true) };
        let version = |key: &str, id: &str, latest: bool, deleted: bool, ms: i64| ReportRow {
            key: key.to_owned(),
            version_id: Some(id.to_owned()),
            is_latest: latest,
            delete_marker: deleted,
            size: 7,
            etag: "e".to_owned(),
            last_modified_ms: ms,
        };
        let first = vec![version("p/a.txt", "a1", true, false, 1_000), version("p/b.txt", "b1", false, false, 1_000)];
        let second = vec![
            version("p/b.txt", "b3", true, true, 3_000),
            version("p/b.txt", "b2", false, false, 2_000),
            ReportRow { version_id: None, ..version("p/c.txt", "", true, false, 1_000) },
            version("q/x.txt", "x1", true, false, 1_000),
        ];
        put_report(&access, "reports", &inventory, 5_000, &[second, first]).await;
        let manifest = access.latest_report("reports", &inventory).await.unwrap().unwrap();
        assert_eq!((manifest.format, manifest.created_ms), (byos_aws::ReportFormat::Parquet, 5_000));

        let mut rows = access.report_rows(&manifest, "p/").await.unwrap();
        let mut said = Vec::new();
        while let Some(page) = rows.next_page(2).await.unwrap() {
            said.extend(
                page.into_iter()
                    .map(|e| (e.key, e.version_id.unwrap_or_default(), e.is_latest, e.delete_marker, e.storage_class)),
            );
        }
        let standard = Some("STANDARD".to_owned());
        assert_eq!(
            said,
            [
                ("p/a.txt".to_owned(), "a1".to_owned(), true, false, standard.clone()),
                ("p/b.txt".to_owned(), "b3".to_owned(), true, true, None),
                ("p/b.txt".to_owned(), "b2".to_owned(), false, false, standard.clone()),
                ("p/b.txt".to_owned(), "b1".to_owned(), false, false, standard.clone()),
                ("p/c.txt".to_owned(), "null".to_owned(), true, false, standard),
            ]
        );
    }

    #[tokio::test]
    async fn a_report_that_cannot_stand_for_a_listing_is_passed_over() {
        let lab = Lab::new(&["p/a.txt"]).await;
        let Lab { aws, access, store, engine, configuration, master, .. } = &lab;
        let records = lab.records();
        let inventory = csv_inventory(BUCKET, None, false);
        access.put_inventory(BUCKET, &inventory).await.unwrap();
        let project = records.project(configuration, "p").await;
        engine.refresh_routes().await.unwrap();
        let now = lookup::now_ms();

        // Rows out of key order: the run lists the prefix instead.
        let unordered =
            [vec![ReportRow::object("p/z.txt", 1, "e", now), ReportRow::object("p/ghost.txt", 1, "e", now)]];
        put_report(access, BUCKET, &inventory, now, &unordered).await;
        let run = engine.reconcile(project.id, "periodic").await.unwrap();
        assert_eq!((run.error, run.listed, run.baseline), (None, 1, None));
        assert_eq!(catalog(store, project.id).await, ["a.txt"]);

        // A report older than sync.inventory_max_age is passed over.
        let found = find(&engine.inner, &project, configuration, access).await;
        assert!(found.is_ok(), "the report fits: {found:?}");
        let stale = SyncSettings { inventory_max_age: std::time::Duration::from_millis(1), ..SyncSettings::default() };
        let engine = SyncEngine::new(
            store.clone(),
            aws.clone(),
            Buckets::new(store.clone(), aws.clone(), master.clone()),
            stale,
        );
        let why = find(&engine.inner, &project, configuration, access).await.unwrap_err();
        assert!(why.contains("hours old"), "{why}");
    }
}
