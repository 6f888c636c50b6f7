//! Uploads through presigned URLs against s3s-fs, which checks every signature: a single PUT
//! and a multipart upload in three parts land byte-exact, resume after a "reload" from the parts
//! S3 lists, and show in browse at once.

use std::time::Duration;

use axum::http::Method;
use byos_test_support::{EXAMPLE_ACCESS_KEY_ID, S3sFs};
use serde_json::{Value, json};

use crate::support::{SECRET, TestApp, project, ready_configuration};

const MIB: u64 = 1024 * 1024;

async fn app_on(s3: &S3sFs, abandoned_after: Duration) -> (TestApp, String) {
    let uploads = byos_api::UploadSettings { multipart_threshold: 5 * MIB, part_size: 5 * MIB, abandoned_after };
    let data = byos_api::DataSettings { uploads, ..Default::default() };
    let app = TestApp::with_aws_and_data(s3.url(), data).await;
    let configuration = ready_configuration(&app, "uploads").await;
    let id = project(&app, "study", &configuration, "study").await;
    (app, id)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// PUTs `body` to a presigned URL with its signed headers; the ETag S3 answered.
async fn put(url: &str, headers: &Value, body: Vec<u8>) -> String {
    let mut request = client().put(url).body(body);
    for (name, value) in headers.as_object().into_iter().flatten() {
        request = request.header(name, value.as_str().unwrap());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let e_tag = response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(status.is_success(), "PUT answered {status}: {}", response.text().await.unwrap_or_default());
    e_tag
}

async fn download(app: &TestApp, id: &str, path: &str) -> Vec<u8> {
    let reply = app.post(&format!("/api/v1/projects/{id}/data/download-url"), json!({"path": path})).await;
    let url = reply.ok(200)["url"].as_str().unwrap().to_owned();
    client().get(url).send().await.unwrap().bytes().await.unwrap().to_vec()
}

fn bytes(n: u64, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn a_single_put_lands_byte_exact_and_shows_at_once() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = app_on(&s3, Duration::from_secs(3600)).await;
    let uploads = format!("/api/v1/projects/{id}/uploads");
    let content = bytes(1000, 7);
    let started = app.post(&uploads, json!({"path": "/in/small.txt", "size": 1000, "contentType": "text/plain"})).await;
    let started = started.ok(201).clone();
    assert_eq!((&started["kind"], &started["partCount"]), (&json!("single"), &json!(1)));
    assert_eq!(started["headers"]["content-type"], json!("text/plain"), "{started}");
    let upload = started["id"].as_str().unwrap();

    // Completing before the bytes are there is refused.
    let complete = format!("{uploads}/{upload}/complete");
    let early = app.post(&complete, json!({})).await;
    assert!(early.error(409, "upload-incomplete").contains("'/in/small.txt'"));

    put(started["url"].as_str().unwrap(), &started["headers"], content.clone()).await;
    let entry = app.post(&complete, json!({})).await;
    assert_eq!((&entry.ok(200)["path"], &entry.body["size"]), (&json!("/in/small.txt"), &json!(1000)));
    let listed = app.get(&format!("/api/v1/projects/{id}/data?path=/in/")).await;
    assert_eq!(listed.ok(200)["items"][0]["name"], json!("small.txt"), "browse shows it at once");
    assert!(download(&app, &id, "/in/small.txt").await == content);

    // Done: the upload is gone; the file is there and is not replaced unless asked.
    app.post(&complete, json!({})).await.error(404, "not-found");
    let again = app.post(&uploads, json!({"path": "/in/small.txt", "size": 3})).await;
    assert_eq!(again.error(409, "file-exists"), "'/in/small.txt' already exists");
    app.post(&uploads, json!({"path": "/in/small.txt", "size": 3, "overwrite": true})).await.ok(201);
}

#[tokio::test]
async fn a_multipart_upload_resumes_from_the_parts_s3_holds() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = app_on(&s3, Duration::from_secs(3600)).await;
    let uploads = format!("/api/v1/projects/{id}/uploads");
    let content = bytes(11 * MIB, 3);
    let started = app.post(&uploads, json!({"path": "/in/big.bin", "size": 11 * MIB})).await;
    let started = started.ok(201).clone();
    assert_eq!(
        (&started["kind"], &started["partSize"], &started["partCount"], started.get("url")),
        (&json!("multipart"), &json!(5 * MIB), &json!(3), None)
    );
    let upload = started["id"].as_str().unwrap().to_owned();
    let part = |n: u64| content[((n - 1) * 5 * MIB) as usize..(n * 5 * MIB).min(11 * MIB) as usize].to_vec();

    // Parts signed in a batch; the first goes up, then the page "reloads".
    let signed = app.post(&format!("{uploads}/{upload}/parts"), json!({"partNumbers": [1, 2]})).await;
    let signed = signed.ok(200)["parts"].as_array().unwrap().clone();
    assert_eq!(signed.len(), 2);
    let first = put(signed[0]["url"].as_str().unwrap(), &signed[0]["headers"], part(1)).await;
    let resumed = app.get(&format!("{uploads}/{upload}")).await;
    let held = resumed.ok(200)["parts"].clone();
    // s3s-fs lists parts without their ETags (S3 and moto list them: the moto test checks it).
    assert_eq!((&held[0]["partNumber"], &held[0]["size"]), (&json!(1), &json!(5 * MIB)), "the parts S3 holds: {held}");
    assert_eq!(held.as_array().map(Vec::len), Some(1));
    let listed = app.get(&uploads).await;
    assert_eq!(listed.ok(200)["items"][0]["id"], json!(upload), "the open uploads");

    // After the reload: the rest, signed again.
    let signed = app.post(&format!("{uploads}/{upload}/parts"), json!({"partNumbers": [2, 3]})).await;
    let signed = signed.ok(200)["parts"].as_array().unwrap().clone();
    let second = put(signed[0]["url"].as_str().unwrap(), &signed[0]["headers"], part(2)).await;
    let third = put(signed[1]["url"].as_str().unwrap(), &signed[1]["headers"], part(3)).await;
    let parts = json!([
        {"partNumber": 1, "eTag": first}, {"partNumber": 2, "eTag": second}, {"partNumber": 3, "eTag": third},
    ]);
    let entry = app.post(&format!("{uploads}/{upload}/complete"), json!({"parts": parts})).await;
    assert_eq!(entry.ok(200)["size"], json!(11 * MIB), "{}", entry.text);
    assert!(download(&app, &id, "/in/big.bin").await == content, "byte-exact");
    assert_eq!(app.get(&uploads).await.ok(200)["items"], json!([]));

    for (body, expected) in [
        (json!({"partNumbers": [4]}), "Invalid request: partNumbers: 4 is not 1 to 3"),
        (json!({"partNumbers": []}), "Invalid request: partNumbers: 1 to 1000 part numbers"),
    ] {
        let other = app.post(&uploads, json!({"path": "/in/other.bin", "size": 11 * MIB})).await;
        let other = other.ok(201)["id"].as_str().unwrap().to_owned();
        let message = app.post(&format!("{uploads}/{other}/parts"), body.clone()).await.error(400, "invalid-request");
        assert_eq!(message, expected, "{body}");
        app.delete(&format!("{uploads}/{other}")).await.ok(204);
        app.get(&format!("{uploads}/{other}")).await.error(404, "not-found");
    }
}

#[tokio::test]
async fn uploads_nobody_completes_are_aborted_when_they_expire() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let (app, id) = app_on(&s3, Duration::from_secs(1)).await;
    let uploads = format!("/api/v1/projects/{id}/uploads");
    app.post(&uploads, json!({"path": "/in/left.bin", "size": 6 * MIB})).await.ok(201);
    app.post(&uploads, json!({"path": "/in/left.txt", "size": 10})).await.ok(201);
    assert_eq!(app.get(&uploads).await.ok(200)["items"].as_array().map(Vec::len), Some(2));
    // Wait until both expired, by the clock the store compares with.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.state.services().uploads().abort_expired(10).await.unwrap(), 2);
    assert_eq!(app.get(&uploads).await.ok(200)["items"], json!([]));
    let reader = app.member_with(json!([{"id": id, "access": "read"}])).await;
    let refused = app.call(Method::POST, &uploads, Some(&reader), Some(json!({"path": "/x", "size": 1}))).await;
    refused.error(403, "access-forbidden");
}

