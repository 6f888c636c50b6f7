//! A test application: the real router on a fresh SQLite store, with the log captured.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use byos_api::AppState;
use byos_catalog::{Store, StoreOptions};
use byos_domain::{ConfigurationStatus, RegionTable};
use byos_secrets::MasterKey;
use byos_test_support::{TempDir, temp_dir};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// Everything any test in this binary logged, at every level.
pub(crate) fn captured_log() -> String {
    let buffer = log_buffer();
    let bytes = buffer.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}

fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = buffer.clone();
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || SharedWriter(writer.clone()))
                .try_init();
            buffer
        })
        .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) state: AppState,
    pub(crate) admin: String,
    /// Every response body this app returned, for the secret scan.
    pub(crate) responses: Mutex<Vec<String>>,
    _dir: TempDir,
}

/// A response: status and JSON body (`Value::Null` when the body is empty or not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    /// Asserts the catalogue's error shape and code; returns the message.
    #[track_caller]
    pub(crate) fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["code"], json!(code), "{}", self.text);
        for field in ["type", "message", "fix"] {
            assert!(self.body[field].as_str().is_some_and(|s| !s.is_empty()), "no {field}: {}", self.text);
        }
        let keys: Vec<&String> = self.body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(keys.len(), 4, "error bodies have exactly type, code, message, fix: {}", self.text);
        self.body["message"].as_str().unwrap_or_default().to_owned()
    }

    #[track_caller]
    pub(crate) fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.body
    }
}

impl TestApp {
    pub(crate) async fn new() -> TestApp {
        TestApp::with_regions(RegionTable::builtin()).await
    }

    pub(crate) async fn with_regions(regions: RegionTable) -> TestApp {
        TestApp::build(regions, None, None, Default::default(), Default::default()).await
    }

    /// An app whose AWS is `endpoint` (a moto server), for routes that ask AWS at once.
    pub(crate) async fn with_aws(endpoint: &str) -> TestApp {
        TestApp::build(RegionTable::builtin(), Some(endpoint.to_owned()), None, Default::default(), Default::default())
            .await
    }

    /// An app whose AWS is `endpoint`, whose jobs run as `jobs` says, serving `regions`.
    pub(crate) async fn with_aws_jobs_and_regions(
        endpoint: &str,
        jobs: byos_api::JobSettings,
        regions: RegionTable,
    ) -> TestApp {
        TestApp::build(regions, Some(endpoint.to_owned()), None, Default::default(), jobs).await
    }

    /// An app whose AWS is `endpoint`, with STS at `sts` (a gate in front of moto's).
    pub(crate) async fn with_aws_and_sts(endpoint: &str, sts: &str) -> TestApp {
        let (aws, sts) = (Some(endpoint.to_owned()), Some(sts.to_owned()));
        TestApp::build(RegionTable::builtin(), aws, sts, Default::default(), Default::default()).await
    }

    /// An app whose AWS is `endpoint`, with data access set as `data` says.
    pub(crate) async fn with_aws_and_data(endpoint: &str, data: byos_api::DataSettings) -> TestApp {
        TestApp::build(RegionTable::builtin(), Some(endpoint.to_owned()), None, data, Default::default()).await
    }

