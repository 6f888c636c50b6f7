//! Jobs against moto: a folder's delete of 2,500 objects in DeleteObjects batches, beside
//! folders whose names it must not touch; cancels; who sees which job.

use byos_domain::VersioningState;
use serde_json::{Value, json};

use crate::support::{SECRET, TestApp, configuration, id_of, moto_aws, project, set_ready_with, wait_for_job};

const BUCKET: &str = "customer-bucket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_delete_is_a_job_that_leaves_its_neighbours() {
    let moto = byos_test_support::Moto::start();
    let app = TestApp::with_aws(moto.url()).await;
    let (aws, region) = moto_aws(&moto).await;
    aws.setup(&region).create_bucket(BUCKET).await.unwrap();
    let credential = app.user_credential("jobs key", SECRET).await;
    let created = app.post("/api/v1/storage-configurations", configuration("jobs", &credential)).await;
    let configuration = id_of(created.ok(201));
    set_ready_with(&app, &configuration, VersioningState::Unversioned).await;

    // 2,500 objects in the folder (three DeleteObjects), and neighbours whose keys start alike.
    let bucket = aws.own_bucket_access(&region);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..2_500_usize {
        let (bucket, permits) = (bucket.clone(), permits.clone());
        puts.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let key = format!("jobs/study/big/part-{}/object-{i:04}.txt", i % 10);
            bucket.put_object(BUCKET, &key, vec![b'x'; i % 7], None).await.unwrap();
        });
    }
    while puts.join_next().await.is_some() {}
    let neighbours = ["jobs/study/big.txt", "jobs/study/big0/x", "jobs/study/bigger/y", "jobs/study/big-old/z"];
    for key in neighbours {
        bucket.put_object(BUCKET, key, b"keep".to_vec(), None).await.unwrap();
    }
    let id = project(&app, "study", &configuration, "study").await;
    let import = format!("/api/v1/projects/{id}/reconcile");
    for _ in 0..600 {
        if app.get(&import).await.ok(200)["status"] == "finished" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let data = |path: &str| format!("/api/v1/projects/{id}/data?path={path}");
    assert_eq!(app.get(&data("/big/")).await.ok(200)["items"].as_array().map(Vec::len), Some(10), "imported");

    // Without workers a job waits; a cancel ends it at once and deletes nothing.
    let queued = app.delete(&data("/bigger/")).await;
    let queued = queued.ok(202).clone();
    assert_eq!(
        (&queued["type"], &queued["status"], &queued["path"]),
        (&json!("delete-folder"), &json!("queued"), &json!("/bigger/"))
    );
    let cancel = |job: &Value| format!("/api/v1/jobs/{}/cancel", job["id"].as_str().unwrap_or_default());
    let cancelled = app.post(&cancel(&queued), json!({})).await;
    assert_eq!((&cancelled.ok(200)["status"], &cancelled.body["cancelRequested"]), (&json!("cancelled"), &json!(true)));

    let _workers = app.state.services().job_engine().spawn_workers();
    let reply = app.delete(&data("/big/")).await;
    let job = wait_for_job(&app, reply.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let bytes: u64 = (0..2_500_u64).map(|i| i % 7).sum();
    assert_eq!(
        job["progress"],
        json!({"objectsDone": 2_500, "objectsTotal": 2_500, "objectsSkipped": 0, "objectsFailed": 0,
               "bytesDone": bytes, "bytesTotal": bytes}),
    );
    assert!(job["startedAt"].is_string() && job["finishedAt"].is_string(), "{job}");

    // The bucket and the catalog agree: the folder is gone, its neighbours are not.
    let left = bucket.list_objects_page(BUCKET, "jobs/study/", None, 1000).await.unwrap();
    let mut keys: Vec<&str> = left.entries.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    let mut expected = neighbours.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let root = app.get(&data("/")).await;
    let names: Vec<&str> =
        root.ok(200)["items"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["big-old", "big.txt", "big0", "bigger"], "{}", root.text);

    // Both jobs are the project's, newest first; an ended job stays as it ended.
    let listed = app.get(&format!("/api/v1/jobs?projectId={id}")).await;
    let ids: Vec<&Value> = listed.ok(200)["items"].as_array().unwrap().iter().map(|j| &j["id"]).collect();
    assert_eq!(ids, [&job["id"], &queued["id"]]);
    let again = app.post(&cancel(&job), json!({})).await;
    assert_eq!(again.ok(200)["status"], "succeeded");
    let metrics = app.get("/metrics").await.text;
    assert!(metrics.contains(r#"byos_jobs_ended_total{type="delete-folder",status="succeeded"} 1"#), "{metrics}");

    // A member of another project sees none of them.
    let other = project(&app, "other", &configuration, "other").await;
    let outsider = app.member(&[&other]).await;
    let theirs = app.call(axum::http::Method::GET, "/api/v1/jobs", Some(&outsider), None).await;
    assert_eq!(theirs.ok(200)["items"], json!([]));
    let reply = app.call(axum::http::Method::GET, &format!("/api/v1/jobs?projectId={id}"), Some(&outsider), None).await;
    reply.error(404, "not-found");
    let message = app.get("/api/v1/jobs?projectId=nope").await.error(400, "invalid-request");
    assert_eq!(message, "Invalid request: projectId: \"nope\" is not a project id");
}
