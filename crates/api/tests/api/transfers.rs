//! Downloads through presigned URLs, against s3s-fs, which checks SigV4 as S3 does: a URL
//! fetches the exact bytes under the file's name, and a tampered or expired URL is refused by
//! the storage itself.

use std::time::Duration;

use byos_catalog::KeyUpdate;
use byos_domain::events::Sequencer;
use byos_domain::objects::Change;
use byos_test_support::{EXAMPLE_ACCESS_KEY_ID, S3sFs};
use serde_json::json;
use uuid::Uuid;

use crate::support::{SECRET, TestApp, project, ready_configuration};

/// A project `study` on a ready configuration `downloads/` of `customer-bucket`, whose bucket is
/// served by `s3`; returns the app and the project's id.
async fn project_on(s3: &S3sFs, url_expiry: Duration) -> (TestApp, String) {
    let data = byos_api::DataSettings { url_expiry, ..Default::default() };
    let app = TestApp::with_aws_and_data(s3.url(), data).await;
    let configuration = ready_configuration(&app, "downloads").await;
    let id = project(&app, "study", &configuration, "study").await;
    (app, id)
}

/// Puts `bytes` at `path` of the project, in the bucket and in the catalog.
async fn file(app: &TestApp, s3: &S3sFs, project: &str, path: &str, bytes: &[u8]) {
    s3.put_file("customer-bucket", &format!("downloads/study/{path}"), bytes);
    let created = KeyUpdate::Changes {
        key: path.to_owned(),
        changes: vec![Change::Created {
            version_id: "null".to_owned(),
            sequencer: Sequencer::parse("0A").unwrap(),
            size: bytes.len() as u64,
            etag: "etag".to_owned(),
            at_ms: 1_764_000_000_000,
        }],
    };
    app.state.store().data.apply(Uuid::parse_str(project).unwrap(), &[created]).await.unwrap();
}

