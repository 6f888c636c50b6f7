//! `/api/v1/projects` and browsing their data: the rules of a project's folder and
//! configuration, members seeing only their projects, and the browse API's pages and entries.

use byos_catalog::KeyUpdate;
use byos_domain::ConfigurationStatus;
use byos_domain::events::Sequencer;
use byos_domain::objects::Change;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{SECRET, TestApp, configuration, id_of, ready_configuration, set_status};

fn project(name: &str, configuration: &str, folder: &str) -> Value {
    json!({"name": name, "region": "eu-central-1", "storageConfigurationId": configuration, "folder": folder})
}

#[tokio::test]
async fn a_project_needs_a_ready_configuration_of_its_region_and_a_folder_of_its_own() {
    let app = TestApp::new().await;
    let credential = app.user_credential("key", SECRET).await;
    let created = app.post("/api/v1/storage-configurations", configuration("genomics", &credential)).await;
    let configuration = id_of(created.ok(201));

    let message = app.post("/api/v1/projects", project("study", &configuration, "study")).await;
    let message = message.error(409, "configuration-not-ready");
    assert_eq!(
        message,
        "Storage configuration 'genomics' is initializing: a project needs a ready storage configuration"
    );
    set_status(&app, &configuration, ConfigurationStatus::Ready).await;

    let wrong_region =
        json!({"name": "study", "region": "us-east-1", "storageConfigurationId": configuration, "folder": "study"});
    let message = app.post("/api/v1/projects", wrong_region).await.error(400, "bucket-wrong-region");
    assert_eq!(message, "Storage container must be located in the us-east-1 region");
    for (folder, rule) in [
        ("./study", "does not start with './' or '../'"),
        ("../study", "does not start with './' or '../'"),
        ("/study", "does not start with '/'"),
        ("study/", "does not end with '/'"),
        ("a//b", "no empty segments"),
        ("team*", "a project folder holds no '*', '?' or '$'"),
        ("rtl\u{202E}txt", "found U+202E"),
        ("", "folder: required"),
    ] {
        let message = app.post("/api/v1/projects", project("study", &configuration, folder)).await;
        let message = message.error(400, "invalid-request");
        assert!(message.contains(rule), "{folder:?}: {message}");
    }
    let message = app.post("/api/v1/projects", project("study", &Uuid::new_v4().to_string(), "study")).await;
    assert!(message.error(400, "invalid-request").contains("no storage configuration has the id"));

    let created = app.post("/api/v1/projects", project("study", &configuration, "study/2026")).await;
    let created = created.ok(201).clone();
    assert_eq!(created["keyPrefix"], "genomics/study/2026/");
    assert_eq!(created["bucket"], "customer-bucket");
    assert_eq!(created["import"]["reason"], "initial-import");
    assert_eq!(created["import"]["status"], "running");
    let id = id_of(&created);
    let got = app.get(&format!("/api/v1/projects/{id}")).await;
    assert_eq!(got.ok(200)["folder"], "study/2026");

    app.post("/api/v1/projects", project("study", &configuration, "other")).await.error(409, "name-taken");
    for overlapping in ["study", "study/2026/raw"] {
        let message = app.post("/api/v1/projects", project("overlap", &configuration, overlapping)).await;
        let message = message.error(409, "project-prefix-overlap");
        assert_eq!(
            message,
            "Project 'study' already owns 'genomics/study/2026/' of bucket 'customer-bucket', which overlaps \
             this project's folder"
        );
    }
    app.post("/api/v1/projects", project("sibling", &configuration, "study/2026-b")).await.ok(201);

    // A configuration with projects stays.
    let message = app.delete(&format!("/api/v1/storage-configurations/{configuration}")).await.error(409, "in-use");
    assert!(message.contains("project(s) 'sibling', 'study'"), "{message}");
    app.delete(&format!("/api/v1/projects/{id}")).await.ok(204);
    app.get(&format!("/api/v1/projects/{id}")).await.error(404, "not-found");
}

#[tokio::test]
async fn members_see_only_their_projects() {
    let app = TestApp::new().await;
    let configuration = ready_configuration(&app, "genomics").await;
    let mine = id_of(app.post("/api/v1/projects", project("mine", &configuration, "mine")).await.ok(201));
    let theirs = id_of(app.post("/api/v1/projects", project("theirs", &configuration, "theirs")).await.ok(201));
    let member = app.member(&[&mine]).await;
    let call = |path: String| {
        let member = member.clone();
        let app = &app;
        async move { app.call(axum::http::Method::GET, &path, Some(&member), None).await }
    };
    let list = call("/api/v1/projects".to_owned()).await;
    let names: Vec<&str> =
        list.ok(200)["items"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["mine"]);
    call(format!("/api/v1/projects/{mine}")).await.ok(200);
    call(format!("/api/v1/projects/{mine}/data?path=/")).await.ok(200);
    call(format!("/api/v1/projects/{theirs}")).await.error(404, "not-found");
    call(format!("/api/v1/projects/{theirs}/data?path=/")).await.error(404, "not-found");
    call(format!("/api/v1/projects/{theirs}/reconcile")).await.error(404, "not-found");
    let deleted = app.call(axum::http::Method::DELETE, &format!("/api/v1/projects/{mine}"), Some(&member), None).await;
    deleted.error(403, "access-forbidden");
}

