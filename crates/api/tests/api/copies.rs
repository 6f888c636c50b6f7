//! Copy and move jobs between projects on moto: 500 objects from one bucket into another that
//! encrypts with SSE-KMS, one of them above a lowered multipart threshold (the path of objects
//! above 5 GiB), with content type, metadata and tags kept; the report in JSON lines and CSV; a
//! move whose sources go only once their copies are verified; onConflict, include / exclude and
//! dry runs; who may start which copy; a copy into another AWS account through the region's
//! copy role, whose preflight names each grant the bucket's owner has yet to make.

use serde_json::{Value, json};

use crate::support::{BUCKET, OnMoto, id_of, project, set_ready_in, set_ready_with, wait_for_job};

/// The destination bucket, which encrypts with a KMS key.
const DESTINATION: &str = "destination-bucket";
/// A bucket that keeps versions.
const VERSIONED: &str = "versioned-bucket";
const MIB: usize = 1024 * 1024;

/// Puts an object straight to moto (which checks no signature), with the headers given.
async fn put(moto: &str, bucket: &str, key: &str, body: Vec<u8>, headers: &[(&str, &str)]) {
    let mut request = reqwest::Client::new().put(format!("{moto}/{bucket}/{key}")).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = request.send().await.unwrap();
    assert!(reply.status().is_success(), "PUT {key}: {}", reply.status());
}

/// A job's report: JSON lines, or CSV.
async fn report(on: &OnMoto, job: &str, csv: bool) -> String {
    let mut request = axum::http::Request::builder()
        .uri(format!("/api/v1/jobs/{job}/report"))
        .header("authorization", format!("Bearer {}", on.app.admin));
    if csv {
        request = request.header("accept", "text/csv");
    }
    let reply = on.app.send(request.body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.text
}

fn lines(report: &str) -> Vec<Value> {
    report.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))).collect()
}

