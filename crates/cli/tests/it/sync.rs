//! The sync engine end to end: `byos serve` against moto, a project on a ready configuration,
//! real uploads and deletes through S3 showing up in the browse API, and AWS-shaped events
//! (with `versionId`, `sequencer`, delete markers, which moto does not send) injected into the
//! queue out of order.

use std::time::{Duration, Instant};

use byos_aws::{Aws, AwsSettings};
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
    _dir: byos_test_support::TempDir,
}

impl World {
    async fn new() -> World {
        let moto = byos_test_support::Moto::start();
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(moto.url().to_owned()),
            static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
            profile: None,
        })
        .await;
        aws.setup(REGION).create_bucket(BUCKET).await.unwrap_or_else(|e| panic!("{e}"));
        let dir = byos_test_support::temp_dir();
        let env = [
            ("BYOS__AWS__ENDPOINT_URL", moto.url()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let server = Server::start(dir.path(), &env, &[]);
        let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
        let mut world = World { moto, aws, server, token, configuration: String::new(), _dir: dir };
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

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = call(reqwest::Method::POST, &self.server.url(path), &self.token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}");
        reply
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        call(reqwest::Method::GET, &self.server.url(path), &self.token, None).await
    }

    /// Polls `path` until `done` holds, for up to 30 s.
    async fn wait(&self, path: &str, done: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "not {what} within 30 s: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn put(&self, key: &str, body: &str) {
        self.aws
            .own_bucket_access(REGION)
            .put_object(BUCKET, key, body.as_bytes().to_vec(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn delete(&self, key: &str) {
        self.aws.own_bucket_access(REGION).delete_object(BUCKET, key, None).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends one message to the region's queue, as S3 would.
    async fn inject(&self, body: &str) {
        let queues = self.aws.queues(REGION);
        let queue = queues
            .find(&format!("byos-events-{REGION}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the platform's queue does not exist"));
        queues.send(&queue.url, body).await.unwrap_or_else(|e| panic!("{e}"));
    }
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
    let metrics = reqwest::get(world.server.url("/metrics")).await.unwrap_or_else(|e| panic!("{e}"));
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains("byos_sync_dead_letters_total 1"), "{metrics}");

    // The injected key is not in the bucket: a reconcile finds the catalog's drift and heals it.
    let started = world.post(&reconcile, json!({})).await;
    assert_eq!(started["reason"], "requested");
    let run = world
        .wait(&reconcile, |r| r["status"] == "finished" && r["reason"] == "requested", "the reconcile finished")
        .await;
    assert_eq!(run["drift"]["removed"], 1, "{run}");
    assert_eq!(run["drift"]["removedSamples"], json!(["versioned.txt"]));
    let (status, _) = world.get(&entry).await;
    assert_eq!(status, 404);
    drop(world.moto);
}