/// moto: an upload keeps the configuration's encryption (the presigned PUT carries it, signed;
/// a multipart upload is created with it) and shows in browse at once. moto 5.2 answers
/// ListParts and CompleteMultipartUpload with `...Response` roots where S3 has `...Result`,
/// which the SDK refuses: the server talks to moto through `MotoShim`, which renames them.
#[tokio::test]
async fn an_upload_on_moto_keeps_the_configurations_encryption() {
    let moto = byos_test_support::Moto::start();
    let shim = byos_test_support::MotoShim::start(&moto).await;
    let app = TestApp::with_aws(shim.url()).await;
    let (aws, region) = crate::support::moto_aws(&moto).await;
    aws.setup(&region).create_bucket("customer-bucket").await.unwrap();
    let credential = app.user_credential("sse key", SECRET).await;
    let mut body = crate::support::configuration("sse", &credential);
    body["serverSideEncryption"] = json!({"algorithm": "AES256"});
    let configuration = crate::support::id_of(app.post("/api/v1/storage-configurations", body).await.ok(201));
    crate::support::set_status(&app, &configuration, byos_domain::ConfigurationStatus::Ready).await;
    let id = project(&app, "study", &configuration, "study").await;

    let uploads = format!("/api/v1/projects/{id}/uploads");
    let content = bytes(6 * MIB, 11);
    let started = app.post(&uploads, json!({"path": "/big/reads.bam", "size": 6 * MIB})).await;
    let started = started.ok(201).clone();
    assert_eq!(started["headers"]["x-amz-server-side-encryption"], json!("AES256"), "{started}");
    put(started["url"].as_str().unwrap(), &started["headers"], content.clone()).await;
    let upload = started["id"].as_str().unwrap();
    let entry = app.post(&format!("{uploads}/{upload}/complete"), json!({})).await;
    assert_eq!(entry.ok(200)["size"], json!(6 * MIB), "{}", entry.text);
    let listed = app.get(&format!("/api/v1/projects/{id}/data?path=/big/")).await;
    assert_eq!(listed.ok(200)["items"][0]["size"], json!(6 * MIB), "browse shows it at once");
    let s3 = aws.own_bucket_access(&region);
    let head = s3.head("customer-bucket", "sse/study/big/reads.bam", None).await.unwrap().unwrap();
    assert_eq!((head.size, head.server_side_encryption.as_deref()), (6 * MIB, Some("AES256")));
    assert!(download(&app, &id, "/big/reads.bam").await == content, "byte-exact");

    // In parts of the client's size: listed while open, completed, encrypted, byte-exact.
    let content = bytes(11 * MIB, 12);
    let started = app.post(&uploads, json!({"path": "/big/parts.bam", "size": 11 * MIB, "partSize": 5 * MIB})).await;
    let started = started.ok(201).clone();
    assert_eq!((&started["kind"], &started["partCount"]), (&json!("multipart"), &json!(3)), "{started}");
    let upload = started["id"].as_str().unwrap();
    let signed = app.post(&format!("{uploads}/{upload}/parts"), json!({"partNumbers": [1, 2, 3]})).await;
    let mut parts = Vec::new();
    for (i, part) in signed.ok(200)["parts"].as_array().unwrap().iter().enumerate() {
        let range = i * 5 * MIB as usize..((i + 1) * 5 * MIB as usize).min(content.len());
        let e_tag = put(part["url"].as_str().unwrap(), &part["headers"], content[range].to_vec()).await;
        parts.push(json!({"partNumber": i + 1, "eTag": e_tag}));
    }
    let open = app.get(&format!("{uploads}/{upload}")).await;
    assert_eq!(open.ok(200)["parts"].as_array().map(Vec::len), Some(3), "ListParts through the shim");
    let entry = app.post(&format!("{uploads}/{upload}/complete"), json!({"parts": parts})).await;
    assert_eq!(entry.ok(200)["size"], json!(11 * MIB), "{}", entry.text);
    let head = s3.head("customer-bucket", "sse/study/big/parts.bam", None).await.unwrap().unwrap();
    assert_eq!(head.server_side_encryption.as_deref(), Some("AES256"), "the multipart upload was created encrypted");
    assert!(download(&app, &id, "/big/parts.bam").await == content, "byte-exact");
}

