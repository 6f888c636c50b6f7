//! The sync engine end to end: `byos serve` against moto, a project on a ready configuration,
//! real uploads and deletes through S3 showing up in the browse API, and AWS-shaped events
//! (with `versionId`, `sequencer`, delete markers, which moto does not send) injected into the
//! queue out of order.

use std::time::{Duration, Instant};

use byos_aws::{Aws, AwsSettings};
use byos_test_support::{Fault, FaultPlan, FaultProxy, region};
use serde_json::{Value, json};

use crate::serve::{Server, call, read};

const REGION: &str = "eu-central-1";
const BUCKET: &str = "sync-bucket";

/// A running server with a ready configuration on `data/` of the bucket, and an admin token.
struct World {
    moto: byos_test_support::Moto,
    aws: Aws,
    server: Server,
    token: String,
    configuration: String,
    env: Vec<(&'static str, String)>,
    dir: byos_test_support::TempDir,
    /// Between the server and moto, when the world injects faults.
    proxy: Option<FaultProxy>,
}

impl World {
    async fn new() -> World {
        World::with(&[]).await
    }

    /// A world whose server also gets `extra` environment variables.
    async fn with(extra: &[(&'static str, &str)]) -> World {
        World::build(extra, 0, None).await
    }

    /// A world whose bucket holds [`BIG`] objects under `data/big/all/` before the configuration
    /// exists: the data a new project imports, without an event for each object (moto's queue
    /// gets slower with every message it holds).
    async fn with_big_folder(extra: &[(&'static str, &str)]) -> World {
        World::with_folder(extra, BIG).await
    }

    /// A world whose bucket holds `big` objects under `data/big/all/` before the configuration
    /// exists.
    async fn with_folder(extra: &[(&'static str, &str)], big: usize) -> World {
        World::build(extra, big, None).await
    }

    /// A world whose server reaches AWS through a proxy that injects the faults of `plan`, from
    /// the start: the configuration becomes ready through them.
    async fn through_faults(extra: &[(&'static str, &str)], plan: FaultPlan) -> World {
        World::build(extra, 0, Some(plan)).await
    }

    async fn build(extra: &[(&'static str, &str)], big: usize, faults: Option<FaultPlan>) -> World {
        let moto = byos_test_support::Moto::start();
        let proxy = match faults {
            Some(plan) => Some(FaultProxy::start(moto.url(), plan, 0x5EED).await),
            None => None,
        };
        let endpoint = proxy.as_ref().map_or(moto.url(), FaultProxy::url).to_owned();
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(moto.url().to_owned()),
            static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        aws.setup(&region(REGION)).create_bucket(BUCKET).await.unwrap();
        upload_many(&aws, "data/big/all/", big).await;
        let dir = byos_test_support::temp_dir();
        let mut env = vec![
            ("BYOS__AWS__ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let server = World::start(dir.path(), &env);
        let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
        let mut world = World { moto, aws, server, token, configuration: String::new(), env, dir, proxy };
        let credential = world
            .post(
                "/api/v1/storage-credentials",
                json!({"name": "moto key", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                       "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYe2eSECRETKEY"}),
            )
            .await;
        let configuration = world
            .post(
                "/api/v1/storage-configurations",
                json!({"name": "sync", "region": REGION, "bucket": BUCKET, "keyPrefix": "data/",
                       "credentialId": credential["id"]}),
            )
            .await;
        world.configuration = configuration["id"].as_str().unwrap_or_default().to_owned();
        let path = format!("/api/v1/storage-configurations/{}", world.configuration);
        world.wait(&path, |c| c["status"] == "ready", "the configuration ready").await;
        world
    }

    fn start(dir: &std::path::Path, env: &[(&'static str, String)]) -> Server {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(dir, &env, &[])
    }

    /// Starts the server again on the same data, after it was killed.
    fn restart(&mut self) {
        self.server = World::start(self.dir.path(), &self.env);
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = call(reqwest::Method::POST, &self.server.url(path), &self.token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}\n{}", self.server.output());
        reply
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        call(reqwest::Method::GET, &self.server.url(path), &self.token, None).await
    }

    /// Polls `path` until `done` holds.
    async fn wait(&self, path: &str, done: impl Fn(&Value) -> bool, what: &str) -> Value {
        wait_for(async || self.get(path).await.1, done, |body| format!("not {what}: {body}")).await
    }

    /// A project `name` in the folder `name`, once its initial import has finished: its id.
    async fn imported_project(&self, name: &str) -> String {
        let created = self
            .post(
                "/api/v1/projects",
                json!({"name": name, "region": REGION, "storageConfigurationId": self.configuration, "folder": name}),
            )
            .await;
        let project = created["id"].as_str().unwrap_or_default().to_owned();
        let import = format!("/api/v1/projects/{project}/reconcile");
        self.wait(&import, |r| r["status"] == "finished", "the import finished").await;
        project
    }

    async fn put(&self, key: &str, body: &str) {
        self.aws
            .own_bucket_access(&region(REGION))
            .put_object(BUCKET, key, body.as_bytes().to_vec(), None)
            .await
            .unwrap();
    }

    async fn delete(&self, key: &str) {
        self.aws.own_bucket_access(&region(REGION)).delete_object(BUCKET, key, None).await.unwrap();
    }

    /// Sends one message to the region's queue, as S3 would.
    async fn inject(&self, body: &str) {
        self.inject_all(&[body.to_owned()]).await;
    }

    /// Sends messages to the region's queue, in order.
    async fn inject_all(&self, bodies: &[String]) {
        let queues = self.aws.queues(&region(REGION));
        let queue = queues
            .find(&format!("byos-events-{REGION}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the platform's queue does not exist"));
        for body in bodies {
            queues.send(&queue.url, body).await.unwrap();
        }
    }
}

/// How long a wait may see nothing change before it gives up: a guard against a hang, never a
/// requirement on speed. A slower machine takes longer, and what a wait looks at still changes.
const STALLED: Duration = Duration::from_secs(300);

/// How long a wait may go on while what it sees keeps changing without ever getting there (a
/// livelock): far longer than any wait takes, short of the CI run's own limit.
const GIVE_UP: Duration = Duration::from_secs(900);

/// Looks at something with `look` until `done` holds; fails, with `describe`, when what it sees
/// has not changed for [`STALLED`] or has not got there in [`GIVE_UP`].
async fn wait_for<T: PartialEq>(
    mut look: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> String,
) -> T {
    let mut seen = look().await;
    let (started, mut changed) = (Instant::now(), Instant::now());
    while !done(&seen) {
        assert!(changed.elapsed() < STALLED, "nothing changed for {} s: {}", STALLED.as_secs(), describe(&seen));
        assert!(started.elapsed() < GIVE_UP, "still not there after {} s: {}", GIVE_UP.as_secs(), describe(&seen));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = look().await;
        if now != seen {
            (seen, changed) = (now, Instant::now());
        }
    }
    seen
}

/// The names in a folder listing.
fn names(page: &Value) -> Vec<String> {
    page["items"].as_array().into_iter().flatten().filter_map(|i| i["path"].as_str().map(str::to_owned)).collect()
}

/// An S3 event record as AWS sends it (moto's lack `versionId` and `sequencer`).
fn record(event: &str, key: &str, version: &str, sequencer: &str, size: u64) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2020-01-01T10:00:00.000Z", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "gds:objectcreated",
               "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
               "object": {"key": key, "size": size, "eTag": format!("etag-{version}"),
                          "versionId": version, "sequencer": sequencer}}
    })
}

fn message(records: &[Value]) -> String {
    json!({"Records": records}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_deletes_and_injected_events_reach_the_catalog() {
    let world = World::new().await;
    // Data that is there before the project: the initial import finds it.
    world.put("data/study/before.txt", "imported").await;
    let created = world
        .post(
            "/api/v1/projects",
            json!({"name": "study", "region": REGION, "storageConfigurationId": world.configuration,
                   "folder": "study"}),
        )
        .await;
    assert_eq!(created["keyPrefix"], "data/study/");
    assert_eq!(created["import"]["reason"], "initial-import");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let reconcile = format!("/api/v1/projects/{id}/reconcile");
    let run = world.wait(&reconcile, |r| r["status"] == "finished", "the import finished").await;
    assert_eq!(run["drift"]["added"], 1, "{run}");
    assert_eq!(run["drift"]["addedSamples"], json!(["before.txt"]));
    let root = format!("/api/v1/projects/{id}/data?path=/");
    let (_, page) = world.get(&root).await;
    assert_eq!(names(&page), ["/before.txt"], "{page}");

    // Real uploads and deletes: moto's events carry no sequencer, so the engine reads the keys.
    world.put("data/study/a/b.txt", "hello").await;
    world.put("data/study/c.txt", "world!").await;
    let page = world.wait(&root, |p| names(p).len() == 3, "three entries").await;
    assert_eq!(names(&page), ["/a/", "/before.txt", "/c.txt"], "{page}");
    let (_, file) = world.get(&format!("/api/v1/projects/{id}/data?path=/c.txt")).await;
    assert_eq!(file["items"][0]["size"], 6, "{file}");
    assert_eq!(file["items"][0]["type"], "file");
    // A key with NUL: S3 allows it, the catalog cannot keep it. Its event goes to the dead
    // letters, and it never shows in the catalog.
    world.put("data/study/bad\0key.txt", "refused").await;
    wait_for(async || dead_letters(&world.server).await, |n| *n == 1, |n| format!("{n} dead letters, not 1")).await;
    world.delete("data/study/a/b.txt").await;
    let page = world.wait(&root, |p| names(p).len() == 2, "the emptied folder gone").await;
    assert_eq!(names(&page), ["/before.txt", "/c.txt"], "{page}");
    let (status, _) = world.get(&format!("/api/v1/projects/{id}/data?path=/a/")).await;
    assert_eq!(status, 404);

    // AWS-shaped events, newest first and duplicated: v2 is written over v1, then a delete
    // marker hides the key, then the marker is removed and v2 is current again.
    let key = "data/study/versioned.txt";
    world.inject(&message(&[record("ObjectRemoved:Delete", key, "marker-1", "0055AED6DCD9028140", 0)])).await;
    world
        .inject(&message(&[record("ObjectRemoved:DeleteMarkerCreated", key, "marker-1", "0055AED6DCD9028130", 0)]))
        .await;
    world.inject(&message(&[record("ObjectCreated:Put", key, "v2", "0055AED6DCD9028120", 22)])).await;
    world.inject(&message(&[record("ObjectCreated:Put", key, "v1", "0055AED6DCD90281", 11)])).await;
    world.inject(&message(&[record("ObjectCreated:Put", key, "v2", "0055AED6DCD9028120", 22)])).await;
    // A message that is not S3's goes to the dead letters and blocks nothing.
    world.inject("this is not an S3 event").await;
    let entry = format!("/api/v1/projects/{id}/data?path=/versioned.txt");
    let found =
        world.wait(&entry, |e| e["items"][0]["versionId"] == "v2", "v2 current after the marker's removal").await;
    assert_eq!(found["items"][0]["size"], 22, "{found}");
    assert_eq!(found["items"][0]["eTag"], "etag-v2", "{found}");
    let metrics = reqwest::get(world.server.url("/metrics")).await.unwrap();
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains("byos_sync_dead_letters_total 2"), "{metrics}");

    // The injected key is not in the bucket: a reconcile finds the catalog's drift and heals it.
    let started = world.post(&reconcile, json!({})).await;
    assert_eq!(started["reason"], "requested");
    let run = world
        .wait(&reconcile, |r| r["status"] == "finished" && r["reason"] == "requested", "the reconcile finished")
        .await;
    assert_eq!(run["drift"]["removed"], 1, "{run}");
    assert_eq!(run["drift"]["removedSamples"], json!(["versioned.txt"]));
    // The NUL key is listed (S3 encodes the listing's keys for it, as XML cannot carry NUL) and
    // left out, and the run still finishes.
    assert_eq!(run["drift"]["skipped"], 1, "{run}");
    assert_eq!(run["drift"]["skippedSamples"], json!(["bad\0key.txt"]));
    let (status, _) = world.get(&entry).await;
    assert_eq!(status, 404);
    drop(world.moto);
}

/// Every file of the project, walking the browse API's folders page by page.
async fn catalog_files(world: &World, project: &str) -> std::collections::BTreeMap<String, u64> {
    let mut files = std::collections::BTreeMap::new();
    let mut folders = vec!["/".to_owned()];
    while let Some(folder) = folders.pop() {
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/projects/{project}/data?path={folder}&limit=1000");
            if let Some(token) = &token {
                path.push_str(&format!("&pageToken={token}"));
            }
            let (status, page) = world.get(&path).await;
            // A folder may empty, and go, between listing its parent and listing it.
            if status == 404 && folder != "/" {
                break;
            }
            assert_eq!(status, 200, "{path}: {page}");
            for item in page["items"].as_array().into_iter().flatten() {
                let path = item["path"].as_str().unwrap_or_default().to_owned();
                if item["type"] == "folder" {
                    folders.push(path);
                } else {
                    files.insert(path, item["size"].as_u64().unwrap_or_default());
                }
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
    }
    files
}

/// Every object under `prefix`, as the catalog would show it.
async fn bucket_files(world: &World, prefix: &str) -> std::collections::BTreeMap<String, u64> {
    let access = world.aws.own_bucket_access(&region(REGION));
    let mut files = std::collections::BTreeMap::new();
    let mut marker = None;
    loop {
        let page = access.list_objects_page(BUCKET, prefix, marker.as_ref(), 1000).await.unwrap();
        for entry in page.entries {
            files.insert(format!("/{}", &entry.key[prefix.len()..]), entry.size);
        }
        match page.next {
            Some(next) => marker = Some(next),
            None => return files,
        }
    }
}

/// How many event records a server counted with these outcomes, from its metrics.
async fn records(server: &Server, outcomes: &[&str]) -> u64 {
    let Ok(response) = reqwest::get(server.url("/metrics")).await else { return 0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| outcomes.iter().any(|o| l.starts_with(&format!("byos_sync_records_total{{outcome=\"{o}\"}}"))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A counter without labels from a server's metrics: 0 until the server answers.
async fn counter(server: &Server, name: &str) -> u64 {
    let Ok(response) = reqwest::get(server.url("/metrics")).await else { return 0 };
    let text = response.text().await.unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok()).unwrap_or(0.0) as u64
}

/// How many messages a server sent to the dead letters.
async fn dead_letters(server: &Server) -> u64 {
    counter(server, "byos_sync_dead_letters_total").await
}

/// How many event records the server has applied or looked up.
async fn records_seen(world: &World) -> u64 {
    records(&world.server, &["applied", "looked-up"]).await
}

/// An AWS-shaped record of an unversioned bucket (no version id), with its sequencer.
fn unversioned(event: &str, key: &str, sequencer: u64, size: u64) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2020-01-01T10:00:00.000Z", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "gds:objectcreated",
               "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
               "object": {"key": key, "size": size, "eTag": format!("etag-{sequencer}"),
                          "sequencer": format!("{sequencer:016X}")}}
    })
}

/// 20,000 events reach the queue while the server applies them; it is killed with SIGKILL part
/// way and started again. Once the queue is drained the catalog equals the bucket's listing.
///
/// The kill comes at a count of applied records, with half of the messages still to be sent: the
/// server cannot have finished before it is killed, however fast the machine.
///
/// moto's own events carry no sequencer (each costs a HeadObject) and its SQS slows down with
/// thousands of messages, so the events are AWS-shaped records injected a hundred to a message
/// (S3's format allows several), describing a history whose end state is what the bucket holds:
/// 5,000 keys written three times, 3,000 of them a fourth time, 2,000 deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_it_ingests_loses_nothing() {
    // Redelivery of what the killed server had taken comes after the visibility timeout. One
    // receive at a time, so that the kill is likely to find messages taken and not yet committed:
    // with the default `in_flight` the server takes the whole queue at once.
    let settings = [
        ("BYOS__SYNC__VISIBILITY_TIMEOUT_SECONDS", "5"),
        ("BYOS__SYNC__POLLERS", "1"),
        ("BYOS__SYNC__IN_FLIGHT", "10"),
    ];
    let mut world = World::with(&settings).await;
    let project = world.imported_project("ingest").await;
    let reconcile = format!("/api/v1/projects/{project}/reconcile");
    let messages = burst(&world, "data/ingest/").await;
    let (first, second) = messages.split_at(messages.len() / 2);
    world.inject_all(first).await;
    wait_for(async || records_seen(&world).await, |seen| *seen >= 4_000, |seen| format!("{seen} records applied"))
        .await;
    world.server.kill();
    world.inject_all(second).await;
    world.restart();

    let expected = converges(&world, &project, "data/ingest/").await;
    assert_eq!(expected.len(), 3_000);
    // Events did it, not a reconcile.
    let (_, latest) = world.get(&reconcile).await;
    assert_eq!(latest["reason"], "initial-import", "{latest}");
}

/// A tenth of the server's calls to S3 and SQS fail (503 SlowDown, 500 InternalError, the
/// connection reset before or after the call was done, answers cut short, latency): the
/// configuration still becomes ready, the initial import finishes, the catalog converges on the
/// bucket after a burst of 5,000 keys' events, a reconcile finds exactly the drift made behind
/// its back, a copy job copies a folder byte for byte and a delete job empties one. The retry
/// policy's metrics show the faults were met, and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenth_of_aws_calls_failing_loses_nothing() {
    // A message whose receipt was lost comes back after the visibility timeout; a validation
    // that failed is tried again after a second, doubling.
    let settings = [("BYOS__SYNC__VISIBILITY_TIMEOUT_SECONDS", "5"), ("BYOS__LIFECYCLE__RETRY_BASE_SECONDS", "1")];
    let world = World::through_faults(&settings, FaultPlan::every_call(0.1, Fault::all())).await;
    let project = world.imported_project("faults").await;

    let messages = burst(&world, "data/faults/").await;
    world.inject_all(&messages).await;
    let expected = converges(&world, &project, "data/faults/").await;
    assert_eq!(expected.len(), 3_000);
    // A first reconcile takes the objects' real ETags over the injected events' made-up ones.
    let baseline = reconciled(&world, &project).await;
    assert_eq!((&baseline["drift"]["added"], &baseline["drift"]["removed"]), (&json!(0), &json!(0)), "{baseline}");

    // Drift behind the catalog's back (no events): 40 files gone, 25 new, 10 rewritten.
    let keys: Vec<String> = expected.keys().map(|path| format!("data/faults{path}")).collect();
    for key in keys.iter().take(40) {
        world.delete(key).await;
    }
    for n in 0..25 {
        world.put(&format!("data/faults/late/new-{n:02}.txt"), "late").await;
    }
    for key in keys.iter().skip(40).take(10) {
        // Longer than any file of the burst: a size none had.
        world.put(key, &"r".repeat(1500)).await;
    }
    let run = reconciled(&world, &project).await;
    let drift = (&run["drift"]["added"], &run["drift"]["removed"], &run["drift"]["changed"]);
    assert_eq!(drift, (&json!(25), &json!(40), &json!(10)), "{run}");
    converges(&world, &project, "data/faults/").await;

    // Jobs through the same faults: a folder copied into another project byte for byte (same
    // sizes, same ETags), and a folder deleted.
    let copies = world.imported_project("copies").await;
    let job = world
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": project, "paths": ["/folder-03/"]},
                   "destination": {"projectId": copies, "path": "/in/"}}),
        )
        .await;
    let copied = ended_job(&world, &job).await;
    assert_eq!(copied["status"], "succeeded", "{copied}");
    let sources = listed(&world, "data/faults/folder-03/").await;
    assert_eq!(sources.len(), 250, "folder-03's files");
    assert_eq!(listed(&world, "data/copies/in/folder-03/").await, sources);
    let deleting = call(
        reqwest::Method::DELETE,
        &world.server.url(&format!("/api/v1/projects/{project}/data?path=/folder-04/")),
        &world.token,
        None,
    )
    .await;
    assert_eq!(deleting.0, 202, "{}", deleting.1);
    let deleted = ended_job(&world, &deleting.1).await;
    assert_eq!(deleted["status"], "succeeded", "{deleted}");
    assert_eq!(listed(&world, "data/faults/folder-04/").await, Vec::new());

    // The faults happened, and the retry policy met them.
    let injected = world.proxy.as_ref().map(FaultProxy::injected).unwrap_or_default();
    assert!(injected.faults * 20 >= injected.calls && injected.faults >= 20, "{injected:?}");
    let metrics = reqwest::get(world.server.url("/metrics")).await.unwrap().text().await.unwrap();
    let retried = |service: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("byos_aws_retries_total{{service=\"{service}\"}}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(retried("s3") > 0.0 && retried("sqs") > 0.0, "no retries counted: {metrics}");
}

/// PostgreSQL gone for 30 s mid-ingest (stopped at once, as a crash would): the server says it
/// is not ready, leaves what it could not commit in the queue, and catches up once the database
/// is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_mid_ingest_is_waited_out() {
    let postgres = byos_test_support::ThrowawayPostgres::start_with_tls();
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", postgres.url(), postgres.ca_certificate().display());
    let settings = [("BYOS__DATABASE__URL", url.as_str()), ("BYOS__SYNC__VISIBILITY_TIMEOUT_SECONDS", "5")];
    let world = World::with(&settings).await;
    let project = world.imported_project("outage").await;
    let messages = burst(&world, "data/outage/").await;
    let (first, second) = messages.split_at(messages.len() / 2);
    world.inject_all(first).await;
    wait_for(async || records_seen(&world).await, |seen| *seen >= 2_000, |seen| format!("{seen} records applied"))
        .await;

    postgres.stop();
    let ready = async || world.get("/readyz").await.0;
    wait_for(ready, |status| *status == 503, |status| format!("/readyz answers {status} without its database")).await;
    world.inject_all(second).await;
    // Gone for 30 s: what the server receives meanwhile it cannot commit, and leaves in the queue.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let queues = world.aws.queues(&region(REGION));
    let queue = queues.find(&format!("byos-events-{REGION}")).await.unwrap().unwrap();
    let (visible, in_flight) = queues.approximate_counts(&queue.url).await.unwrap();
    assert!(visible + in_flight > 0, "the messages the server could not commit stay in the queue");
    assert_eq!(world.get("/readyz").await.0, 503);

    postgres.start();
    wait_for(ready, |status| *status == 200, |status| format!("/readyz answers {status} with its database back")).await;
    let expected = converges(&world, &project, "data/outage/").await;
    assert_eq!(expected.len(), 3_000);
}

/// The objects under `prefix` (up to 1,000), each by its key below the prefix, with its size and
/// ETag.
async fn listed(world: &World, prefix: &str) -> Vec<(String, (u64, String))> {
    let access = world.aws.own_bucket_access(&region(REGION));
    let page = access.list_objects_page(BUCKET, prefix, None, 1000).await.unwrap();
    page.entries.into_iter().map(|e| (e.key[prefix.len()..].to_owned(), (e.size, e.etag))).collect()
}

/// Waits for the job `started` (as its start answered it) to end; its last state.
async fn ended_job(world: &World, started: &Value) -> Value {
    let path = format!("/api/v1/jobs/{}", started["id"].as_str().unwrap_or_default());
    world
        .wait(&path, |j| ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or("")), "ended")
        .await
}

/// A reconcile of the project asked for and waited for; it must finish. Its run.
async fn reconciled(world: &World, project: &str) -> Value {
    let path = format!("/api/v1/projects/{project}/reconcile");
    let started = world.post(&path, json!({})).await;
    let id = started["id"].clone();
    let run = world.wait(&path, |r| r["id"] == id && r["status"] != "running", "the reconcile ended").await;
    assert_eq!(run["status"], "finished", "{run}");
    run
}

/// A burst of 5,000 keys under `prefix`: the bucket's end state written straight to moto without
/// notifications (3,000 files left, 2,000 deleted), and the 20,000 AWS-shaped records that lead
/// there (1 to 4 writes per key, a delete for two in five), shuffled and in messages of 100.
async fn burst(world: &World, prefix: &str) -> Vec<String> {
    let access = world.aws.own_bucket_access(&region(REGION));
    access.put_notifications(BUCKET, &byos_domain::notifications::NotificationConfig::default()).await.unwrap();
    const KEYS: usize = 5_000;
    let key = |i: usize| format!("{prefix}folder-{:02}/object-{i:05}.txt", i % 20);
    let deleted = |i: usize| i % 5 < 2;
    let rewritten = |i: usize| i % 5 >= 2;
    let size = |i: usize, write: u64| (i as u64 * 7 + write) % 1000;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut uploads = tokio::task::JoinSet::new();
    for i in (0..KEYS).filter(|i| !deleted(*i)) {
        let (access, permits, key) = (access.clone(), permits.clone(), key(i));
        let body = vec![b'x'; usize::try_from(size(i, 4)).unwrap_or(0)];
        uploads.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            access.put_object(BUCKET, &key, body, None).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.unwrap();
    }

    let mut records = Vec::new();
    for i in 0..KEYS {
        let base = (i as u64 + 1) << 8;
        for write in 1..=3 {
            records.push(unversioned("ObjectCreated:Put", &key(i), base + write, size(i, write)));
        }
        if rewritten(i) {
            records.push(unversioned("ObjectCreated:Put", &key(i), base + 4, size(i, 4)));
        }
        if deleted(i) {
            records.push(unversioned("ObjectRemoved:Delete", &key(i), base + 5, 0));
        }
    }
    assert_eq!(records.len(), 20_000);
    // Any order: a fixed shuffle, so that a failure repeats.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..records.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        records.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap_or(0));
    }
    records.chunks(100).map(message).collect()
}

/// Waits until the project's catalog equals the bucket under `prefix`; says what differs if it
/// never does.
async fn converges(world: &World, project: &str, prefix: &str) -> std::collections::BTreeMap<String, u64> {
    let expected = bucket_files(world, prefix).await;
    // Records seen count as change too: a redelivered batch may apply without changing a file.
    wait_for(
        async || (catalog_files(world, project).await, records_seen(world).await),
        |(catalog, _)| *catalog == expected,
        |(catalog, _)| {
            let missing: Vec<_> = expected.keys().filter(|k| !catalog.contains_key(*k)).take(5).collect();
            let extra: Vec<_> = catalog.keys().filter(|k| !expected.contains_key(*k)).take(5).collect();
            let wrong: Vec<_> =
                expected.iter().filter(|(k, v)| catalog.get(*k).is_some_and(|c| c != *v)).take(5).collect();
            format!(
                "the catalog ({} files) did not converge on the bucket ({} files); \
                 missing {missing:?}, extra {extra:?}, wrong sizes {wrong:?}",
                catalog.len(),
                expected.len()
            )
        },
    )
    .await;
    expected
}

/// How many records a server has applied as events.
async fn applied(server: &Server) -> u64 {
    records(server, &["applied"]).await
}

/// How many batches of queue messages a server has applied (one per receive that brought any).
async fn batches(server: &Server) -> u64 {
    counter(server, "byos_sync_batches_total").await
}

/// With `sync.batch_window_ms`, a poller whose receive brought fewer than 10 messages waits
/// before its next: one event is applied at once, the nine that follow it one by one gather and
/// are read in one receive. Without the window the poller would receive them as they come. The
/// window is longer than the nine sends take on any machine, and shutdown does not wait it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_of_events_is_read_in_one_batch_after_the_window() {
    let settings = [("BYOS__SYNC__POLLERS", "1"), ("BYOS__SYNC__BATCH_WINDOW_MS", "20000")];
    let world = World::with(&settings).await;
    let project = world.imported_project("trickle").await;
    let before = batches(&world.server).await;
    let event = |i: u64| message(&[unversioned("ObjectCreated:Put", &format!("data/trickle/k{i}"), i + 1, i)]);

    world.inject(&event(0)).await;
    wait_for(async || applied(&world.server).await, |n| *n >= 1, |n| format!("{n} records applied")).await;
    assert_eq!(batches(&world.server).await - before, 1);
    // The poller now waits out its window: these arrive one by one meanwhile.
    world.inject_all(&(1..10).map(event).collect::<Vec<_>>()).await;
    wait_for(async || applied(&world.server).await, |n| *n >= 10, |n| format!("{n} records applied")).await;
    assert_eq!(batches(&world.server).await - before, 2, "the nine events came in more than one receive");
    let (_, page) = world.get(&format!("/api/v1/projects/{project}/data?path=/")).await;
    assert_eq!(names(&page).len(), 10, "{page}");

    // A poller in its window stops at once with the server.
    world.inject(&event(10)).await;
    wait_for(async || applied(&world.server).await, |n| *n >= 11, |n| format!("{n} records applied")).await;
    let World { server, .. } = world;
    let (status, output) = server.terminate();
    assert!(status.success(), "{output}");
}

/// Two replicas on one PostgreSQL database consume one queue: the work is shared, each record is
/// applied once, and the catalog is the events' end state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_the_queue() {
    let postgres = byos_test_support::TestPostgres::create().await;
    // Replicas share the master key, as they share the database.
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let world =
        World::with(&[("BYOS__DATABASE__URL", postgres.url()), ("BYOS_MASTER_KEY", key), ("BYOS__SYNC__POLLERS", "1")])
            .await;
    let project = world.imported_project("shared").await;
    let second_dir = byos_test_support::temp_dir();
    let second = World::start(second_dir.path(), &world.env);

    const KEYS: usize = 2_500;
    let key = |i: usize| format!("data/shared/f{}/k{i:04}", i % 7);
    let mut records = Vec::new();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..KEYS {
        let base = (i as u64 + 1) << 4;
        records.push(unversioned("ObjectCreated:Put", &key(i), base + 2, i as u64 % 300));
        records.push(unversioned("ObjectCreated:Put", &key(i), base + 1, 999_999));
        expected.insert(format!("/f{}/k{i:04}", i % 7), i as u64 % 300);
    }
    world.inject_all(&records.chunks(50).map(message).collect::<Vec<_>>()).await;
    wait_for(
        async || catalog_files(&world, &project).await,
        |catalog| *catalog == expected,
        |catalog| format!("the catalog ({} files) did not reach the events' end state", catalog.len()),
    )
    .await;
    let (first, other) = (applied(&world.server).await, applied(&second).await);
    assert_eq!(first + other, records.len() as u64, "each record applied once: {first} + {other}");
    assert!(first > 0 && other > 0, "both replicas took a share: {first} and {other}");
}

/// Three replicas on one PostgreSQL database and one queue, with leases of 3 s: one is killed
/// (SIGKILL) while it runs a project's import, another while it ingests a burst of 5,000 keys'
/// events; both start again. The import's lease moves (the killed run is marked interrupted and
/// a new one lists everything: no reconcile stays stuck), the catalog converges on the bucket,
/// and the records applied twice are at most what the killed replica held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_kills_mid_import_and_mid_ingest() {
    let postgres = byos_test_support::TestPostgres::create().await;
    // Replicas share the master key, as they share the database.
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let settings = [
        ("BYOS__DATABASE__URL", postgres.url()),
        ("BYOS_MASTER_KEY", key),
        ("BYOS__SERVER__LEASE_SECONDS", "3"),
        ("BYOS__SYNC__VISIBILITY_TIMEOUT_SECONDS", "5"),
        ("BYOS__SYNC__POLLERS", "1"),
        ("BYOS__SYNC__IN_FLIGHT", "10"),
    ];
    let world = World::with_big_folder(&settings).await;
    let (dir_b, dir_c) = (byos_test_support::temp_dir(), byos_test_support::temp_dir());
    let mut b = World::start(dir_b.path(), &world.env);
    let mut c = World::start(dir_c.path(), &world.env);
    let body =
        json!({"name": "burst", "region": REGION, "storageConfigurationId": world.configuration, "folder": "burst"});
    let project = world.post("/api/v1/projects", body).await["id"].as_str().unwrap_or_default().to_owned();
    world.wait(&format!("/api/v1/projects/{project}/reconcile"), |r| r["status"] == "finished", "the import").await;
    let messages = burst(&world, "data/burst/").await;

