//! The web console in a real browser: Debian's headless Chromium driven over WebDriver, against
//! `byos serve` on moto (behind the shim), with the bucket's CORS applied as `byos aws cors`
//! prints it. Every page visited is saved as a screenshot under
//! `target/console-screenshots/`, and any error in the browser's console fails the test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use byos_aws::{Aws, AwsSettings};
use byos_test_support::{Browser, Moto, MotoShim, TempDir, region, temp_dir};
use serde_json::{Value, json};

use crate::serve::{Server, call, read};

const REGION: &str = "eu-central-1";
const BUCKET: &str = "console-bucket";
const MIB: usize = 1024 * 1024;

/// moto, the bucket (with the console's CORS rule for `origin` once the server runs), the
/// server, and its admin token.
struct Stage {
    _moto: Moto,
    shim: MotoShim,
    aws: Aws,
    server: Server,
    token: String,
    dir: TempDir,
}

impl Stage {
    async fn new() -> Stage {
        let moto = Moto::start();
        let shim = MotoShim::start(&moto).await;
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(shim.url().to_owned()),
            static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        aws.setup(&region(REGION)).create_bucket(BUCKET).await.unwrap();
        let dir = temp_dir();
        let env = [
            ("BYOS__AWS__ENDPOINT_URL", shim.url()),
            ("BYOS__LIFECYCLE__REVERIFY_INTERVAL_SECONDS", "86400"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let server = Server::start(dir.path(), &env, &[]);
        // The rule `byos aws cors --origin <console>` prints, for the console's origin only.
        aws.setup(&region(REGION)).put_cors(BUCKET, &[server.url("")]).await.unwrap();
        let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
        Stage { _moto: moto, shim, aws, server, token, dir }
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, body) = call(method, &self.server.url(path), token, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    /// The bytes of a project's file, through a presigned URL of the API.
    async fn download(&self, project: &str, path: &str) -> Vec<u8> {
        let url = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/data/download-url"),
                &self.token,
                Some(json!({ "path": path })),
            )
            .await;
        let url = url["url"].as_str().unwrap().to_owned();
        reqwest::get(url).await.unwrap().bytes().await.unwrap().to_vec()
    }
}

/// A page with the browser: takes a screenshot of each page the test names, and fails on any
/// error in the browser's console.
struct Tour<'a> {
    browser: &'a Browser,
    name: &'static str,
    shots: usize,
}

impl Tour<'_> {
    /// A tour whose screenshots replace those of the last run.
    fn new<'a>(browser: &'a Browser, name: &'static str) -> Tour<'a> {
        let _ = std::fs::remove_dir_all(screenshots().join(name));
        Tour { browser, name, shots: 0 }
    }

    /// Saves the window as `target/console-screenshots/{test}/{n}-{page}.png` and checks the
    /// console for errors.
    async fn snap(&mut self, page: &str) {
        self.shots += 1;
        let path = screenshots().join(self.name).join(format!("{:02}-{page}.png", self.shots));
        self.browser.screenshot(&path).await;
        self.no_console_errors(page).await;
    }

    async fn no_console_errors(&self, page: &str) {
        let errors: Vec<String> = self
            .browser
            .console_log()
            .await
            .into_iter()
            // A refusal the page expects (401 before signing in, 409 for a file that exists) is
            // logged as a failed resource load: not a JavaScript error.
            .filter(|line| line.level == "SEVERE" && !line.message.contains("Failed to load resource"))
            .map(|line| line.message)
            .collect();
        assert!(errors.is_empty(), "JavaScript errors on {page}: {errors:#?}");
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
}

fn content(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7 + i / 4093) % 251) as u8).collect()
}

/// Fills the input `css` with `text`.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    browser.type_into(&input, text).await;
}

/// Picks the `<option>` of the select `css` whose text contains `text`.
async fn choose(browser: &Browser, css: &str, text: &str) {
    let options = browser.find_all(&format!("{css} option")).await;
    for option in options {
        if browser.text(&option).await.contains(text) {
            browser.click(&option).await;
            return;
        }
    }
    panic!("no option {text:?} in {css}");
}

async fn click_text(browser: &Browser, css: &str, text: &str) {
    let element = browser.find_text(css, text).await;
    browser.click(&element).await;
}