/// Moves above the copy threshold go in parts (UploadPartCopy of byte ranges, two at a time),
/// byte-exact, with the source deleted after the copy is verified; a folder's move copies such a
/// file beside small ones. On s3s-fs: moto's answer to CompleteMultipartUpload is not one the
/// SDK reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_move_in_parts_byte_exact() {
    let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, SECRET);
    let copies = byos_api::CopySettings { threshold: 5 * MIB, part_size: 5 * MIB, parts_at_once: 2 };
    let jobs = byos_api::JobSettings { copies, ..Default::default() };
    let app = TestApp::with_aws_jobs_and_regions(s3.url(), jobs, byos_domain::RegionTable::builtin()).await;
    let configuration = ready_configuration(&app, "moves").await;
    let (big, small) = (bytes(11 * MIB, 5), bytes(1000, 9));
    s3.put_file("customer-bucket", "moves/study/big.bin", &big);
    s3.put_file("customer-bucket", "moves/study/run/big.bin", &big);
    // Through S3, so that it has an ETag (a file written into the folder has none).
    let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(s3.url().to_owned()),
        static_credentials: Some((EXAMPLE_ACCESS_KEY_ID.to_owned(), SECRET.to_owned())),
        ..Default::default()
    })
    .await;
    let access = aws.own_bucket_access(&byos_test_support::region("eu-central-1"));
    access.put_object("customer-bucket", "moves/study/run/small.txt", small.clone(), None).await.unwrap();
    let id = project(&app, "study", &configuration, "study").await;
    let reconcile = format!("/api/v1/projects/{id}/reconcile");
    for _ in 0..600 {
        if app.get(&reconcile).await.ok(200)["status"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let moved =
        app.post(&format!("/api/v1/projects/{id}/data/move"), json!({"from": "/big.bin", "to": "/archive/"})).await;
    assert_eq!(
        (&moved.ok(200)["path"], &moved.body["size"]),
        (&json!("/archive/big.bin"), &json!(11 * MIB)),
        "{}",
        moved.text
    );
    assert!(download(&app, &id, "/archive/big.bin").await == big, "the copy in parts is byte-exact");
    let gone = app.get(&format!("/api/v1/projects/{id}/data?path=/big.bin")).await;
    gone.error(404, "not-found");

    let _workers = app.state.services().job_engine().spawn_workers();
    let job = app.post(&format!("/api/v1/projects/{id}/data/move"), json!({"from": "/run/", "to": "/done/"})).await;
    let job = crate::support::wait_for_job(&app, job.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&job["status"], &job["progress"]["objectsDone"]), (&json!("succeeded"), &json!(2)), "{job}");
    assert!(download(&app, &id, "/done/big.bin").await == big);
    assert_eq!(download(&app, &id, "/done/small.txt").await, small);
}