async fn keys(on: &OnMoto, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut marker = None;
    loop {
        let page = on.bucket.list_objects_page(bucket, prefix, marker.as_ref(), 1000).await.unwrap();
        keys.extend(page.entries.into_iter().map(|e| e.key));
        marker = page.next;
        if marker.is_none() {
            return keys;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_buckets_are_verified_and_reported() {
    let jobs = byos_api::JobSettings {
        copies: byos_api::CopySettings { threshold: 5 * MIB as u64, part_size: 5 * MIB as u64, parts_at_once: 2 },
        ..Default::default()
    };
    let on = OnMoto::with_jobs("copies", jobs).await;
    let (app, moto) = (&on.app, on.moto.url().to_owned());

    // The source: 499 small objects in folders, one of 7 MiB (two parts) with a content type,
    // metadata and tags, and a file beside the folder.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..498_usize {
        let (bucket, permits) = (on.bucket.clone(), permits.clone());
        puts.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let key = format!("copies/src/run/lane-{}/read-{i:03}.txt", i % 4);
            bucket.put_object(BUCKET, &key, format!("read {i}").into_bytes(), None).await.unwrap();
        });
    }
    while puts.join_next().await.is_some() {}
    let big: Vec<u8> = (0..7 * MIB).map(|i| (i % 251) as u8).collect();
    // With a full-object checksum, as S3 gives every new object.
    let crc32 = byos_test_support::crc32_checksum(&big);
    let headers = [
        ("content-type", "application/x-bam"),
        ("content-disposition", "attachment; filename=\"big.bam\""),
        ("content-language", "en"),
        ("cache-control", "no-cache"),
        ("x-amz-meta-sample", "na12878"),
        ("x-amz-tagging", "run=42"),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("x-amz-checksum-crc32", crc32.as_str()),
    ];
    put(&moto, BUCKET, "copies/src/run/big.bam", big.clone(), &headers).await;
    on.bucket.put_object(BUCKET, "copies/src/samples.csv", b"id\n1\n".to_vec(), None).await.unwrap();
    let source = on.imported_project("src").await;

    // The destination: another bucket, encrypting with SSE-KMS, on the same credential.
    on.setup.create_bucket(DESTINATION).await.unwrap();
    let key = on.setup.create_kms_key("copies").await.unwrap();
    let configuration = app.get(&format!("/api/v1/storage-configurations/{}", on.configuration)).await;
    let credential = configuration.ok(200)["credentialId"].as_str().unwrap().to_owned();
    let body = json!({"name": "encrypted", "region": "eu-central-1", "bucket": DESTINATION, "keyPrefix": "lab/",
        "credentialId": credential, "serverSideEncryption": {"algorithm": "aws:kms", "keyName": key}});
    let encrypted = id_of(app.post("/api/v1/storage-configurations", body).await.ok(201));
    set_ready_with(app, &encrypted, byos_domain::VersioningState::Unversioned).await;
    let destination = project(app, "lab", &encrypted, "dst").await;
    let _workers = app.state.services().job_engine().spawn_workers();

    // A copy of the folder and the file into /in/.
    let started = app
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": source, "paths": ["/run/", "/samples.csv"]},
                   "destination": {"projectId": destination, "path": "/in/"}}),
        )
        .await;
    let started = started.ok(202).clone();
    assert_eq!(
        (&started["type"], &started["projectId"], &started["path"], &started["onConflict"]),
        (&json!("copy"), &json!(destination), &json!("/in/"), &json!("fail"))
    );
    assert_eq!(started["source"], json!({"projectId": source, "paths": ["/run/", "/samples.csv"]}));
    let job = wait_for_job(app, started["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let bytes = 7 * MIB as u64 + 5 + (0..498_u64).map(|i| format!("read {i}").len() as u64).sum::<u64>();
    assert_eq!(
        job["progress"],
        json!({"objectsDone": 500, "objectsTotal": 500, "objectsSkipped": 0, "objectsFailed": 0,
               "bytesDone": bytes, "bytesTotal": bytes}),
        "{job}"
    );
    let checks: Vec<(&str, &str)> = job["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("copy-identity", "passed"),
            ("source:bucket-in-region", "passed"),
            ("destination:bucket-in-region", "passed"),
            ("source:objects-listable", "passed"),
            ("source:objects-readable", "passed"),
            ("source:kms-key-usable", "skipped"),
            ("destination:probe-writable", "passed"),
            ("destination:probe-deletable", "passed"),
        ]
    );

    // Every object is in the destination bucket, encrypted with its key, byte for byte.
    let mut copied = keys(&on, DESTINATION, "lab/dst/").await;
    copied.sort();
    let mut expected: Vec<String> =
        (0..498).map(|i| format!("lab/dst/in/run/lane-{}/read-{i:03}.txt", i % 4)).collect();
    expected.extend(["lab/dst/in/run/big.bam".to_owned(), "lab/dst/in/samples.csv".to_owned()]);
    expected.sort();
    assert_eq!(copied, expected);
    let head = on.bucket.head(DESTINATION, "lab/dst/in/run/lane-1/read-005.txt", None).await.unwrap().unwrap();
    assert_eq!(head.server_side_encryption.as_deref(), Some("aws:kms"));
    let reply = reqwest::get(format!("{moto}/{DESTINATION}/lab/dst/in/run/big.bam")).await.unwrap();
    let header = |name: &str| reply.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(
        ["content-type", "content-disposition", "content-language", "cache-control", "x-amz-meta-sample"].map(header),
        ["application/x-bam", "attachment; filename=\"big.bam\"", "en", "no-cache", "na12878"]
            .map(|v| Some(v.to_owned())),
        "content type, the other content headers and metadata kept in a copy in parts"
    );
    assert!(reply.bytes().await.unwrap() == big, "byte-exact");
    // The copy in parts carries the source's full-object checksum, computed by S3 over its parts.
    let checksum = |bucket: &'static str, key: &'static str| {
        let access = on.bucket.clone();
        async move { access.full_object_checksum(bucket, key, None).await.unwrap().map(|c| (c.algorithm, c.value)) }
    };
    let expected = Some(("CRC32".to_owned(), crc32.clone()));
    assert_eq!(checksum(BUCKET, "copies/src/run/big.bam").await, expected);
    assert_eq!(checksum(DESTINATION, "lab/dst/in/run/big.bam").await, expected);
    let tags = reqwest::get(format!("{moto}/{DESTINATION}/lab/dst/in/run/big.bam?tagging")).await.unwrap();
    let tags = tags.text().await.unwrap();
    assert!(tags.contains("<Key>run</Key>") && tags.contains("<Value>42</Value>"), "{tags}");

    // The destination's catalog shows the copies.
    let listing = app.get(&format!("/api/v1/projects/{destination}/data?path=/in/run/")).await;
    let names: Vec<&str> =
        listing.ok(200)["items"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["lane-0", "lane-1", "lane-2", "lane-3", "big.bam"]);
    // It took each copy from the copy's own answer (or its HEAD), and a listing agrees with all
    // 500: sizes, ETags, times and storage classes.
    let sync = app.state.services().sync();
    let stored = |id: &str| app.state.store().projects.get_project(uuid::Uuid::parse_str(id).unwrap());
    let drift = sync.refresh_folder(&stored(&destination).await.unwrap(), "in/").await.unwrap();
    assert_eq!(drift, byos_catalog::Drift::default());

    // The report: one line per object, in the plan's order; CSV with a header.
    let id = job["id"].as_str().unwrap();
    let report_lines = lines(&report(&on, id, false).await);
    assert_eq!(report_lines.len(), 500);
    assert!(report_lines.iter().all(|l| l["result"] == "copied"), "{:?}", report_lines.first());
    let last = report_lines.last().unwrap();
    assert_eq!(
        (&last["source"], &last["destination"], &last["bytes"]),
        (&json!("/samples.csv"), &json!("/in/samples.csv"), &json!(5))
    );
    let csv = report(&on, id, true).await;
    assert!(
        csv.starts_with("source,versionId,destination,bytes,result,error\r\n/run/big.bam,,/in/run/big.bam,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 501);

    // Again, with a file changed in the destination: skip leaves it, fail counts it, overwrite
    // replaces it. The other 499 are the job's own earlier copies, and count as copied.
    on.bucket.put_object(DESTINATION, "lab/dst/in/samples.csv", b"someone else's".to_vec(), None).await.unwrap();
    let again = |on_conflict: &str| {
        json!({"type": "copy", "source": {"projectId": source, "paths": ["/samples.csv", "/run/lane-0/"]},
               "destination": {"projectId": destination, "path": "/in/"}, "onConflict": on_conflict})
    };
    let skipped = app.post("/api/v1/jobs", again("skip")).await;
    let skipped = wait_for_job(app, skipped.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!(
        (&skipped["status"], &skipped["progress"]["objectsSkipped"], &skipped["progress"]["objectsDone"]),
        (&json!("succeeded"), &json!(1), &json!(125)),
        "{skipped}"
    );
    let failed = app.post("/api/v1/jobs", again("fail")).await;
    let failed = wait_for_job(app, failed.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&failed["status"], &failed["error"]["code"]), (&json!("failed"), &json!("objects-not-copied")));
    assert!(failed["error"]["message"].as_str().unwrap().contains("'/samples.csv'"), "{failed}");
    let failed_lines = lines(&report(&on, failed["id"].as_str().unwrap(), false).await);
    assert_eq!(failed_lines[0]["result"], "failed");
    assert!(failed_lines[0]["error"].as_str().unwrap().contains("does not overwrite"), "{}", failed_lines[0]);
    let overwritten = app.post("/api/v1/jobs", again("overwrite")).await;
    let overwritten = wait_for_job(app, overwritten.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!(overwritten["status"], "succeeded", "{overwritten}");
    let head = on.bucket.head(DESTINATION, "lab/dst/in/samples.csv", None).await.unwrap().unwrap();
    assert_eq!(head.size, 5, "overwritten");

    // Another object of the same size, where SSE-KMS leaves no ETag to compare: not the job's
    // copy, so a move fails it and keeps its source.
    let kms = byos_domain::ServerSideEncryption::Kms(byos_domain::KmsKeyArn::parse(&key).unwrap());
    on.bucket.put_object(DESTINATION, "lab/dst/in/samples.csv", b"other".to_vec(), Some(&kms)).await.unwrap();
    let other = on.bucket.head(DESTINATION, "lab/dst/in/samples.csv", None).await.unwrap();
    let kept = app
        .post(
            "/api/v1/jobs",
            json!({"type": "move", "source": {"projectId": source, "paths": ["/samples.csv"]},
                   "destination": {"projectId": destination, "path": "/in/"}}),
        )
        .await;
    let kept = wait_for_job(app, kept.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&kept["status"], &kept["error"]["code"]), (&json!("failed"), &json!("objects-not-copied")), "{kept}");
    assert!(on.bucket.head(BUCKET, "copies/src/samples.csv", None).await.unwrap().is_some(), "the source stays");
    let there = on.bucket.head(DESTINATION, "lab/dst/in/samples.csv", None).await.unwrap();
    assert_eq!(there, other, "the other object stays");

    // A dry run with globs plans and reports, and writes nothing.
    let dry = app
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": source, "paths": ["/run/"]},
                   "destination": {"projectId": destination, "path": "/dry/"}, "dryRun": true,
                   "include": ["run/*/read-00?.txt"], "exclude": ["run/lane-3/*"]}),
        )
        .await;
    let dry = wait_for_job(app, dry.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!(
        (&dry["status"], &dry["dryRun"], &dry["progress"]["objectsDone"]),
        (&json!("succeeded"), &json!(true), &json!(8))
    );
    let planned = lines(&report(&on, dry["id"].as_str().unwrap(), false).await);
    let planned: Vec<(&str, &str)> =
        planned.iter().map(|l| (l["destination"].as_str().unwrap(), l["result"].as_str().unwrap())).collect();
    assert_eq!(planned.len(), 8, "read-000 to read-009 outside lane-3: {planned:?}");
    assert!(planned.iter().all(|(to, result)| to.starts_with("/dry/run/lane-") && *result == "planned"), "{planned:?}");
    assert_eq!(keys(&on, DESTINATION, "lab/dst/dry/").await, Vec::<String>::new(), "a dry run writes nothing");

    // A move: the sources go once their copies are verified; both catalogs follow.
    let moved = app
        .post(
            "/api/v1/jobs",
            json!({"type": "move", "source": {"projectId": source, "paths": ["/run/lane-2/"]},
                   "destination": {"projectId": destination, "path": "/moved/"}}),
        )
        .await;
    let moved = wait_for_job(app, moved.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&moved["status"], &moved["progress"]["objectsDone"]), (&json!("succeeded"), &json!(124)), "{moved}");
    assert_eq!(keys(&on, BUCKET, "copies/src/run/lane-2/").await, Vec::<String>::new(), "sources gone");
    assert_eq!(keys(&on, DESTINATION, "lab/dst/moved/lane-2/").await.len(), 124);
    assert!(lines(&report(&on, moved["id"].as_str().unwrap(), false).await).iter().all(|l| l["result"] == "moved"));
    let gone = app.get(&format!("/api/v1/projects/{source}/data?path=/run/lane-2/")).await;
    gone.error(404, "not-found");
    let arrived = app.get(&format!("/api/v1/projects/{destination}/data?path=/moved/lane-2/&limit=1000")).await;
    assert_eq!(arrived.ok(200)["items"].as_array().map(Vec::len), Some(124));
    for (id, folder) in [(&destination, "moved/"), (&source, "run/")] {
        let drift = sync.refresh_folder(&stored(id).await.unwrap(), folder).await.unwrap();
        assert_eq!(drift, byos_catalog::Drift::default(), "{folder}");
    }
    let metrics = app.get("/metrics").await.text;
    for ended in [
        r#"{type="copy",status="succeeded"} 4"#,
        r#"{type="copy",status="failed"} 1"#,
        r#"{type="move",status="succeeded"} 1"#,
    ] {
        assert!(metrics.contains(&format!("byos_jobs_ended_total{ended}")), "{ended}: {metrics}");
    }

    // Into a bucket that keeps versions, where a copy's answer names only the version it made:
    // the catalog shows each copy (a folder's and a file's) as a listing of its versions does.
    on.setup.create_bucket(VERSIONED).await.unwrap();
    on.setup.set_versioning(VERSIONED, byos_domain::VersioningState::Enabled).await.unwrap();
    on.bucket.put_object(VERSIONED, "kept/lane-3/read-003.txt", b"older".to_vec(), None).await.unwrap();
    let body = json!({"name": "versioned", "region": "eu-central-1", "bucket": VERSIONED,
        "credentialId": credential});
    let versioned = id_of(app.post("/api/v1/storage-configurations", body).await.ok(201));
    set_ready_with(app, &versioned, byos_domain::VersioningState::Enabled).await;
    let kept = project(app, "kept", &versioned, "kept").await;
    let copied = app
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": source, "paths": ["/run/lane-3/", "/samples.csv"]},
                   "destination": {"projectId": kept, "path": "/"}, "onConflict": "overwrite"}),
        )
        .await;
    let copied = wait_for_job(app, copied.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&copied["status"], &copied["progress"]["objectsDone"]), (&json!("succeeded"), &json!(125)));
    for (path, key) in [("/lane-3/read-003.txt", "kept/lane-3/read-003.txt"), ("/samples.csv", "kept/samples.csv")] {
        let head = on.bucket.head(VERSIONED, key, None).await.unwrap().unwrap();
        let listing = app.get(&format!("/api/v1/projects/{kept}/data?path={path}")).await;
        let entry = &listing.ok(200)["items"][0];
        assert_eq!((&entry["versionId"], &entry["size"]), (&json!(head.version_id), &json!(head.size)), "{entry}");
    }
    let drift = sync.refresh_folder(&stored(&kept).await.unwrap(), "").await.unwrap();
    assert_eq!(drift, byos_catalog::Drift::default());
}