    // Replica B starts the big project's import and is killed while it runs.
    let body = json!({"name": "big", "region": REGION, "storageConfigurationId": world.configuration, "folder": "big"});
    let (status, big) = call(reqwest::Method::POST, &b.url("/api/v1/projects"), &world.token, Some(body)).await;
    assert_eq!((status, &big["import"]["status"]), (201, &json!("running")), "{big}");
    b.kill();

    // Replica C is killed while the replicas ingest.
    let (first, second) = messages.split_at(messages.len() / 2);
    world.inject_all(first).await;
    wait_for(async || applied_by(&[&world.server, &c]).await, |n| *n >= 2_000, |n| format!("{n} records applied"))
        .await;
    let applied_by_c = records(&c, &["applied"]).await;
    c.kill();
    world.inject_all(second).await;
    b = World::start(dir_b.path(), &world.env);
    c = World::start(dir_c.path(), &world.env);

    let expected = converges(&world, &project, "data/burst/").await;
    assert_eq!(expected.len(), 3_000);
    // Nothing lost: the catalog is the events' end state. Applied twice: at most what the killed
    // replica had committed and not deleted, its one poller's 10 messages of 100 records. (Its
    // count is read just before the kill; what it applied in between counts nowhere, so the sum
    // may fall short of the records sent, never exceed them by more.)
    let survivors = applied_by(&[&world.server, &b, &c]).await;
    let (total, records_sent) = (applied_by_c + survivors, 20_000);
    assert!(
        total <= records_sent + 1_000,
        "records applied twice beyond the killed replica's: {applied_by_c} before the kill, {survivors} by the others"
    );
    assert!(survivors > 0 && applied_by_c > 0, "the work was shared: {applied_by_c} and {survivors}");