/// Waits until `f` says yes, or panics after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_sets_up_storage_and_moves_data_through_the_console() {
    let stage = Stage::new().await;
    let browser = Browser::start(1280, 900).await;
    let mut tour = Tour::new(&browser, "admin");

    // Sign in: the console asks for a token, and keeps a session cookie instead of it.
    browser.goto(&stage.server.url("/projects")).await;
    fill(&browser, "input[name=token]", &stage.token).await;
    tour.snap("sign-in").await;
    click_text(&browser, "button", "Sign in").await;
    browser.wait_for_text("No projects yet").await;
    let cookie_visible = browser.execute("return document.cookie", json!([])).await;
    assert_eq!(cookie_visible, json!(""), "the session cookie is out of the page's reach");
    tour.snap("projects-empty").await;

    // A credential.
    click_text(&browser, "a", "Credentials").await;
    click_text(&browser, "a", "+ New credential").await;
    fill(&browser, "input[name=name]", "lab key").await;
    fill(&browser, "input[name=accessKeyId]", "AKIAIOSFODNN7EXAMPLE").await;
    fill(&browser, "input[name=secretAccessKey]", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").await;
    tour.snap("credential-new").await;
    click_text(&browser, "button", "Create").await;
    browser.wait_for_text("AKIA").await;
    tour.snap("credential").await;

    // A configuration, validated and provisioned for real on moto.
    click_text(&browser, "a", "Configurations").await;
    click_text(&browser, "a", "+ New configuration").await;
    fill(&browser, "input[name=name]", "lab storage").await;
    choose(&browser, "select[name=region]", REGION).await;
    fill(&browser, "input[name=bucket]", BUCKET).await;
    fill(&browser, "input[name=keyPrefix]", "data/").await;
    tour.snap("configuration-new").await;
    click_text(&browser, "button", "Create and validate").await;
    let report = browser.wait_for_text(" failed of ").await;
    eventually("the configuration is ready", Duration::from_secs(120), || async {
        let h1 = browser.find("h1").await;
        browser.text(&h1).await.contains("ready")
    })
    .await;
    assert!(report.contains("Validation report"), "{report}");
    // The console's origin is the server's, on the port it was given: the bucket's CORS allows it.
    let report = browser.page_text().await;
    assert!(report.contains("cors-allows-console-origin passed"), "{report}");
    tour.snap("configuration-ready").await;

    // A project.
    click_text(&browser, "a", "Projects").await;
    click_text(&browser, "a", "+ New project").await;
    fill(&browser, "input[name=name]", "study").await;
    fill(&browser, "input[name=folder]", "study").await;
    tour.snap("project-new").await;
    click_text(&browser, "button", "Create project").await;
    browser.wait_for_text("Sync with the bucket").await;
    tour.snap("project").await;
    let project = browser.url().await.rsplit('/').next().unwrap().to_owned();
    click_text(&browser, "a", "Browse data").await;
    browser.wait_for_text("This folder is empty").await;

    // Uploads from the browser straight to the bucket: a file of 50 MiB in parts, and a
    // folder of 20 small files.
    let files = temp_dir();
    let big = content(50 * MIB + 17, 1);
    std::fs::write(files.path().join("big.bin"), &big).unwrap();
    let batch = files.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    for i in 0..20 {
        std::fs::write(batch.join(format!("f{i:02}.txt")), content(1000 + i * 37, i)).unwrap();
    }
    let pick_files = browser.find("input[type=file]:not([webkitdirectory])").await;
    browser.type_into(&pick_files, &files.path().join("big.bin").display().to_string()).await;
    browser.wait_for_text("Uploaded, 50 MiB").await;
    let pick_folder = browser.find("input[type=file][webkitdirectory]").await;
    browser.type_into(&pick_folder, &batch.display().to_string()).await;
    eventually("the folder's uploads end", Duration::from_secs(120), || async {
        browser.page_text().await.matches("Uploaded, ").count() == 21
    })
    .await;
    tour.snap("uploads").await;
    assert_eq!(stage.download(&project, "/big.bin").await, big, "big.bin arrived byte-exact");
    for i in [0, 7, 19] {
        let path = format!("/batch/f{i:02}.txt");
        assert_eq!(stage.download(&project, &path).await, content(1000 + i * 37, i), "{path}");
    }
    let listing = browser.wait_for_text("batch/").await;
    assert!(listing.contains("big.bin"), "{listing}");
    tour.snap("folder").await;

    // The filter asks the server for names by their start, and the URL keeps it.
    let folder_url = browser.url().await;
    fill(&browser, "#name-filter", "bat").await;
    browser.wait_for_text("shown starting with \"bat\"").await;
    let main = browser.find("main table").await;
    assert!(!browser.text(&main).await.contains("big.bin"), "the filter leaves big.bin out");
    assert!(browser.url().await.ends_with("?prefix=bat"), "{}", browser.url().await);
    tour.snap("folder-filtered").await;
    browser.goto(&folder_url).await;
    browser.wait_for_text("big.bin").await;

    // Download back through the file's link: the browser saves it byte-exact.
    click_text(&browser, "a", "big.bin").await;
    browser.wait_for_text("Versions").await;
    tour.snap("file").await;
    click_text(&browser, "button", "Download").await;
    let saved = browser.downloads().join("big.bin");
    eventually("the download is saved", Duration::from_secs(60), || async {
        std::fs::metadata(&saved).is_ok_and(|m| m.len() == big.len() as u64)
    })
    .await;
    assert_eq!(std::fs::read(&saved).unwrap(), big, "the download is byte-exact");

    // Delete the folder: a job, followed to its end.
    browser.back().await;
    browser.wait_for_text("batch/").await;
    let select = browser.find("input[aria-label='Select batch']").await;
    browser.click(&select).await;
    click_text(&browser, "button", "Delete selected (1)").await;
    click_text(&browser, "dialog button", "Delete").await;
    // The job is followed on the page until it ends; then the listing is drawn again.
    browser.wait_for_text("Deleted 1 entry.").await;
    tour.snap("folder-deleted").await;
    eventually("the folder leaves the listing", Duration::from_secs(30), || async {
        let main = browser.find("main").await;
        !browser.text(&main).await.contains("batch/")
    })
    .await;

    // A new folder, and a file moved into it.
    click_text(&browser, "button", "New folder").await;
    fill(&browser, "dialog input[name=name]", "made").await;
    click_text(&browser, "dialog button", "Create").await;
    browser.wait_for_text("made/").await;
    let rename = browser.find("button[aria-label='Rename or move big.bin']").await;
    browser.click(&rename).await;
    let to = browser.find("dialog input[name=to]").await;
    browser.clear(&to).await;
    browser.type_into(&to, "/made/big.bin").await;
    click_text(&browser, "dialog button", "Move").await;
    eventually("big.bin leaves the root", Duration::from_secs(30), || async {
        let table = browser.find("main table").await;
        !browser.text(&table).await.contains("big.bin")
    })
    .await;
    click_text(&browser, "main a", "made/").await;
    browser.wait_for_text("big.bin").await;
    tour.snap("moved").await;
    assert_eq!(stage.download(&project, "/made/big.bin").await, big, "the moved file is the same");

    // System Settings' other pages.
    click_text(&browser, "a", "Configurations").await;
    browser.wait_for_text("Last verified").await;
    tour.snap("configurations").await;
    click_text(&browser, "a", "Credentials").await;
    browser.wait_for_text("In use by").await;
    tour.snap("credentials").await;
    click_text(&browser, "a", "Tokens").await;
    browser.wait_for_text("(you are signed in with it)").await;
    tour.snap("tokens").await;
    click_text(&browser, "a", "+ New token").await;
    fill(&browser, "input[name=name]", "analyst").await;
    let study = browser.find("input[name=project]").await;
    browser.click(&study).await;
    tour.snap("token-new").await;
    click_text(&browser, "button", "Create token").await;
    let shown = browser.wait_for_text("it is shown this once").await;
    let value = shown.lines().find(|l| l.starts_with("byos_")).unwrap_or_default().to_owned();
    let (status, me) = call(reqwest::Method::GET, &stage.server.url("/api/v1/session"), &value, None).await;
    assert_eq!(
        (status, me["name"].as_str(), me["projects"][0]["access"].as_str()),
        (200, Some("analyst"), Some("read-write"))
    );
    tour.snap("token-created").await;
    browser.goto(&stage.server.url(&format!("/projects/{project}"))).await;
    browser.wait_for_text("Members").await;
    tour.snap("project-members").await;
    click_text(&browser, "button", "Reconcile now").await;
    browser.wait_for_text("Reconcile started.").await;
    click_text(&browser, "main a", "delete-folder /batch/").await;
    browser.wait_for_text("Delete /batch/").await;
    browser.wait_for_text("succeeded").await;
    tour.snap("job").await;

    // The audit log: every change above, with who made it and from where; the filters go into
    // the URL.
    click_text(&browser, "a", "Audit log").await;
    let log = browser.wait_for_text("changes shown").await;
    for action in
        ["sign_in", "create_credential", "create_configuration", "create_project", "create_token", "move_data"]
    {
        assert!(log.contains(action), "{action} is not in the audit log: {log}");
    }
    assert!(log.contains("127.0.0.1") && log.contains("first admin"), "{log}");
    assert!(!log.contains("wJalrXUtnFEMI") && !log.contains(&value), "no secret in the audit log");
    tour.snap("audit").await;
    fill(&browser, "form[role=search] input[name=action]", "create_token").await;
    click_text(&browser, "button", "Filter").await;
    browser.wait_for_text("1 change shown").await;
    assert!(browser.url().await.ends_with("/settings/audit?action=create_token"), "{}", browser.url().await);

    // Sign out ends the session: the next page asks for a token again.
    click_text(&browser, "button", "Sign out").await;
    browser.wait_for_text("Sign in to byos").await;
    browser.goto(&stage.server.url(&format!("/projects/{project}/data/"))).await;
    browser.wait_for_text("Sign in to byos").await;
    tour.no_console_errors("sign-out").await;
    let _ = (&stage.shim, &stage.aws, stage.dir.path());
}