/// The objects of a slow move's folder, each holding its name: the job moves one a second, so
/// the last one's turn comes seconds after its plan holds them all, time for a test to change it
/// first.
const SLOW: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

/// A move of `{name}/src/run/` (the objects of [`SLOW`]) into the root of project `dst`, at one
/// object a second, on a bucket with `versioning`; answers once the job's plan holds them all,
/// with moto, the job engine's workers and the job's id.
async fn slow_move(
    name: &str,
    versioning: byos_domain::VersioningState,
    on_conflict: &str,
) -> (OnMoto, impl Sized, String) {
    let jobs = byos_api::JobSettings { objects_per_second: 1, ..Default::default() };
    let on = OnMoto::with_jobs(name, jobs).await;
    let app = &on.app;
    if versioning != byos_domain::VersioningState::Unversioned {
        on.setup.set_versioning(BUCKET, versioning).await.unwrap();
    }
    set_ready_with(app, &on.configuration, versioning).await;
    for object in SLOW {
        let key = format!("{name}/src/run/{object}.txt");
        on.bucket.put_object(BUCKET, &key, object.as_bytes().to_vec(), None).await.unwrap();
    }
    let source = on.imported_project("src").await;
    let destination = project(app, "dst", &on.configuration, "dst").await;
    let workers = app.state.services().job_engine().spawn_workers();
    let started = app
        .post(
            "/api/v1/jobs",
            json!({"type": "move", "source": {"projectId": source, "paths": ["/run/"]},
                   "destination": {"projectId": destination, "path": "/"}, "onConflict": on_conflict}),
        )
        .await;
    let id = started.ok(202)["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let job = app.get(&format!("/api/v1/jobs/{id}")).await;
        let job = job.ok(200);
        if job["progress"]["objectsTotal"] == SLOW.len() {
            assert!(job["progress"]["objectsDone"].as_u64() < Some(SLOW.len() as u64 - 1), "{job}");
            return (on, workers, id);
        }
        assert!(std::time::Instant::now() < deadline, "not planned: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A move taken up again after a stop that lost some objects' ends: their sources are gone and
/// their copies made. Here the last object of the plan is moved by hand while the job moves the
/// others: the job counts it moved, where it used to fail it on the missing source (an
/// `overwrite` move asks CopyObject at once, without a HEAD of its destination).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_counts_a_copy_made_before_its_source_went() {
    let (on, _workers, id) = slow_move("gone", byos_domain::VersioningState::Unversioned, "overwrite").await;
    on.bucket.put_object(BUCKET, "gone/dst/run/h.txt", b"h".to_vec(), None).await.unwrap();
    on.bucket.delete_object(BUCKET, "gone/src/run/h.txt", None).await.unwrap();
    let moved = wait_for_job(&on.app, &id).await;
    assert_eq!(
        (&moved["status"], &moved["progress"]["objectsDone"], &moved["progress"]["objectsFailed"]),
        (&json!("succeeded"), &json!(SLOW.len()), &json!(0)),
        "{moved}"
    );
    assert_eq!(keys(&on, BUCKET, "gone/src/").await, Vec::<String>::new());
    assert_eq!(keys(&on, BUCKET, "gone/dst/run/").await.len(), SLOW.len());
}

/// A move from a bucket that keeps versions copies the versions its plan listed: a version
/// written afterwards stays the source's current one, rather than going behind the move's delete
/// marker uncopied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_leaves_a_version_written_after_its_plan() {
    let (on, _workers, id) = slow_move("versions", byos_domain::VersioningState::Enabled, "fail").await;
    on.bucket.put_object(BUCKET, "versions/src/run/h.txt", b"h, again".to_vec(), None).await.unwrap();
    let moved = wait_for_job(&on.app, &id).await;
    assert_eq!(
        (&moved["status"], &moved["progress"]["objectsDone"], &moved["progress"]["objectsFailed"]),
        (&json!("failed"), &json!(SLOW.len() - 1), &json!(1)),
        "{moved}"
    );
    let current = on.bucket.head(BUCKET, "versions/src/run/h.txt", None).await.unwrap();
    assert_eq!(current.map(|h| h.size), Some(8), "the newer version stays current");
    let copied = on.bucket.head(BUCKET, "versions/dst/run/h.txt", None).await.unwrap();
    assert_eq!(copied.map(|h| h.size), Some(1), "the listed version was copied");
    let report = lines(&report(&on, &id, false).await);
    let h = report.iter().find(|l| l["source"] == "/run/h.txt").unwrap();
    assert_eq!(h["result"], "failed");
    assert!(h["error"].as_str().unwrap().contains("a newer version"), "{h}");
}

/// A move whose plan takes two listing pages: copies start while the second page is listed (and
/// the sources they delete are behind where the listing goes on), the rest after the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_of_more_than_a_listing_page_moves_each_object_once() {
    const OBJECTS: usize = 1_100;
    let on = OnMoto::new("pages").await;
    let app = &on.app;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..OBJECTS {
        let (bucket, permits) = (on.bucket.clone(), permits.clone());
        puts.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            bucket
                .put_object(BUCKET, &format!("pages/src/run/r{i:04}"), i.to_string().into_bytes(), None)
                .await
                .unwrap();
        });
    }
    while puts.join_next().await.is_some() {}
    let source = on.imported_project("src").await;
    let destination = project(app, "dst", &on.configuration, "dst").await;
    let _workers = app.state.services().job_engine().spawn_workers();

    let moved = app
        .post(
            "/api/v1/jobs",
            json!({"type": "move", "source": {"projectId": source, "paths": ["/run/"]},
                   "destination": {"projectId": destination, "path": "/"}}),
        )
        .await;
    let moved = wait_for_job(app, moved.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!(
        (&moved["status"], &moved["progress"]["objectsDone"], &moved["progress"]["objectsTotal"]),
        (&json!("succeeded"), &json!(OBJECTS), &json!(OBJECTS)),
        "{moved}"
    );
    let report = lines(&report(&on, moved["id"].as_str().unwrap(), false).await);
    let sources: std::collections::BTreeSet<&str> = report.iter().filter_map(|l| l["source"].as_str()).collect();
    assert_eq!((report.len(), sources.len()), (OBJECTS, OBJECTS), "one line per object");
    assert!(report.iter().all(|l| l["result"] == "moved"));
    assert_eq!(keys(&on, BUCKET, "pages/src/run/").await, Vec::<String>::new(), "sources gone");
    let arrived = keys(&on, BUCKET, "pages/dst/run/").await;
    let expected: Vec<String> = (0..OBJECTS).map(|i| format!("pages/dst/run/r{i:04}")).collect();
    assert_eq!(arrived, expected);
    // Both catalogs took every copy and every source gone from the answers.
    let sync = app.state.services().sync();
    for (id, folder) in [(&source, "run/"), (&destination, "run/")] {
        let stored = app.state.store().projects.get_project(uuid::Uuid::parse_str(id).unwrap()).await.unwrap();
        assert_eq!(sync.refresh_folder(&stored, folder).await.unwrap(), byos_catalog::Drift::default(), "{folder}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_needs_access_to_both_projects_and_sane_paths() {
    let on = OnMoto::new("access").await;
    let app = &on.app;
    on.bucket.put_object(BUCKET, "access/alpha/run/x.txt", b"x".to_vec(), None).await.unwrap();
    let a = on.imported_project("alpha").await;
    let b = project(app, "beta", &on.configuration, "beta").await;
    let copy = |kind: &str, paths: Value, to: &str| json!({"type": kind, "source": {"projectId": a, "paths": paths}, "destination": {"projectId": b, "path": to}});
    let body = copy("copy", json!(["/run/"]), "/in/");

    // Read on the source and read-write on the destination; a move needs read-write on both.
    let reader_of_a = app.member_with(json!([{"id": a, "access": "read"}, {"id": b, "access": "read-write"}])).await;
    let reply = app.call(axum::http::Method::POST, "/api/v1/jobs", Some(&reader_of_a), Some(body.clone())).await;
    assert_eq!(reply.ok(202)["status"], "queued");
    let moving = app
        .call(
            axum::http::Method::POST,
            "/api/v1/jobs",
            Some(&reader_of_a),
            Some(copy("move", json!(["/run/"]), "/in/")),
        )
        .await;
    assert!(moving.error(403, "access-forbidden").contains("read-write"));
    let reader_of_b = app.member_with(json!([{"id": a, "access": "read-write"}, {"id": b, "access": "read"}])).await;
    let reply = app.call(axum::http::Method::POST, "/api/v1/jobs", Some(&reader_of_b), Some(body.clone())).await;
    reply.error(403, "access-forbidden");
    // A member who does not see the source learns nothing of it.
    let outsider = app.member_with(json!([{"id": b, "access": "read-write"}])).await;
    let reply = app.call(axum::http::Method::POST, "/api/v1/jobs", Some(&outsider), Some(body.clone())).await;
    assert_eq!(reply.error(404, "not-found"), format!("Project '{a}' does not exist"));

    // Paths: in the source's catalog, a folder destination, no copy into itself.
    let bad = [
        (copy("copy", json!(["/nope/"]), "/in/"), "file-not-found"),
        (copy("copy", json!(["/run/x.txt/"]), "/in/"), "file-not-found"),
        (copy("copy", json!([]), "/in/"), "invalid-request"),
        (copy("copy", json!(["run/"]), "/in/"), "invalid-request"),
        (copy("copy", json!(["/run/"]), "/in"), "invalid-request"),
        (copy("clone", json!(["/run/"]), "/in/"), "invalid-request"),
        (
            json!({"type": "copy", "source": {"projectId": a, "paths": ["/run/"]}, "destination": {"projectId": a, "path": "/run/deeper/"}}),
            "invalid-request",
        ),
        (
            json!({"type": "copy", "source": {"projectId": "x", "paths": ["/run/"]}, "destination": {"projectId": b}}),
            "invalid-request",
        ),
        (
            json!({"type": "copy", "source": {"projectId": a, "paths": ["/run/"]}, "destination": {"projectId": b}, "onConflict": "merge"}),
            "invalid-request",
        ),
        (
            json!({"type": "copy", "source": {"projectId": a, "paths": ["/run/"]}, "destination": {"projectId": b}, "include": ["a/[b"]}),
            "invalid-request",
        ),
    ];
    for (body, code) in bad {
        let reply = app.post("/api/v1/jobs", body.clone()).await;
        reply.error(if code == "file-not-found" { 404 } else { 400 }, code);
    }
    // Two sources that would land on the same keys: the second copy would replace the first.
    for (paths, message) in [
        (json!(["/run/", "/run/"]), "source.paths: /run/ and /run/ would both land in /in/run/"),
        (json!(["/", "/run/x.txt"]), "source.paths: /run/x.txt and / would both land in /in/"),
    ] {
        let reply = app.post("/api/v1/jobs", copy("copy", paths, "/in/")).await;
        let said = reply.error(400, "invalid-request");
        assert!(said.contains(message), "{said}");
    }
    // Into the same project's other folder is fine.
    let within = json!({"type": "copy", "source": {"projectId": a, "paths": ["/run/"]}, "destination": {"projectId": a, "path": "/copy/"}});
    app.post("/api/v1/jobs", within).await.ok(202);
}

/// The checks of a job's preflight, as (name, result).
fn checks_of(job: &Value) -> Vec<(String, String)> {
    let checks = job["preflight"].as_array().unwrap_or_else(|| panic!("no preflight: {job}"));
    checks.iter().map(|c| (c["name"].as_str().unwrap().to_owned(), c["result"].as_str().unwrap().to_owned())).collect()
}

/// The preflight's failed check, with its detail and fix.
fn failed_check(job: &Value) -> (String, String, String) {
    let checks = job["preflight"].as_array().unwrap_or_else(|| panic!("no preflight: {job}"));
    let failed = checks.iter().find(|c| c["result"] == "failed").unwrap_or_else(|| panic!("nothing failed: {job}"));
    let text = |field: &str| failed[field].as_str().unwrap_or_default().to_owned();
    (text("name"), text("detail"), text("fix"))
}

/// The source in the platform's account; the destination bucket in account 111111111111, on a
/// credential that reaches it by assuming a role created there (moto switches accounts by role),
/// encrypting with that account's KMS key. The configurations share no credential, so the region's
/// copy role copies. Its preflight fails first for the bucket policy, then for the key policy,
/// then for the Object Ownership, each time naming what the owner is to do; once done, the copy
/// lands byte for byte, and a move takes its sources away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_another_account_goes_through_the_copy_role() {
    const PARTNER: &str = "111111111111";
    const PARTNER_BUCKET: &str = "partner-bucket";
    let platform_account = "123456789012";
    let copy_role = format!("arn:aws:iam::{platform_account}:role/byos-copy");
    let regions = byos_domain::RegionTable::new(vec![byos_domain::Region {
        code: "EU".to_owned(),
        name: "Germany".to_owned(),
        aws_region: "eu-central-1".to_owned(),
        cross_account_role_arn: copy_role.clone(),
        note: None,
    }])
    .unwrap();
    let jobs = byos_api::JobSettings {
        copies: byos_api::CopySettings { threshold: 5 * MIB as u64, part_size: 5 * MIB as u64, parts_at_once: 2 },
        ..Default::default()
    };
    let on = OnMoto::with_jobs_and_regions("xacct", jobs, regions).await;
    let (app, moto) = (&on.app, on.moto.url().to_owned());
    assert_eq!(on.setup.account().await.unwrap(), platform_account);
    let trust = |principal: &str, condition: Value| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
               "Action": "sts:AssumeRole", "Condition": condition}]})
        .to_string()
    };
    let platform_root = format!("arn:aws:iam::{platform_account}:root");
    assert_eq!(on.setup.ensure_role("byos-copy", &trust(&platform_root, json!({}))).await.unwrap(), copy_role);

    // The source: a folder of 20 small objects and one copied in parts.
    for i in 0..20 {
        let key = format!("xacct/src/run/lane-{}/read-{i:02}.txt", i % 2);
        on.bucket.put_object(BUCKET, &key, format!("read {i}").into_bytes(), None).await.unwrap();
    }
    let big: Vec<u8> = (0..7 * MIB).map(|i| (i % 253) as u8).collect();
    put(&moto, BUCKET, "xacct/src/run/big.bam", big.clone(), &[("content-type", "application/x-bam")]).await;
    let source = on.imported_project("src").await;
    set_ready_in(app, &on.configuration, byos_domain::VersioningState::Unversioned, Some(platform_account)).await;

    // The partner's account: its bucket, key and the role the platform reaches it through.
    let (aws, region) = crate::support::moto_aws(&on.moto).await;
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let admin = byos_domain::RoleArn::parse(&format!("arn:aws:iam::{PARTNER}:role/admin")).unwrap();
    let setup_id = byos_domain::ExternalId::parse("partner-admin").unwrap();
    let session = aws
        .assume_role_scoped(&admin, &setup_id, "partner-admin", everything, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    let partner = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(moto.clone()),
        static_credentials: Some((session.access_key_id.clone(), session.expose_secret_access_key().to_owned())),
        ..Default::default()
    })
    .await
    .setup(&region);
    assert_eq!(partner.account().await.unwrap(), PARTNER);
    partner.create_bucket(PARTNER_BUCKET).await.unwrap();
    let key = partner.create_kms_key("partner data").await.unwrap();
    let owner_role = partner
        .ensure_role(
            "byos-access",
            &trust(&platform_root, json!({"StringEquals": {"sts:ExternalId": "partner-tenant"}})),
        )
        .await
        .unwrap();
    let records = byos_test_support::Records { store: app.state.store(), key: app.state.master_key() };
    let credential = records.role(&owner_role, "partner-tenant").await;
    let body = json!({"name": "partner", "region": "eu-central-1", "bucket": PARTNER_BUCKET, "keyPrefix": "lab/",
        "credentialId": credential.id, "serverSideEncryption": {"algorithm": "aws:kms", "keyName": key}});
    let configuration = id_of(app.post("/api/v1/storage-configurations", body).await.ok(201));
    set_ready_in(app, &configuration, byos_domain::VersioningState::Unversioned, Some(PARTNER)).await;
    let destination = project(app, "partner lab", &configuration, "dst").await;
    let _workers = app.state.services().job_engine().spawn_workers();

    let copy = || async {
        let body = json!({"type": "copy", "source": {"projectId": source, "paths": ["/run/"]},
                          "destination": {"projectId": destination, "path": "/in/"}});
        let started = app.post("/api/v1/jobs", body).await;
        wait_for_job(app, started.ok(202)["id"].as_str().unwrap()).await
    };

    // No grant in the partner's bucket policy yet: the preflight names the statements.
    let refused = copy().await;
    assert_eq!((&refused["status"], &refused["error"]["code"]), (&json!("failed"), &json!("copy-preflight-failed")));
    let (check, detail, fix) = failed_check(&refused);
    assert_eq!(check, "destination:bucket-policy", "{refused}");
    assert!(detail.contains(&format!("does not allow the copy role {copy_role} s3:ListBucket")), "{detail}");
    assert!(
        fix.contains(&format!(
            "byos aws bucket-policy --bucket {PARTNER_BUCKET} --cross-account eu-central-1 --role {copy_role}"
        )) && fix.contains("AllowCrossAccountObjects"),
        "{fix}"
    );
    let identity = &refused["preflight"][0];
    assert!(identity["detail"].as_str().unwrap().contains("assumed-role/byos-copy/byos-copy@"), "{identity}");
    assert_eq!(
        checks_of(&refused)[..5],
        [
            ("copy-identity".to_owned(), "passed".to_owned()),
            ("source:bucket-in-region".to_owned(), "passed".to_owned()),
            ("destination:bucket-in-region".to_owned(), "passed".to_owned()),
            ("source:bucket-policy".to_owned(), "skipped".to_owned()),
            ("destination:bucket-policy".to_owned(), "failed".to_owned()),
        ],
        "the source is in the role's own account: {refused}"
    );
    assert_eq!(keys(&on, PARTNER_BUCKET, "lab/").await, Vec::<String>::new(), "nothing copied");

    // The owner adds what `byos aws bucket-policy --cross-account` prints; the key comes next.
    let role = byos_domain::RoleArn::parse(&copy_role).unwrap();
    let bucket = byos_domain::BucketName::parse(PARTNER_BUCKET).unwrap();
    let statements =
        byos_domain::policies::cross_account_bucket_policy(&bucket, &role, byos_domain::VersioningState::Unversioned);
    partner.put_bucket_policy(PARTNER_BUCKET, &statements.to_string()).await.unwrap();
    let refused = copy().await;
    let (check, detail, fix) = failed_check(&refused);
    assert_eq!(check, "destination:kms-key-policy", "{refused}");
    assert!(
        detail.contains(&format!("{key} does not allow the copy role {copy_role} kms:GenerateDataKey")),
        "{detail}"
    );
    assert!(fix.contains(&format!("byos aws kms-policy --region eu-central-1 --role {copy_role}")), "{fix}");

    // The key policy with the printed statement; then the bucket must own what the role writes.
    let existing = partner.kms_key_policy(&key).await.unwrap();
    let merged = byos_domain::policies::merge_statements(
        Some(&existing),
        &byos_domain::policies::kms_key_policy_statement(&role),
    )
    .unwrap();
    partner.put_kms_key_policy(&key, &merged.document.to_string()).await.unwrap();
    let refused = copy().await;
    let (check, detail, fix) = failed_check(&refused);
    assert_eq!(check, "destination:object-ownership", "{refused}");
    assert!(detail.contains("not set (ObjectWriter)") && detail.contains(platform_account), "{detail}");
    assert!(fix.contains("ObjectOwnership=BucketOwnerEnforced"), "{fix}");

    partner.put_object_ownership(PARTNER_BUCKET, "BucketOwnerEnforced").await.unwrap();
    let copied = copy().await;
    assert_eq!(copied["status"], "succeeded", "{copied}");
    assert_eq!(
        (&copied["progress"]["objectsDone"], &copied["progress"]["objectsFailed"]),
        (&json!(21), &json!(0)),
        "{copied}"
    );
    for (name, result) in checks_of(&copied) {
        // The source is in the role's account, and not encrypted with KMS.
        let skipped = ["source:bucket-policy", "source:kms-key-policy", "source:kms-key-usable"];
        let expected = if skipped.contains(&name.as_str()) { "skipped" } else { "passed" };
        assert_eq!((name.as_str(), result.as_str()), (name.as_str(), expected), "{copied}");
    }
    let mut landed = keys(&on, PARTNER_BUCKET, "lab/dst/in/run/").await;
    landed.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("lab/dst/in/run/lane-{}/read-{i:02}.txt", i % 2)).collect();
    expected.push("lab/dst/in/run/big.bam".to_owned());
    expected.sort();
    assert_eq!(landed, expected);
    let reply = reqwest::get(format!("{moto}/{PARTNER_BUCKET}/lab/dst/in/run/big.bam")).await.unwrap();
    assert_eq!(reply.headers()["x-amz-server-side-encryption"], "aws:kms");
    assert_eq!(reply.headers()["content-type"], "application/x-bam");
    assert!(reply.bytes().await.unwrap() == big, "byte-exact across accounts, in parts");

    // A move across the accounts: the sources go once their copies are verified.
    let body = json!({"type": "move", "source": {"projectId": source, "paths": ["/run/lane-0/"]},
                      "destination": {"projectId": destination, "path": "/moved/"}});
    let moved = wait_for_job(app, app.post("/api/v1/jobs", body).await.ok(202)["id"].as_str().unwrap()).await;
    assert_eq!((&moved["status"], &moved["progress"]["objectsDone"]), (&json!("succeeded"), &json!(10)), "{moved}");
    assert_eq!(keys(&on, BUCKET, "xacct/src/run/lane-0/").await, Vec::<String>::new(), "sources gone");
    assert_eq!(keys(&on, PARTNER_BUCKET, "lab/dst/moved/lane-0/").await.len(), 10);
}