    async fn build(
        regions: RegionTable,
        aws_endpoint: Option<String>,
        sts_endpoint: Option<String>,
        data: byos_api::DataSettings,
        jobs: byos_api::JobSettings,
    ) -> TestApp {
        log_buffer();
        let dir = temp_dir();
        let options = StoreOptions { url: None, max_connections: 4, connect_timeout: Duration::from_secs(5) };
        let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("open: {e:?}"));
        let key = MasterKey::generate();
        byos_api::check_master_key(&store, &key).await.unwrap();
        let first = byos_api::ensure_admin_token(&store, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("a new store gets an admin token"));
        // Without an endpoint, AWS is a closed local port: these tests never reach AWS, and must
        // not try the real one.
        let (endpoint, key_id, secret) = match aws_endpoint {
            Some(url) => (url, byos_test_support::MOTO_ACCESS_KEY_ID, byos_test_support::MOTO_SECRET_ACCESS_KEY),
            None => (format!("http://127.0.0.1:{}", byos_test_support::free_port()), "AKIAEXAMPLE000000000", "unused"),
        };
        let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
            endpoint_url: Some(endpoint),
            static_credentials: Some((key_id.to_owned(), secret.to_owned())),
            profile: None,
            sts_endpoint_url: sts_endpoint,
        })
        .await;
        let buckets = byos_buckets::Buckets::new(store.clone(), aws.clone(), key.clone());
        let lifecycle = byos_lifecycle::Lifecycle::new(store.clone(), aws.clone(), buckets.clone(), Default::default());
        let sync = byos_sync::SyncEngine::new(store.clone(), aws, buckets.clone(), Default::default());
        let jobs = byos_api::JobEngine::new(store.clone(), buckets.clone(), sync.clone(), jobs, regions.clone());
        let parts = byos_api::Parts { store, master_key: key, regions, buckets, lifecycle, sync, jobs, data };
        let state = AppState::new(parts);
        TestApp {
            router: byos_api::router(state.clone()),
            state,
            admin: first.token.expose().to_owned(),
            responses: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.responses.lock().unwrap_or_else(|e| e.into_inner()).push(text.clone());
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    /// A request with a token (or none) and a JSON body (or none).
    pub(crate) async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.admin), None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&self.admin), Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, Some(&self.admin), None).await
    }

    /// Creates a member token for `projects` (read-write) and returns its value.
    pub(crate) async fn member(&self, projects: &[&str]) -> String {
        self.member_with(json!(projects)).await
    }

    /// Creates a member token with `grants` (its `projects`) and returns its value.
    pub(crate) async fn member_with(&self, grants: Value) -> String {
        let reply = self.post("/api/v1/tokens", json!({"name": "member", "role": "member", "projects": grants})).await;
        reply.ok(201)["value"].as_str().unwrap_or_else(|| panic!("{}", reply.text)).to_owned()
    }

    /// Creates an `aws-user` credential; returns its id.
    pub(crate) async fn user_credential(&self, name: &str, secret: &str) -> String {
        let reply = self
            .post(
                "/api/v1/storage-credentials",
                json!({"name": name, "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": secret}),
            )
            .await;
        id_of(reply.ok(201))
    }

    /// The number of items a list route returns.
    pub(crate) async fn count(&self, path: &str) -> usize {
        let reply = self.get(path).await;
        reply.ok(200)["items"].as_array().map_or(0, Vec::len)
    }

    pub(crate) fn all_responses(&self) -> String {
        self.responses.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

/// A fresh SQLite store that has never been started on, and the directory that holds it.
pub(crate) async fn empty_store() -> (Store, TempDir) {
    let dir = temp_dir();
    let options = StoreOptions { url: None, max_connections: 4, connect_timeout: Duration::from_secs(5) };
    let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("open: {e:?}"));
    (store, dir)
}

#[track_caller]
pub(crate) fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

/// A valid configuration request body on `credential`.
pub(crate) fn configuration(name: &str, credential: &str) -> Value {
    json!({
        "name": name,
        "region": "eu-central-1",
        "bucket": "customer-bucket",
        "keyPrefix": format!("{}/", name.replace(' ', "-")),
        "credentialId": credential,
    })
}

/// A configuration on `{name}/` of `customer-bucket` in eu-central-1, marked ready.
pub(crate) async fn ready_configuration(app: &TestApp, name: &str) -> String {
    let credential = app.user_credential(&format!("{name} key"), SECRET).await;
    let created = app.post("/api/v1/storage-configurations", configuration(name, &credential)).await;
    let id = id_of(created.ok(201));
    set_status(app, &id, ConfigurationStatus::Ready).await;
    id
}

/// Records a validation that ended in `status`, as the lifecycle would.
pub(crate) async fn set_status(app: &TestApp, id: &str, status: ConfigurationStatus) {
    record(app, id, byos_test_support::validation_outcome(status)).await;
}

/// Records a validation that found the configuration ready on a bucket whose versioning is
/// `versioning`.
pub(crate) async fn set_ready_with(app: &TestApp, id: &str, versioning: byos_domain::VersioningState) {
    set_ready_in(app, id, versioning, None).await;
}

/// [`set_ready_with`], the validation having learned that the bucket is `account`'s.
pub(crate) async fn set_ready_in(
    app: &TestApp,
    id: &str,
    versioning: byos_domain::VersioningState,
    account: Option<&str>,
) {
    let mut outcome = byos_test_support::validation_outcome(ConfigurationStatus::Ready);
    outcome.versioning = Some(versioning);
    outcome.bucket_account = account.map(str::to_owned);
    record(app, id, outcome).await;
}

async fn record(app: &TestApp, id: &str, outcome: byos_catalog::ValidationOutcome) {
    let id = Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    app.state.store().configurations.record_validation(id, &outcome).await.unwrap_or_else(|e| panic!("{e}"));
}

/// A project on `configuration`, in folder `folder`; returns its id.
pub(crate) async fn project(app: &TestApp, name: &str, configuration: &str, folder: &str) -> String {
    let body =
        json!({"name": name, "region": "eu-central-1", "storageConfigurationId": configuration, "folder": folder});
    id_of(app.post("/api/v1/projects", body).await.ok(201))
}