impl Stage {
    /// A ready configuration and the projects `a` and `b` on it, made through the API; their ids.
    async fn two_projects(&self) -> (String, String) {
        use reqwest::Method;
        let credential = self
            .api(
                Method::POST,
                "/api/v1/storage-credentials",
                &self.token,
                Some(json!({"name": "key", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})),
            )
            .await;
        let configuration = self
            .api(
                Method::POST,
                "/api/v1/storage-configurations",
                &self.token,
                Some(json!({"name": "lab", "region": REGION, "bucket": BUCKET, "keyPrefix": "data/",
                            "credentialId": credential["id"]})),
            )
            .await;
        let path = format!("/api/v1/storage-configurations/{}", configuration["id"].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let body = self.api(Method::GET, &path, &self.token, None).await;
            if body["status"] != "initializing" {
                assert_eq!(body["status"], "ready", "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "the configuration was not validated: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ids = Vec::new();
        for name in ["project a", "project b"] {
            let body = json!({"name": name, "region": REGION, "storageConfigurationId": configuration["id"],
                              "folder": name.replace(' ', "-")});
            let created = self.api(Method::POST, "/api/v1/projects", &self.token, Some(body)).await;
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
        (ids[0].clone(), ids[1].clone())
    }

    /// Uploads `bytes` to `path` of `project` through the API, as any client would, replacing
    /// what is there.
    async fn upload(&self, project: &str, path: &str, bytes: Vec<u8>) {
        use reqwest::Method;
        let uploads = format!("/api/v1/projects/{project}/uploads");
        let body = json!({"path": path, "size": bytes.len(), "overwrite": true});
        let upload = self.api(Method::POST, &uploads, &self.token, Some(body)).await;
        let mut put = reqwest::Client::new().put(upload["url"].as_str().unwrap());
        for (name, value) in upload["headers"].as_object().into_iter().flatten() {
            put = put.header(name, value.as_str().unwrap_or_default());
        }
        let sent = put.body(bytes).send().await.unwrap();
        assert!(sent.status().is_success(), "PUT {path}: {}", sent.status());
        let complete = format!("{uploads}/{}/complete", upload["id"].as_str().unwrap());
        self.api(Method::POST, &complete, &self.token, Some(json!({}))).await;
    }

    async fn token(&self, grants: Value) -> String {
        let body = json!({"name": "reader", "role": "member", "projects": grants});
        let created = self.api(reqwest::Method::POST, "/api/v1/tokens", &self.token, Some(body)).await;
        created["value"].as_str().unwrap().to_owned()
    }
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/sign-in")).await;
    fill(browser, "input[name=token]", token).await;
    click_text(browser, "button", "Sign in").await;
    browser.wait_for_text("Sign out").await;
}

#[tokio::test]
async fn members_see_their_projects_only_names_stay_text_and_cors_refusals_say_why() {
    let stage = Stage::new().await;
    let (a, b) = stage.two_projects().await;
    let xss = "<img src=x onerror=alert(1)>.txt";
    stage.upload(&a, &format!("/{xss}"), b"not markup".to_vec()).await;
    let reader = stage.token(json!([{"id": a, "access": "read"}])).await;
    let browser = Browser::start(1280, 900).await;
    let mut tour = Tour::new(&browser, "member");

    // A reader of project a sees its data, the hostile name as text, and no way to change it.
    sign_in(&browser, &stage.server.url(""), &reader).await;
    browser.goto(&stage.server.url(&format!("/projects/{a}/data/"))).await;
    let text = browser.wait_for_text(xss).await;
    let images = browser.execute("return document.querySelectorAll('main img').length", json!([])).await;
    assert_eq!(images, json!(0), "the key's name was not parsed as markup");
    for control in ["Upload files", "Upload folder", "New folder", "Delete selected", "Rename"] {
        assert!(!text.contains(control), "a reader is offered {control:?}:\n{text}");
    }
    tour.snap("reader-folder").await;
    browser.set_window_size(390, 844).await;
    tour.snap("reader-folder-390px").await;
    browser.set_window_size(1280, 900).await;

    // Project b does not exist for this member, and neither do System Settings.
    browser.goto(&stage.server.url(&format!("/projects/{b}/data/"))).await;
    let text = browser.wait_for_text("Not found").await;
    assert!(text.contains(&format!("Project '{b}' does not exist")), "{text}");
    tour.snap("other-project").await;
    browser.goto(&stage.server.url("/settings/tokens")).await;
    browser.wait_for_text("System Settings are for admins.").await;
    tour.snap("settings-refused").await;

    // From an origin the bucket's CORS does not allow (localhost is not 127.0.0.1), S3 refuses
    // the browser's upload, and the page says why and how to fix it.
    let port = stage.server.url("").rsplit(':').next().unwrap().to_owned();
    let elsewhere = format!("http://localhost:{port}");
    sign_in(&browser, &elsewhere, &stage.token).await;
    browser.goto(&format!("{elsewhere}/projects/{a}/data/")).await;
    browser.wait_for_text("Upload files").await;
    let files = temp_dir();
    std::fs::write(files.path().join("refused.txt"), b"refused").unwrap();
    let pick = browser.find("input[type=file]:not([webkitdirectory])").await;
    browser.type_into(&pick, &files.path().join("refused.txt").display().to_string()).await;
    let text = browser.wait_for_text("does not allow this origin").await;
    assert!(text.contains(&format!("byos aws cors --origin {elsewhere}")), "{text}");
    browser.screenshot(&screenshots().join("member").join("cors-refused.png")).await;
    // The browser's console has the CORS refusal, and nothing else.
    for line in browser.console_log().await {
        let expected = line.message.contains("CORS policy") || line.message.contains("Failed to load resource");
        assert!(line.level != "SEVERE" || expected, "{line:?}");
    }
    let listed = stage.api(reqwest::Method::GET, &format!("/api/v1/projects/{a}/data"), &stage.token, None).await;
    assert!(!listed.to_string().contains("refused.txt"), "nothing arrived: {listed}");
}

/// An upload the page lost (a reload) stays open on the server with the parts S3 holds; the
/// same file dropped again sends only the rest.
#[tokio::test]
async fn an_upload_cut_short_by_a_reload_resumes_with_the_parts_s3_holds() {
    use reqwest::Method;
    let stage = Stage::new().await;
    let (project, _) = stage.two_projects().await;
    let bytes = content(20 * MIB + 5, 3);
    // What the page had done before the reload: the upload started, its first part sent.
    let uploads = format!("/api/v1/projects/{project}/uploads");
    let body = json!({"path": "/resume.bin", "size": bytes.len(), "partSize": 8 * MIB});
    let upload = stage.api(Method::POST, &uploads, &stage.token, Some(body)).await;
    assert_eq!((upload["kind"].as_str(), upload["partCount"].as_u64()), (Some("multipart"), Some(3)), "{upload}");
    let id = upload["id"].as_str().unwrap().to_owned();
    let signed = stage
        .api(Method::POST, &format!("{uploads}/{id}/parts"), &stage.token, Some(json!({"partNumbers": [1]})))
        .await;
    let part = &signed["parts"][0];
    let mut put = reqwest::Client::new().put(part["url"].as_str().unwrap());
    for (name, value) in part["headers"].as_object().into_iter().flatten() {
        put = put.header(name, value.as_str().unwrap_or_default());
    }
    assert!(put.body(bytes[..8 * MIB].to_vec()).send().await.unwrap().status().is_success());

    let browser = Browser::start(1280, 900).await;
    let mut tour = Tour::new(&browser, "resume");
    sign_in(&browser, &stage.server.url(""), &stage.token).await;
    browser.goto(&stage.server.url(&format!("/projects/{project}/data/"))).await;
    browser.wait_for_text("1 interrupted upload in this folder").await;
    tour.snap("interrupted").await;
    let files = temp_dir();
    std::fs::write(files.path().join("resume.bin"), &bytes).unwrap();
    let pick = browser.find("input[type=file]:not([webkitdirectory])").await;
    browser.type_into(&pick, &files.path().join("resume.bin").display().to_string()).await;
    browser.wait_for_text("Uploaded, 20 MiB (resumed)").await;
    tour.snap("resumed").await;
    assert_eq!(stage.download(&project, "/resume.bin").await, bytes, "the resumed upload is byte-exact");
    let open = stage.api(Method::GET, &uploads, &stage.token, None).await;
    assert_eq!(open["items"], json!([]), "no upload is left open");
}

/// On a versioned bucket, a file's page lists its versions, restores an older one, and brings a
/// deleted file back.
#[tokio::test]
async fn a_files_versions_come_back_through_the_console() {
    let stage = Stage::new().await;
    let enabled = byos_domain::VersioningState::Enabled;
    stage.aws.setup(&region(REGION)).set_versioning(BUCKET, enabled).await.unwrap();
    let (project, _) = stage.two_projects().await;
    stage.upload(&project, "/notes.txt", b"first draft".to_vec()).await;
    stage.upload(&project, "/notes.txt", b"second draft".to_vec()).await;

    let browser = Browser::start(1280, 900).await;
    let mut tour = Tour::new(&browser, "versions");
    sign_in(&browser, &stage.server.url(""), &stage.token).await;
    browser.goto(&stage.server.url(&format!("/projects/{project}/file/notes.txt"))).await;
    browser.wait_for_text("(current)").await;
    assert_eq!(browser.find_all("main table tbody tr").await.len(), 2, "two versions");
    tour.snap("file-versions").await;

    // The older version becomes the current one again.
    let restore = browser.find("button[aria-label^='Restore version']").await;
    browser.click(&restore).await;
    browser.wait_for_text("Restore: done.").await;
    assert_eq!(stage.download(&project, "/notes.txt").await, b"first draft");

    // Deleted, the file keeps its page, with Undelete.
    click_text(&browser, "main button", "Delete").await;
    click_text(&browser, "dialog button", "Delete").await;
    browser.wait_for_text("This file is deleted").await;
    tour.snap("file-deleted").await;
    click_text(&browser, "main button", "Undelete").await;
    browser.wait_for_text("Undelete: done.").await;
    browser.find_text("main button", "Download").await;
    assert_eq!(stage.download(&project, "/notes.txt").await, b"first draft", "the file is back");
    tour.no_console_errors("undeleted").await;
}

/// A copy job between two projects: its page names the source project, shows the progress and
/// the preflight, and its report downloads through the console's session, one line per object.
#[tokio::test]
async fn a_copy_job_shows_its_source_progress_and_report() {
    let stage = Stage::new().await;
    let (a, b) = stage.two_projects().await;
    for i in 0..3 {
        stage.upload(&a, &format!("/run/read-{i}.txt"), format!("read {i}").into_bytes()).await;
    }
    let body = json!({"type": "copy", "source": {"projectId": a, "paths": ["/run/"]},
                      "destination": {"projectId": b, "path": "/in/"}});
    let job = stage.api(reqwest::Method::POST, "/api/v1/jobs", &stage.token, Some(body)).await;
    let id = job["id"].as_str().unwrap().to_owned();

    let browser = Browser::start(1280, 900).await;
    let mut tour = Tour::new(&browser, "copy-job");
    sign_in(&browser, &stage.server.url(""), &stage.token).await;
    browser.goto(&stage.server.url(&format!("/jobs/{id}"))).await;
    browser.wait_for_text("Copy /run/ from project project a into /in/").await;
    browser.wait_for_text("succeeded").await;
    browser.wait_for_text("3 of 3 objects").await;
    tour.snap("copy-job").await;

    click_text(&browser, "main a", "Report (one JSON line per object)").await;
    let saved = browser.downloads().join(format!("job-{id}.jsonl"));
    eventually("the report is saved", Duration::from_secs(30), || async {
        std::fs::read_to_string(&saved).is_ok_and(|report| report.lines().count() == 3)
    })
    .await;
    let report = std::fs::read_to_string(&saved).unwrap();
    assert!(
        report.lines().all(|l| l.contains(r#""result":"copied""#) && l.contains(r#""destination":"/in/run/"#)),
        "{report}"
    );
    tour.no_console_errors("copy-job").await;
}
