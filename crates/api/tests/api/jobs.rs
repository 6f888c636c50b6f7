//! Jobs against moto: a folder's delete of 2,500 objects in DeleteObjects batches, beside
//! folders whose names it must not touch; cancels; who sees which job; moves of a file and of a
//! folder, verified before their sources go, and a folder's move taken up again.

use serde_json::{Value, json};

use crate::support::{BUCKET, OnMoto, project, wait_for_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_delete_is_a_job_that_leaves_its_neighbours() {
    let on = OnMoto::new("jobs").await;
    let (app, bucket) = (&on.app, &on.bucket);

    // 2,500 objects in the folder (three DeleteObjects), and neighbours whose keys start alike.
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
    let id = on.imported_project("study").await;
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
    let job = wait_for_job(app, reply.ok(202)["id"].as_str().unwrap()).await;
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
    assert_eq!(names, ["big-old", "big0", "bigger", "big.txt"], "folders first: {}", root.text);

    // Both jobs are the project's, newest first; an ended job stays as it ended.
    let listed = app.get(&format!("/api/v1/jobs?projectId={id}")).await;
    let ids: Vec<&Value> = listed.ok(200)["items"].as_array().unwrap().iter().map(|j| &j["id"]).collect();
    assert_eq!(ids, [&job["id"], &queued["id"]]);
    let again = app.post(&cancel(&job), json!({})).await;
    assert_eq!(again.ok(200)["status"], "succeeded");
    let metrics = app.get("/metrics").await.text;
    assert!(metrics.contains(r#"byos_jobs_ended_total{type="delete-folder",status="succeeded"} 1"#), "{metrics}");

    // A member of another project sees none of them.
    let other = project(app, "other", &on.configuration, "other").await;
    let outsider = app.member(&[&other]).await;
    let theirs = app.call(axum::http::Method::GET, "/api/v1/jobs", Some(&outsider), None).await;
    assert_eq!(theirs.ok(200)["items"], json!([]));
    let reply = app.call(axum::http::Method::GET, &format!("/api/v1/jobs?projectId={id}"), Some(&outsider), None).await;
    reply.error(404, "not-found");
    let message = app.get("/api/v1/jobs?projectId=nope").await.error(400, "invalid-request");
    assert_eq!(message, "Invalid request: projectId: \"nope\" is not a project id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_copy_verify_then_delete() {
    let on = OnMoto::new("moves").await;
    let (app, bucket) = (&on.app, &on.bucket);
    const FOLDER: usize = 300;
    for i in 0..FOLDER {
        let key = format!("moves/study/in/sub-{}/object-{i:03}.txt", i % 3);
        bucket.put_object(BUCKET, &key, format!("object {i}").into_bytes(), None).await.unwrap();
    }
    for (key, body) in [("moves/study/a.txt", "hello"), ("moves/study/out/a.txt", "old"), ("moves/study/keep/x", "x")] {
        bucket.put_object(BUCKET, key, body.as_bytes().to_vec(), None).await.unwrap();
    }
    let id = on.imported_project("study").await;
    let url = format!("/api/v1/projects/{id}/data/move");
    let data = |path: &str| format!("/api/v1/projects/{id}/data?path={path}");
    let names = |body: &Value| -> Vec<String> {
        body["items"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str().map(str::to_owned)).collect()
    };

    // A file: refused onto an existing one, then moved over it, verified, the source deleted.
    let message = app.post(&url, json!({"from": "/a.txt", "to": "/out/"})).await.error(409, "file-exists");
    assert_eq!(message, "'/out/a.txt' already exists");
    let moved = app.post(&url, json!({"from": "/a.txt", "to": "/out/", "overwrite": true})).await;
    assert_eq!((&moved.ok(200)["path"], &moved.body["size"]), (&json!("/out/a.txt"), &json!(5)), "{}", moved.text);
    let head = bucket.head(BUCKET, "moves/study/out/a.txt", None).await.unwrap().unwrap();
    assert_eq!(head.size, 5, "the new content is there");
    assert_eq!(bucket.head(BUCKET, "moves/study/a.txt", None).await.unwrap(), None, "the source is gone");
    let root = app.get(&data("/")).await;
    assert_eq!(names(root.ok(200)), ["in", "keep", "out"], "the catalog shows the move at once");
    let renamed = app.post(&url, json!({"from": "/out/a.txt", "to": "/out/b.txt"})).await;
    assert_eq!(renamed.ok(200)["path"], "/out/b.txt");

    // What cannot move is refused before anything changes.
    for (body, status, code, expected) in [
        (json!({"from": "/", "to": "/x/"}), 400, "invalid-request", "from: the project's root cannot move"),
        (json!({"from": "/out/b.txt", "to": "/out/b.txt"}), 400, "invalid-request", "is where the file is"),
        (json!({"from": "/in/", "to": "/x.txt"}), 400, "invalid-request", "a folder moves to a folder"),
        (json!({"from": "/in/", "to": "/in/deeper/"}), 400, "invalid-request", "cannot move into itself"),
        (json!({"from": "/nothing/", "to": "/x/"}), 404, "file-not-found", "there is no such folder"),
        (json!({"from": "/nothing.txt", "to": "/x.txt"}), 404, "file-not-found", "nothing is there"),
        (json!({"from": "/in/", "to": "/keep/"}), 409, "file-exists", "'/keep/' already exists"),
        (json!({"to": "/x/"}), 400, "invalid-request", "from: required"),
    ] {
        let message = app.post(&url, body.clone()).await.error(status, code);
        assert!(message.contains(expected), "{body}: {message}");
    }

    // A folder: a job copies each object, verifies it, then deletes the sources.
    let _workers = app.state.services().job_engine().spawn_workers();
    let reply = app.post(&url, json!({"from": "/in/", "to": "/archive/run-1/"})).await;
    let queued = reply.ok(202).clone();
    assert_eq!(
        (&queued["type"], &queued["path"], &queued["to"]),
        (&json!("move-folder"), &json!("/in/"), &json!("/archive/run-1/"))
    );
    let job = wait_for_job(app, queued["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((&job["progress"]["objectsDone"], &job["progress"]["objectsTotal"]), (&json!(FOLDER), &json!(FOLDER)));
    let left = bucket.list_objects_page(BUCKET, "moves/study/in/", None, 1000).await.unwrap();
    assert!(left.entries.is_empty(), "sources left: {:?}", left.entries.first());
    let moved = bucket.list_objects_page(BUCKET, "moves/study/archive/run-1/", None, 1000).await.unwrap();
    assert_eq!(moved.entries.len(), FOLDER);
    let one = bucket.head(BUCKET, "moves/study/archive/run-1/sub-1/object-004.txt", None).await.unwrap().unwrap();
    assert_eq!(one.size, "object 4".len() as u64);
    let root = app.get(&data("/")).await;
    assert_eq!(names(root.ok(200)), ["archive", "keep", "out"], "{}", root.text);
    let sub = app.get(&data("/archive/run-1/sub-2/")).await;
    assert_eq!(sub.ok(200)["items"].as_array().map(Vec::len), Some(FOLDER / 3));

    // A move taken up again: a destination holding a verified copy (the move's own, before a
    // stop) counts as moved; one holding something else is kept, and so is its source.
    for i in 0..4 {
        bucket
            .put_object(BUCKET, &format!("moves/study/again/o{i}"), format!("again {i}").into_bytes(), None)
            .await
            .unwrap();
    }
    bucket.put_object(BUCKET, "moves/study/later/o0", b"again 0".to_vec(), None).await.unwrap();
    bucket.put_object(BUCKET, "moves/study/later/o1", b"someone else's".to_vec(), None).await.unwrap();
    let spec =
        byos_catalog::JobSpec::MoveFolder { from: "again/".to_owned(), to: "later/".to_owned(), overwrite: false };
    let project_id = id.parse().unwrap();
    let resumed = byos_catalog::Job::queued(project_id, spec, uuid::Uuid::new_v4(), time::OffsetDateTime::now_utc());
    let resumed = app.state.services().job_engine().submit(resumed).await.unwrap();
    let job = wait_for_job(app, &resumed.id.to_string()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((&job["progress"]["objectsDone"], &job["progress"]["objectsSkipped"]), (&json!(3), &json!(1)), "{job}");
    let left = bucket.list_objects_page(BUCKET, "moves/study/again/", None, 10).await.unwrap();
    let left: Vec<&str> = left.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(left, ["moves/study/again/o1"], "the source of the skipped one stays");
    let kept = bucket.head(BUCKET, "moves/study/later/o1", None).await.unwrap().unwrap();
    assert_eq!(kept.size, "someone else's".len() as u64, "the destination that was there is kept");
}