/// A secret access key of AWS's documentation.
pub(crate) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The platform's AWS on `moto`, and the configurations' region, for a test to set buckets up
/// as their owner would.
pub(crate) async fn moto_aws(moto: &byos_test_support::Moto) -> (byos_aws::Aws, byos_domain::AwsRegion) {
    let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some((
            byos_test_support::MOTO_ACCESS_KEY_ID.to_owned(),
            byos_test_support::MOTO_SECRET_ACCESS_KEY.to_owned(),
        )),
        ..Default::default()
    })
    .await;
    (aws, byos_test_support::region("eu-central-1"))
}

/// Polls the job `id` until it has ended; fails when it shows no change for a minute (a hang,
/// never a matter of speed: a running job records its progress after every step).
pub(crate) async fn wait_for_job(app: &TestApp, id: &str) -> Value {
    let path = format!("/api/v1/jobs/{id}");
    let mut seen = app.get(&path).await.ok(200).clone();
    let mut changed = std::time::Instant::now();
    while !["succeeded", "failed", "cancelled"].contains(&seen["status"].as_str().unwrap_or_default()) {
        assert!(changed.elapsed() < Duration::from_secs(60), "the job made no progress for a minute: {seen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = app.get(&path).await.ok(200).clone();
        if now != seen {
            (seen, changed) = (now, std::time::Instant::now());
        }
    }
    seen
}

/// The bucket of [`OnMoto`].
pub(crate) const BUCKET: &str = "customer-bucket";

/// An app on moto, with a ready configuration `{name}/` of [`BUCKET`] on an unversioned bucket.
pub(crate) struct OnMoto {
    pub(crate) moto: byos_test_support::Moto,
    _shim: Option<byos_test_support::MotoShim>,
    pub(crate) app: TestApp,
    pub(crate) bucket: byos_aws::BucketAccess,
    pub(crate) configuration: String,
    pub(crate) setup: byos_aws::Setup,
}

impl OnMoto {
    pub(crate) async fn new(name: &str) -> OnMoto {
        OnMoto::start(name, Default::default(), None, RegionTable::builtin()).await
    }

    /// [`OnMoto::new`], with jobs that run as `jobs` says, and the server talking to moto
    /// through [`byos_test_support::MotoShim`], so that copies in parts complete.
    pub(crate) async fn with_jobs(name: &str, jobs: byos_api::JobSettings) -> OnMoto {
        OnMoto::with_jobs_and_regions(name, jobs, RegionTable::builtin()).await
    }

    /// [`OnMoto::with_jobs`], the server's region table being `regions`.
    pub(crate) async fn with_jobs_and_regions(name: &str, jobs: byos_api::JobSettings, regions: RegionTable) -> OnMoto {
        let moto = byos_test_support::Moto::start();
        let shim = byos_test_support::MotoShim::start(&moto).await;
        OnMoto::start(name, jobs, Some((moto, shim)), regions).await
    }

    async fn start(
        name: &str,
        jobs: byos_api::JobSettings,
        moto: Option<(byos_test_support::Moto, byos_test_support::MotoShim)>,
        regions: RegionTable,
    ) -> OnMoto {
        let (moto, shim) = match moto {
            Some((moto, shim)) => (moto, Some(shim)),
            None => (byos_test_support::Moto::start(), None),
        };
        let endpoint = shim.as_ref().map_or(moto.url(), byos_test_support::MotoShim::url);
        let app = TestApp::with_aws_jobs_and_regions(endpoint, jobs, regions).await;
        let (aws, region) = moto_aws(&moto).await;
        let setup = aws.setup(&region);
        setup.create_bucket(BUCKET).await.unwrap();
        let credential = app.user_credential(&format!("{name} key"), SECRET).await;
        let created = app.post("/api/v1/storage-configurations", configuration(name, &credential)).await;
        let configuration = id_of(created.ok(201));
        set_ready_with(&app, &configuration, byos_domain::VersioningState::Unversioned).await;
        OnMoto { moto, _shim: shim, app, bucket: aws.own_bucket_access(&region), setup, configuration }
    }

    /// A project on the folder `name`, once its import has finished.
    pub(crate) async fn imported_project(&self, name: &str) -> String {
        let id = project(&self.app, name, &self.configuration, name).await;
        let import = format!("/api/v1/projects/{id}/reconcile");
        for _ in 0..600 {
            if self.app.get(&import).await.ok(200)["status"] == "finished" {
                return id;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the import of {name} did not finish: {}", self.app.get(&import).await.text);
    }
}