    // The killed import is interrupted, and a run after it lists the whole folder.
    let big = big["id"].as_str().unwrap_or_default().to_owned();
    let import = big_import(&world, &big).await;
    assert_eq!(import["status"], "finished", "{import}");
    assert_eq!(import["listed"], BIG, "{import}");
}

/// How many records these servers applied, from their metrics.
async fn applied_by(servers: &[&Server]) -> u64 {
    let mut sum = 0;
    for server in servers {
        sum += records(server, &["applied"]).await;
    }
    sum
}

/// The big project's latest reconcile once one has listed everything (a later run than the
/// import a killed replica left, which another replica takes up when its lease expires).
async fn big_import(world: &World, project: &str) -> Value {
    let path = format!("/api/v1/projects/{project}/reconcile");
    world.wait(&path, |r| r["status"] == "finished" && r["listed"] == BIG, "a run listed the whole folder").await
}

/// How many objects of copy jobs a server recorded, by result, from its metrics.
async fn job_objects(server: &Server, result: &str) -> u64 {
    let Ok(response) = reqwest::get(server.url("/metrics")).await else { return 0 };
    let text = response.text().await.unwrap_or_default();
    let line = format!("byos_job_objects_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&line)?.parse::<f64>().ok()).unwrap_or(0.0) as u64
}

/// Two replicas on one PostgreSQL database share one copy job: the one that runs it plans it,
/// the other takes ranges of its plan (each under a lease), and every object is copied once.
/// Each replica copies at most 20 objects a second, so the job outlasts the other replica's
/// tick whatever the machine's speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_a_copy_job() {
    let postgres = byos_test_support::TestPostgres::create().await;
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let world = World::with(&[
        ("BYOS__DATABASE__URL", postgres.url()),
        ("BYOS_MASTER_KEY", key),
        ("BYOS__JOBS__COPY_RANGE_OBJECTS", "25"),
        ("BYOS__JOBS__OBJECTS_PER_SECOND", "20"),
    ])
    .await;
    const OBJECTS: usize = 300;
    upload_many(&world.aws, "data/src/", OBJECTS).await;
    let project = |name: &str| json!({"name": name, "region": REGION, "storageConfigurationId": world.configuration, "folder": name});
    let source = world.post("/api/v1/projects", project("src")).await["id"].as_str().unwrap_or_default().to_owned();
    let destination =
        world.post("/api/v1/projects", project("dst")).await["id"].as_str().unwrap_or_default().to_owned();
    world.wait(&format!("/api/v1/projects/{source}/reconcile"), |r| r["status"] == "finished", "the import").await;
    let second_dir = byos_test_support::temp_dir();
    let second = World::start(second_dir.path(), &world.env);

    let job = world
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": source, "paths": ["/"]},
                   "destination": {"projectId": destination, "path": "/in/"}}),
        )
        .await;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let ended = world
        .wait(
            &format!("/api/v1/jobs/{id}"),
            |j| ["succeeded", "failed"].contains(&j["status"].as_str().unwrap_or("")),
            "ended",
        )
        .await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(
        (&ended["progress"]["objectsDone"], &ended["progress"]["objectsTotal"]),
        (&json!(OBJECTS), &json!(OBJECTS))
    );

    // Each object copied once, by one replica or the other, and both took a share.
    let (first, other) = (job_objects(&world.server, "copied").await, job_objects(&second, "copied").await);
    assert_eq!(first + other, OBJECTS as u64, "each object recorded once: {first} + {other}");
    assert!(first > 0 && other > 0, "both replicas took a share: {first} and {other}");
    let report = reqwest::Client::new()
        .get(world.server.url(&format!("/api/v1/jobs/{id}/report")))
        .bearer_auth(&world.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = report.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sources: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| l["source"].as_str()).collect();
    assert_eq!((lines.len(), sources.len()), (OBJECTS, OBJECTS), "one line per object");
    assert!(lines.iter().all(|l| l["result"] == "copied"), "{report}");
    let access = world.aws.own_bucket_access(&region(REGION));
    let listed = access.list_objects_page(BUCKET, "data/dst/in/", None, 1000).await.unwrap();
    assert_eq!(listed.entries.len(), OBJECTS);
}

