//! Upgrades of a database that holds a catalog: a database at an earlier migration, filled with
//! raw SQL as that version of the store left it, opened by the store of today. The rows must
//! come through every migration since, on both databases.

use std::time::Duration;

use byos_catalog::{Backend, EntryKind, KeyUpdate, Migrations, Store, StoreOptions};
use byos_domain::events::Sequencer;
use byos_domain::objects::{Change, KeyState, NULL_VERSION};
use byos_test_support::{TestPostgres, temp_dir};
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The last migration before the catalog named projects by their key.
const BEFORE_PROJECT_KEYS: i64 = 12;

const PROJECT: &str = "0b3c1f1e-9a7f-4a55-8e45-3c1d7c0b9a11";

/// A project with one file, `a/b.txt`, as the store wrote it at migration 12 (the project's
/// configuration is left out: foreign keys are not checked while filling).
const ROWS: &[&str] = &[
    "INSERT INTO projects (id, name, region, configuration_id, folder, bucket, key_prefix, revision, created_at, \
     updated_at) VALUES ('0b3c1f1e-9a7f-4a55-8e45-3c1d7c0b9a11', 'old', 'eu-central-1', \
     '6f1d2c3b-0000-4000-8000-000000000001', 'old', 'bucket', 'data/old/', 7, 0, 0)",
    "INSERT INTO entries (project_id, parent, name, kind, children, marker) \
     VALUES ('0b3c1f1e-9a7f-4a55-8e45-3c1d7c0b9a11', '', 'a/', 'folder', 1, FALSE)",
    "INSERT INTO entries (project_id, parent, name, kind, size, etag, last_modified, children, marker) \
     VALUES ('0b3c1f1e-9a7f-4a55-8e45-3c1d7c0b9a11', 'a/', 'b.txt', 'file', 5, 'e1', 1000, 0, FALSE)",
];

/// The file's one write, as its key's stored state.
fn state() -> String {
    let mut state = KeyState::new();
    let _ = state.apply(&created("0000000000000000000000000000000A", 5, "e1", 1000));
    serde_json::to_string(&state).unwrap()
}

fn created(sequencer: &str, size: u64, etag: &str, at_ms: i64) -> Change {
    Change::Created {
        version_id: NULL_VERSION.to_owned(),
        sequencer: Sequencer::parse(sequencer).unwrap(),
        size,
        etag: etag.to_owned(),
        at_ms,
    }
}

/// The schema as it was at migration `version`.
async fn migrations_up_to(backend: Backend, version: i64) -> Migrator {
    Migrator::new(Migrations::of(backend).up_to(version)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_catalogs_come_through_the_project_key() {
    use sqlx::sqlite::SqliteConnectOptions;
    let dir = temp_dir();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join(Store::SQLITE_FILE))
        .create_if_missing(true)
        .foreign_keys(false);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrations_up_to(Backend::Sqlite, BEFORE_PROJECT_KEYS).await.run(&pool).await.unwrap();
    fill(&pool).await;
    pool.close().await;
    let options = StoreOptions { url: None, max_connections: 2, connect_timeout: Duration::from_secs(5) };
    check(Store::open(&options, dir.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalogs_come_through_the_project_key() {
    let postgres = TestPostgres::create().await;
    let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    migrations_up_to(Backend::Postgres, BEFORE_PROJECT_KEYS).await.run(&pool).await.unwrap();
    // One connection, whose triggers (foreign keys among them) stay off while it fills.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica").execute(&mut *conn).await.unwrap();
    for sql in ROWS {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    sqlx::query(OBJECT_ROW).bind(state()).execute(&mut *conn).await.unwrap();
    drop(conn);
    pool.close().await;
    let options = StoreOptions {
        url: Some(postgres.url().to_owned()),
        max_connections: 2,
        connect_timeout: Duration::from_secs(5),
    };
    check(Store::open(&options, temp_dir().path()).await.unwrap()).await;
}

const OBJECT_ROW: &str = "INSERT INTO objects (project_id, key, state, revision) \
                          VALUES ('0b3c1f1e-9a7f-4a55-8e45-3c1d7c0b9a11', 'a/b.txt', $1, 7)";

async fn fill(pool: &sqlx::SqlitePool) {
    for sql in ROWS {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    sqlx::query(OBJECT_ROW).bind(state()).execute(pool).await.unwrap();
}

/// The old project's catalog reads as it was written, and takes new batches.
async fn check(store: Store) {
    let project = Uuid::parse_str(PROJECT).unwrap();
    let keys = store.data.keys(project, None, 10).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!((keys[0].key.as_str(), keys[0].revision), ("a/b.txt", 7));
    assert_eq!(keys[0].state.visible().map(|v| v.size), Some(5));
    let root = store.data.entries(project, "", None, "", 10).await.unwrap();
    assert_eq!(root.len(), 1, "{root:?}");
    assert!(matches!(root[0].kind, EntryKind::Folder { children: 1, marker: false }), "{root:?}");
    let file = store.data.entry(project, "a/b.txt").await.unwrap();
    assert!(matches!(file.kind, EntryKind::File(ref f) if f.size == 5 && f.etag == "e1"), "{file:?}");
    assert_eq!(store.data.revision(project).await.unwrap(), 7);

    let write = created("0000000000000000000000000000000B", 9, "e2", 2000);
    let outcome =
        store.data.apply(project, &[KeyUpdate::Changes { key: "a/c.txt".to_owned(), changes: vec![write] }]).await;
    assert_eq!(outcome.unwrap().revision, 8);
    let folder = store.data.entries(project, "a/", None, "", 10).await.unwrap();
    let names: Vec<&str> = folder.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["b.txt", "c.txt"]);
    assert_eq!(store.data.folder_totals(project, "a/").await.unwrap().files, 2);
}