fn created(key: &str, sequencer: &str, size: u64) -> KeyUpdate {
    KeyUpdate::Changes {
        key: key.to_owned(),
        changes: vec![Change::Created {
            version_id: "null".to_owned(),
            sequencer: Sequencer::parse(sequencer).unwrap(),
            size,
            etag: format!("etag-{key}"),
            at_ms: 1_764_000_000_000,
        }],
    }
}

#[tokio::test]
async fn browsing_lists_folders_by_name_in_stable_pages() {
    let app = TestApp::new().await;
    let configuration = ready_configuration(&app, "genomics").await;
    let id = id_of(app.post("/api/v1/projects", project("study", &configuration, "study")).await.ok(201));
    let project = Uuid::parse_str(&id).unwrap();
    let mut updates = vec![
        created("reads/a.fastq", "0A", 10),
        created("marker/", "0B", 0),
        created("top.txt", "0C", 3),
        created("a-first.txt", "0E", 1),
    ];
    updates.extend((0..25).map(|i| created(&format!("many/f{i:02}.txt"), "0D", i)));
    app.state.store().data.apply(project, &updates).await.unwrap();

    let root = app.get(&format!("/api/v1/projects/{id}/data")).await;
    let root = root.ok(200);
    let paths: Vec<&str> = root["items"].as_array().into_iter().flatten().filter_map(|i| i["path"].as_str()).collect();
    assert_eq!(paths, ["/many/", "/marker/", "/reads/", "/a-first.txt", "/top.txt"], "folders first, then by name");
    assert_eq!(
        root["items"][1],
        json!({"name": "marker", "path": "/marker/", "type": "folder", "folderMarker": true, "children": 0})
    );
    assert_eq!(root["items"][0]["children"], 25);
    let file = &root["items"][4];
    assert_eq!(
        (file["type"].clone(), file["size"].clone(), file["eTag"].clone()),
        (json!("file"), json!(3), json!("etag-top.txt"))
    );
    assert_eq!(file["lastModified"], "2025-11-24T16:00:00Z");
    assert!(root.get("nextPageToken").is_none());

    // Pages of 10: every name once, in order, with the next token until the end.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/projects/{id}/data?path=/many/&limit=10");
        if let Some(token) = &token {
            path.push_str(&format!("&pageToken={token}"));
        }
        let page = app.get(&path).await;
        let page = page.ok(200).clone();
        seen.extend(
            page["items"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str().map(str::to_owned)),
        );
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("f{i:02}.txt")).collect();
    assert_eq!(seen, expected);

    // A filter on the names' start, as the console's filter box sends it.
    let names = |reply: &Value| -> Vec<String> {
        reply["items"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str().map(str::to_owned)).collect()
    };
    let filtered = app.get(&format!("/api/v1/projects/{id}/data?prefix=m")).await;
    assert_eq!(names(filtered.ok(200)), ["many", "marker"]);
    let filtered = app.get(&format!("/api/v1/projects/{id}/data?path=/many/&prefix=f1&limit=4")).await;
    assert_eq!(names(filtered.ok(200)), ["f10.txt", "f11.txt", "f12.txt", "f13.txt"]);
    let token = filtered.body["nextPageToken"].as_str().unwrap_or_default().to_owned();
    let next = app.get(&format!("/api/v1/projects/{id}/data?path=/many/&prefix=f1&limit=10&pageToken={token}")).await;
    assert_eq!(names(next.ok(200)), ["f14.txt", "f15.txt", "f16.txt", "f17.txt", "f18.txt", "f19.txt"]);
    // A token holds to its listing: another folder or filter refuses it, never follows it.
    for other in [format!("path=/&pageToken={token}"), format!("path=/many/&prefix=f2&pageToken={token}")] {
        let message = app.get(&format!("/api/v1/projects/{id}/data?{other}")).await.error(400, "invalid-request");
        assert!(message.contains("not a token this server gave for this listing"), "{message}");
    }

    let entry = app.get(&format!("/api/v1/projects/{id}/data?path=/reads/a.fastq")).await;
    assert_eq!(entry.ok(200)["items"][0]["size"], 10);
    app.get(&format!("/api/v1/projects/{id}/data?path=/reads/b.fastq")).await.error(404, "not-found");
    app.get(&format!("/api/v1/projects/{id}/data?path=/nowhere/")).await.error(404, "not-found");
    for bad in [
        "path=reads/",
        "path=/a//b/",
        "path=/../x",
        "limit=0",
        "limit=1001",
        "pageToken=%25%25",
        "colour=red",
        "prefix=a/b",
    ] {
        app.get(&format!("/api/v1/projects/{id}/data?{bad}")).await.error(400, "invalid-request");
    }
}