/// A server killed (SIGKILL) while it reconciles a large project leaves that run marked running.
/// The restarted server finds it without a holder once its lease has expired, records it
/// interrupted, reconciles the project again to its end, and the periodic reconciles go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_killed_midway_is_interrupted_and_runs_again() {
    let settings = [("BYOS__SERVER__LEASE_SECONDS", "3"), ("BYOS__SYNC__RECONCILE_INTERVAL_SECONDS", "2")];
    let mut world = World::with_big_folder(&settings).await;
    const KEYS: usize = BIG;
    let created = world.create_big_project().await;
    // The import is running (it lists 4 pages), and the kill comes now.
    world.server.kill();
    world.restart();
    let import: uuid::Uuid = created["import"]["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_default();
    let project = created["id"].as_str().unwrap_or_default().to_owned();

    let store = open_store(world.dir.path()).await;
    let killed = wait_for(
        async || store.sync.get_reconcile(import).await.unwrap(),
        |run| run.status != byos_catalog::ReconcileStatus::Running,
        |run| format!("the killed run is still marked running: {run:?}"),
    )
    .await;
    assert_eq!(killed.status, byos_catalog::ReconcileStatus::Interrupted, "{killed:?}");
    assert!(killed.listed < KEYS as u64, "the import had finished before the kill: {killed:?}");

    // A new run lists the whole folder; the periodic ones come after it.
    let reconcile = format!("/api/v1/projects/{project}/reconcile");
    let first = world
        .wait(&reconcile, |r| r["status"] == "finished" && r["listed"] == KEYS, "a new run listed everything")
        .await;
    assert_ne!(first["id"], json!(import.to_string()));
    let later = world
        .wait(&reconcile, |r| r["status"] == "finished" && r["id"] != first["id"], "a periodic run after it")
        .await;
    assert_eq!(later["reason"], "periodic", "{later}");
    assert_eq!(later["listed"], KEYS, "{later}");
    store.close().await;
}