async fn fetch(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let response = reqwest::Client::builder().no_proxy().build().unwrap().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let disposition = response.headers().get("content-disposition").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, disposition, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_download_url_fetches_the_exact_bytes_and_a_tampered_one_nothing() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = project_on(&s3, Duration::from_secs(900)).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    file(&app, &s3, &id, "reads/Größe 1.bam", &bytes).await;

    let reader = app.member_with(json!([{"id": id, "access": "read"}])).await;
    let reply = app
        .call(
            axum::http::Method::POST,
            &format!("/api/v1/projects/{id}/data/download-url"),
            Some(&reader),
            Some(json!({"path": "/reads/Größe 1.bam"})),
        )
        .await;
    let body = reply.ok(200).clone();
    assert_eq!(body["size"], json!(100_000));
    assert_eq!(reply.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/customer-bucket/downloads/study/reads/", s3.url())), "{url}");
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=900"), "{url}");

    let (status, disposition, fetched) = fetch(url).await;
    assert_eq!(status, 200);
    assert!(fetched == bytes, "the download is byte-exact");
    assert_eq!(
        disposition.as_deref(),
        Some("attachment; filename=\"Gr__e 1.bam\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe%201.bam")
    );

    // Another signature, or another file under the same signature: refused by the storage.
    let signature = url.rfind("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.to_owned();
    let flipped = if &url[signature..=signature] == "0" { "1" } else { "0" };
    tampered.replace_range(signature..=signature, flipped);
    let (status, _, answer) = fetch(&tampered).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("SignatureDoesNotMatch"));
    let (status, _, _) = fetch(&url.replace("/reads/Gr", "/reads/gr")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_expired_download_url_is_refused_by_the_storage() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = project_on(&s3, Duration::from_secs(1)).await;
    file(&app, &s3, &id, "a.txt", b"hello").await;
    let reply = app.post(&format!("/api/v1/projects/{id}/data/download-url"), json!({"path": "/a.txt"})).await;
    let url = reply.ok(200)["url"].as_str().unwrap().to_owned();
    assert!(url.contains("X-Amz-Expires=1&") || url.ends_with("X-Amz-Expires=1"), "{url}");
    // Wait until the URL's second is over, by the clock the storage checks it with.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, answer) = fetch(&url).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&answer).contains("expired"), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn only_files_have_download_urls() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = project_on(&s3, Duration::from_secs(900)).await;
    file(&app, &s3, &id, "runs/42/a.txt", b"hello").await;
    let url = format!("/api/v1/projects/{id}/data/download-url");
    for (body, status, code, expected) in [
        (json!({"path": "/runs/"}), 404, "file-not-found", "'/runs/' is not a file of the project: it is a folder"),
        (json!({"path": "/runs"}), 404, "file-not-found", "'/runs' is not a file of the project: it is a folder"),
        (json!({"path": "/"}), 404, "file-not-found", "'/' is not a file of the project: it is a folder"),
        (json!({"path": "/b.txt"}), 404, "file-not-found", "'/b.txt' is not a file of the project: nothing is there"),
        (json!({}), 400, "invalid-request", "Invalid request: path: required"),
        (
            json!({"path": "b.txt"}),
            400,
            "invalid-request",
            "Invalid request: path: \"b.txt\" starts with '/', from the project's root",
        ),
        (
            json!({"path": "/runs/42/a.txt", "versionId": "a b"}),
            400,
            "invalid-request",
            "Invalid request: versionId: \"a b\" is not a version id",
        ),
    ] {
        let message = app.post(&url, body.clone()).await.error(status, code);
        assert_eq!(message, expected, "{body}");
    }
}

/// Many URLs in one call: each file's, in the order asked, working; a folder's and a missing
/// file's catalogue entry in their places; the number of paths bounded.
#[tokio::test]
async fn download_urls_come_in_batches() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = project_on(&s3, Duration::from_secs(900)).await;
    file(&app, &s3, &id, "runs/42/a.txt", b"alpha").await;
    file(&app, &s3, &id, "runs/42/b.txt", b"beta!!").await;
    let url = format!("/api/v1/projects/{id}/data/download-urls");
    let paths = json!({"paths": ["/runs/42/b.txt", "/runs/", "/runs/42/a.txt", "/nothing.txt"]});
    let reply = app.post(&url, paths).await;
    let items = reply.ok(200)["items"].as_array().unwrap().clone();
    let asked: Vec<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(asked, ["/runs/42/b.txt", "/runs/", "/runs/42/a.txt", "/nothing.txt"], "in the order asked");
    assert_eq!((&items[0]["size"], &items[2]["size"]), (&json!(6), &json!(5)));
    assert_eq!(fetch(items[0]["url"].as_str().unwrap()).await.2, b"beta!!", "a working URL");
    assert_eq!(fetch(items[2]["url"].as_str().unwrap()).await.2, b"alpha");
    assert_eq!(items[1]["error"]["code"], json!("file-not-found"), "{}", items[1]);
    assert_eq!(items[1]["error"]["message"], json!("'/runs/' is not a file of the project: it is a folder"));
    assert_eq!(items[3]["error"]["code"], json!("file-not-found"));
    assert!(items[1]["url"].is_null() && items[3]["url"].is_null());
    let many: Vec<String> = (0..1001).map(|i| format!("/f{i}")).collect();
    let message = app.post(&url, json!({"paths": many})).await.error(400, "invalid-request");
    assert_eq!(message, "Invalid request: paths: 1 to 1000 paths of files, not 1001");
    let message = app.post(&url, json!({"paths": []})).await.error(400, "invalid-request");
    assert_eq!(message, "Invalid request: paths: 1 to 1000 paths of files, not 0");
}

/// Temporary credentials on moto (which vends federation tokens but does not enforce session
/// policies: `byos-domain`'s property test proves what the policy allows).
#[tokio::test]
async fn temporary_credentials_are_scoped_to_the_project_and_the_access() {
    let moto = byos_test_support::Moto::start();
    let data = byos_api::DataSettings { credentials_per_minute: 4, ..Default::default() };
    let app = TestApp::with_aws_and_data(moto.url(), data).await;
    let configuration = ready_configuration(&app, "vend").await;
    let id = project(&app, "study", &configuration, "study").await;
    let url = format!("/api/v1/projects/{id}/temporary-credentials");
    let reader = app.member_with(json!([{"id": id, "access": "read"}])).await;
    let as_reader = |body: serde_json::Value| {
        let (app, url, reader) = (&app, url.clone(), reader.clone());
        async move { app.call(axum::http::Method::POST, &url, Some(&reader), Some(body)).await }
    };

    let reply = as_reader(json!({"access": "read", "path": "/runs/42/"})).await;
    let body = reply.ok(201).clone();
    assert_eq!(reply.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    for field in ["accessKeyId", "secretAccessKey", "sessionToken", "expiresAt"] {
        assert!(body[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {body}");
    }
    assert_eq!(
        (&body["access"], &body["region"], &body["bucket"], &body["prefix"], &body["s3Uri"]),
        (
            &json!("read"),
            &json!("eu-central-1"),
            &json!("customer-bucket"),
            &json!("vend/study/runs/42/"),
            &json!("s3://customer-bucket/vend/study/runs/42/")
        )
    );
    let objects = &body["sessionPolicy"]["Statement"][2];
    assert_eq!(objects["Resource"], json!("arn:aws:s3:::customer-bucket/vend/study/runs/42/*"));
    assert_eq!(objects["Action"], json!(["s3:GetObject", "s3:GetObjectVersion"]));
    let env: Vec<&str> = body["env"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
    assert_eq!(env[0], format!("export AWS_ACCESS_KEY_ID={}", body["accessKeyId"].as_str().unwrap()));
    assert_eq!(env[3], "export AWS_REGION=eu-central-1");
    // The audit log says who holds which session until when, and keeps none of its secrets.
    let audit = app.get("/api/v1/audit-events?action=temporary_credentials").await;
    let event = &audit.ok(200)["items"][0];
    assert_eq!((&event["actor"]["name"], &event["outcome"]), (&json!("member"), &json!("succeeded")), "{event}");
    assert_eq!(
        event["detail"],
        json!({"access": "read", "expiresAt": body["expiresAt"], "accessKeyId": body["accessKeyId"],
            "bucket": "customer-bucket", "prefix": "vend/study/runs/42/"})
    );
    for secret in ["secretAccessKey", "sessionToken"] {
        assert!(!audit.text.contains(body[secret].as_str().unwrap()), "{secret} in {}", audit.text);
    }

    // A reader cannot write; nothing is vended.
    let message = as_reader(json!({"access": "read-write"})).await.error(403, "access-forbidden");
    assert!(message.ends_with("changing its data needs read-write access"), "{message}");
    let written = app.post(&url, json!({"access": "read-write"})).await;
    assert_eq!(written.ok(201)["sessionPolicy"]["Statement"][2]["Action"][2], json!("s3:PutObject"));

    for (body, expected) in [
        (json!({}), "Invalid request: access: required"),
        (json!({"access": "write"}), "Invalid request: access: \"write\" is not read or read-write"),
        (
            json!({"access": "read", "path": "/a.txt"}),
            "Invalid request: path: \"/a.txt\" is not a folder; a folder's path ends with '/'",
        ),
        (json!({"access": "read", "durationSeconds": 60}), "Invalid request: durationSeconds: 60 is not 900 to 129600"),
    ] {
        assert_eq!(as_reader(body.clone()).await.error(400, "invalid-request"), expected, "{body}");
    }
    // The path appears three times in the policy, which must fit STS's 2,048 characters.
    let long = format!("/{}/", "a".repeat(700));
    let message = as_reader(json!({"access": "read", "path": long})).await.error(400, "credentials-path-too-long");
    assert_eq!(message, "Unable to generate credentials from the objectstore as the requested path is too long");

    // Four vends a minute for one token (one so far; refusals do not count): the fifth waits.
    for _ in 0..3 {
        as_reader(json!({"access": "read"})).await.ok(201);
    }
    let message = as_reader(json!({"access": "read"})).await.error(429, "too-many-requests");
    assert!(message.contains("4 temporary credentials in the last minute"), "{message}");
    app.post(&url, json!({"access": "read"})).await.ok(201);
}

/// Folders, deletes and versions on a versioned bucket of moto.
#[tokio::test]
async fn folders_deletes_and_versions_show_in_the_catalog_at_once() {
    use byos_domain::VersioningState;

    let moto = byos_test_support::Moto::start();
    let app = TestApp::with_aws(moto.url()).await;
    let (aws, region) = crate::support::moto_aws(&moto).await;
    let setup = aws.setup(&region);
    setup.create_bucket("customer-bucket").await.unwrap();
    setup.set_versioning("customer-bucket", VersioningState::Enabled).await.unwrap();
    let credential = app.user_credential("changes key", SECRET).await;
    let created =
        app.post("/api/v1/storage-configurations", crate::support::configuration("changes", &credential)).await;
    let configuration = crate::support::id_of(created.ok(201));
    crate::support::set_ready_with(&app, &configuration, VersioningState::Enabled).await;
    let id = project(&app, "study", &configuration, "study").await;
    let reader = app.member_with(json!([{"id": id, "access": "read"}])).await;

    let folder = app.post(&format!("/api/v1/projects/{id}/folders"), json!({"path": "/runs/"})).await;
    assert_eq!(
        folder.ok(201),
        &json!({"name": "runs", "path": "/runs/", "type": "folder", "folderMarker": true, "children": 0})
    );
    // Two versions of a file, written by someone else, then read into the catalog.
    let bucket = aws.own_bucket_access(&region);
    for body in [&b"first"[..], &b"second!"[..]] {
        bucket.put_object("customer-bucket", "changes/study/runs/a.txt", body.to_vec(), None).await.unwrap();
    }
    let stored = app.state.store().projects.get_project(Uuid::parse_str(&id).unwrap()).await.unwrap();
    app.state.services().sync().observe(&stored, "runs/a.txt").await.unwrap();
    let versions_url = format!("/api/v1/projects/{id}/data/versions?path=/runs/a.txt");
    let versions = app.call(axum::http::Method::GET, &versions_url, Some(&reader), None).await;
    let items = versions.ok(200)["items"].as_array().unwrap().clone();
    let summary: Vec<(u64, bool, bool)> = items
        .iter()
        .map(|v| {
            (v["size"].as_u64().unwrap(), v["isLatest"].as_bool().unwrap(), v["isDeleteMarker"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(summary, [(7, true, false), (5, false, false)]);

    // A reader may list versions, but not delete or create.
    let delete_url = format!("/api/v1/projects/{id}/data?path=/runs/a.txt");
    app.call(axum::http::Method::DELETE, &delete_url, Some(&reader), None).await.error(403, "access-forbidden");
    let refused = app
        .call(
            axum::http::Method::POST,
            &format!("/api/v1/projects/{id}/folders"),
            Some(&reader),
            Some(json!({"path": "/x/"})),
        )
        .await;
    refused.error(403, "access-forbidden");

    app.delete(&delete_url).await.ok(204);
    let listed = app.get(&format!("/api/v1/projects/{id}/data?path=/runs/")).await;
    assert_eq!(listed.ok(200)["items"], json!([]), "the delete shows at once");
    let versions = app.get(&versions_url).await;
    let first = &versions.ok(200)["items"][0];
    assert_eq!((&first["isDeleteMarker"], &first["isLatest"]), (&json!(true), &json!(true)));
    assert_eq!(versions.body["items"].as_array().map(Vec::len), Some(3), "the versions stay behind the marker");

    let message = app.delete(&delete_url).await.error(404, "file-not-found");
    assert_eq!(message, "'/runs/a.txt' is not a file of the project: nothing is there");

    // Undelete: the delete marker goes, the second version is current again.
    let undelete = format!("/api/v1/projects/{id}/data/undelete");
    let back = app.post(&undelete, json!({"path": "/runs/a.txt"})).await;
    assert_eq!((&back.ok(200)["path"], &back.body["size"]), (&json!("/runs/a.txt"), &json!(7)));
    let message = app.post(&undelete, json!({"path": "/runs/a.txt"})).await.error(409, "not-deleted");
    assert_eq!(message, "'/runs/a.txt' is not deleted: its latest version is the file, not a delete marker");
    // Restore the first version: a copy on top, so the history grows.
    let first = items[1]["versionId"].as_str().unwrap().to_owned();
    let restore = format!("/api/v1/projects/{id}/data/restore-version");
    let restored = app.post(&restore, json!({"path": "/runs/a.txt", "versionId": first})).await;
    assert_eq!(restored.ok(200)["size"], json!(5), "{}", restored.text);
    let browsed = app.get(&format!("/api/v1/projects/{id}/data?path=/runs/a.txt")).await;
    assert_eq!(browsed.ok(200)["items"][0]["size"], json!(5), "the catalog shows the restored version at once");
    let versions = app.get(&versions_url).await;
    assert_eq!(versions.ok(200)["items"].as_array().map(Vec::len), Some(3), "two versions and the restored copy");
    let message = app.post(&restore, json!({"path": "/runs/a.txt", "versionId": "nope"})).await;
    assert_eq!(
        message.error(404, "file-not-found"),
        "'/runs/a.txt' is not a file of the project: it has no version nope"
    );
    app.call(
        axum::http::Method::POST,
        &restore,
        Some(&reader),
        Some(json!({"path": "/runs/a.txt", "versionId": first})),
    )
    .await
    .error(403, "access-forbidden");
    let message = app.delete(&format!("/api/v1/projects/{id}/data?path=/runs")).await.error(404, "file-not-found");
    assert_eq!(message, "'/runs' is not a file of the project: it is a folder");
    let message = app.delete(&format!("/api/v1/projects/{id}/data?path=/")).await.error(400, "invalid-request");
    assert!(message.contains("is the project's root"), "{message}");
    let message = app.delete(&format!("/api/v1/projects/{id}/data?path=/nothing/")).await.error(404, "file-not-found");
    assert_eq!(message, "'/nothing/' is not a file of the project: there is no such folder");

    // A folder's delete is a job; on a versioned bucket the versions stay behind delete markers.
    let _workers = app.state.services().job_engine().spawn_workers();
    let job = app.delete(&format!("/api/v1/projects/{id}/data?path=/runs/")).await;
    let job = crate::support::wait_for_job(&app, job.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&job["status"], &job["progress"]["objectsDone"]), (&json!("succeeded"), &json!(2)), "{job}");
    let root = app.get(&format!("/api/v1/projects/{id}/data?path=/")).await;
    assert_eq!(root.ok(200)["items"], json!([]), "the catalog shows the folder gone at once");
    let versions = app.get(&versions_url).await;
    let items = versions.ok(200)["items"].as_array().cloned().unwrap_or_default();
    assert_eq!((items.len(), &items[0]["isDeleteMarker"]), (4, &json!(true)), "{}", versions.text);
    let message = app.post(&format!("/api/v1/projects/{id}/folders"), json!({"path": "/a.txt"})).await;
    assert!(message.error(400, "invalid-request").contains("a folder's path ends with '/'"));

    // An unversioned bucket keeps no versions, and says so.
    crate::support::set_ready_with(&app, &configuration, VersioningState::Unversioned).await;
    let message = app.get(&versions_url).await.error(409, "bucket-not-versioned");
    assert_eq!(message, "Bucket 'customer-bucket' keeps no versions of its objects (versioning: unversioned)");
}

/// An archived file restored: moto answers RestoreObject and shows the copy at once (AWS takes
/// hours and sends the restore events), so the entry goes from `archived` to `restored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_files_are_restored_on_request() {
    let on = crate::support::OnMoto::new("archive").await;
    let (app, bucket) = (&on.app, crate::support::BUCKET);
    on.setup.put_object_in_class(bucket, "archive/study/2019/a.bam", b"old reads".to_vec(), "GLACIER").await.unwrap();
    on.setup
        .put_object_in_class(bucket, "archive/study/2019/deep.bam", b"older".to_vec(), "DEEP_ARCHIVE")
        .await
        .unwrap();
    on.bucket.put_object(bucket, "archive/study/hot.txt", b"hot".to_vec(), None).await.unwrap();
    let id = on.imported_project("study").await;
    let file = app.get(&format!("/api/v1/projects/{id}/data?path=/2019/a.bam")).await;
    assert_eq!(file.ok(200)["items"][0]["archiveState"], "archived", "{}", file.text);

    let url = format!("/api/v1/projects/{id}/data/archive-restore");
    let reader = app.member_with(json!([{"id": id, "access": "read"}])).await;
    let body = json!({"path": "/2019/a.bam", "days": 7, "tier": "Bulk"});
    app.call(axum::http::Method::POST, &url, Some(&reader), Some(body.clone())).await.error(403, "access-forbidden");
    let restored = app.post(&url, body).await;
    assert_eq!(restored.ok(202)["path"], "/2019/a.bam", "{}", restored.text);
    assert_eq!(restored.body["archiveState"], "restored", "{}", restored.text);
    assert!(restored.body["restoreExpiresAt"].is_string(), "{}", restored.text);

    for (body, status, code, expected) in [
        (
            json!({"path": "/hot.txt", "days": 1}),
            409,
            "not-archived",
            "'/hot.txt' is not archived: its storage class STANDARD",
        ),
        (
            json!({"path": "/2019/deep.bam", "days": 1, "tier": "Expedited"}),
            400,
            "invalid-request",
            "not offered for DEEP_ARCHIVE",
        ),
        (json!({"path": "/2019/a.bam", "days": 0}), 400, "invalid-request", "days: 0 is not 1 to 365"),
        (json!({"path": "/2019/a.bam"}), 400, "invalid-request", "days: required"),
        (json!({"path": "/2019/a.bam", "days": 1, "tier": "Fast"}), 400, "invalid-request", "tier: \"Fast\" is not"),
        (json!({"path": "/2019/", "days": 1}), 404, "file-not-found", "'/2019/' is not a file"),
        (json!({"path": "/nope.bam", "days": 1}), 404, "file-not-found", "nothing is there"),
    ] {
        let message = app.post(&url, body.clone()).await.error(status, code);
        assert!(message.contains(expected), "{body}: {message}");
    }
    let deep = app.post(&url, json!({"path": "/2019/deep.bam", "days": 3})).await;
    assert_eq!(deep.ok(202)["archiveState"], "restored", "{}", deep.text);
}

/// Temporary credentials through an `aws-role` credential: the platform assumes the customer's
/// role with its external id and the session policy (the STS gate in front of moto refuses an
/// AssumeRole without the external id, as AWS does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_credential_vends_by_assuming_the_role_with_the_session_policy() {
    let moto = byos_test_support::Moto::start();
    let (aws, region) = crate::support::moto_aws(&moto).await;
    let setup = aws.setup(&region);
    setup.create_bucket("customer-bucket").await.unwrap();
    let account = setup.account().await.unwrap();
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"tenant-42"}}}}}}]}}"#
    );
    let role = setup.ensure_role("customer-access", &trust).await.unwrap();
    let gate = byos_test_support::StsGate::start(&moto, std::slice::from_ref(&role)).await;
    let app = TestApp::with_aws_and_sts(moto.url(), gate.url()).await;
    // Stored as the server would have it: a role of the platform's own account (moto has one) is
    // refused by the API, which is tested with the credentials.
    let records = byos_test_support::Records { store: app.state.store(), key: app.state.master_key() };
    let credential = records.role(&role, "tenant-42").await;
    let created = app
        .post("/api/v1/storage-configurations", crate::support::configuration("vend", &credential.id.to_string()))
        .await;
    let configuration = crate::support::id_of(created.ok(201));
    crate::support::set_ready_with(&app, &configuration, byos_domain::VersioningState::Unversioned).await;
    let id = project(&app, "study", &configuration, "study").await;

    let before = gate.assume_role_calls();
    let reply =
        app.post(&format!("/api/v1/projects/{id}/temporary-credentials"), json!({"access": "read-write"})).await;
    let body = reply.ok(201).clone();
    for field in ["accessKeyId", "secretAccessKey", "sessionToken", "expiresAt"] {
        assert!(body[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {body}");
    }
    assert_eq!(body["prefix"], "vend/study/", "{body}");
    assert_eq!(body["sessionPolicy"]["Statement"][2]["Resource"], json!("arn:aws:s3:::customer-bucket/vend/study/*"));
    assert!(gate.assume_role_calls() > before, "the vend assumed the role");
    // The vended session works (moto does not enforce its policy; the domain's evaluator proves it).
    let vended = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some((
            body["accessKeyId"].as_str().unwrap().to_owned(),
            body["secretAccessKey"].as_str().unwrap().to_owned(),
        )),
        ..Default::default()
    })
    .await;
    vended.own_bucket_access(&region).list_one("customer-bucket", "vend/study/").await.unwrap();
}