impl World {
    /// The project `big` on `data/big/`; its import is running when this returns.
    async fn create_big_project(&self) -> Value {
        let body =
            json!({"name": "big", "region": REGION, "storageConfigurationId": self.configuration, "folder": "big"});
        let created = self.post("/api/v1/projects", body).await;
        assert_eq!(created["import"]["status"], "running", "{created}");
        created
    }
}

/// The server's SQLite store in `dir`, opened beside it, to read what the API does not show.
pub(crate) async fn open_store(dir: &std::path::Path) -> byos_catalog::Store {
    let options = byos_catalog::StoreOptions { url: None, max_connections: 2, connect_timeout: Duration::from_secs(5) };
    byos_catalog::Store::open(&options, &dir.join("data")).await.unwrap()
}

/// How many objects `data/big/` holds in [`World::with_big_folder`]: an import of 4 pages.
const BIG: usize = 4_000;

/// Writes `n` small objects under `prefix`, in 40 folders, 16 at a time.
async fn upload_many(aws: &Aws, prefix: &str, n: usize) {
    let access = aws.own_bucket_access(&region(REGION));
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..n {
        let (access, permits) = (access.clone(), permits.clone());
        let key = format!("{prefix}part-{:02}/object-{i:05}.txt", i % 40);
        uploads.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            access.put_object(BUCKET, &key, b"x".to_vec(), None).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.unwrap();
    }
}

/// kill -9 while a job deletes a folder: after a restart the job is taken up again where the
/// bucket shows it stopped, and it finishes; nothing of the folder is left, in the bucket or in
/// the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_delete_killed_midway_finishes_after_a_restart() {
    // Two batches, ten seconds apart at 100 objects a second: the kill comes between them.
    // One poller: moto's queue slows down with each message the deletes send it.
    let settings =
        [("BYOS__SERVER__LEASE_SECONDS", "3"), ("BYOS__JOBS__OBJECTS_PER_SECOND", "100"), ("BYOS__SYNC__POLLERS", "1")];
    const OBJECTS: usize = 1_500;
    let mut world = World::with_folder(&settings, OBJECTS).await;
    let created = world.create_big_project().await;
    let project = created["id"].as_str().unwrap_or_default().to_owned();
    world
        .wait(&format!("/api/v1/projects/{project}/reconcile"), |r| r["status"] == "finished", "the import finished")
        .await;
    let reply = call(
        reqwest::Method::DELETE,
        &world.server.url(&format!("/api/v1/projects/{project}/data?path=/all/")),
        &world.token,
        None,
    )
    .await;
    assert_eq!(reply.0, 202, "{}", reply.1);
    let job = format!("/api/v1/jobs/{}", reply.1["id"].as_str().unwrap_or_default());
    let midway = world.wait(&job, |j| j["progress"]["objectsDone"].as_u64().unwrap_or(0) > 0, "a batch deleted").await;
    world.server.kill();
    assert_eq!(midway["status"], "running", "{midway}");
    assert_eq!(midway["progress"]["objectsDone"], 1_000, "one batch before the kill: {midway}");

    world.restart();
    let done = world.wait(&job, |j| j["status"] != "running" && j["status"] != "queued", "the job ended").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["startedAt"], midway["startedAt"], "the same job went on: {done}");
    assert_eq!(done["progress"]["objectsDone"], OBJECTS, "{done}");
    let left = world.aws.own_bucket_access(&region(REGION)).list_objects_page(BUCKET, "data/big/all/", None, 10).await;
    assert_eq!(left.unwrap().entries.len(), 0, "objects of the folder are left in the bucket");
    let (status, browse) = world.get(&format!("/api/v1/projects/{project}/data?path=/")).await;
    assert_eq!((status, &browse["items"]), (200, &json!([])), "the catalog still shows the folder: {browse}");
}

/// SIGTERM while a reconcile runs: the server stops the run and records it interrupted before it
/// exits, so that no run is left marked running (the next start reconciles the project again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_stopped_by_sigterm_is_recorded_interrupted() {
    let world = World::with_big_folder(&[]).await;
    let created = world.create_big_project().await;
    let import: uuid::Uuid = created["import"]["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_default();
    let World { server, dir, .. } = world;
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let store = open_store(dir.path()).await;
    let run = store.sync.get_reconcile(import).await.unwrap();
    assert_eq!(run.status, byos_catalog::ReconcileStatus::Interrupted, "{run:?}\n{log}");
    assert_eq!(run.error.as_deref(), Some("the server is shutting down"), "{run:?}");
    assert!(run.finished_at.is_some() && run.listed < BIG as u64, "{run:?}");
    store.close().await;
}
