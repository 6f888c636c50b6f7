//! `byos serve` as an operator runs it: first start, restart, shutdown on SIGTERM, the master
//! key and admin token files, both stores, bad configuration.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use byos_test_support::{TempDir, TestPostgres, region, temp_dir};
use serde_json::{Value, json};

/// A running `byos serve`, its output going to files in its data directory's parent.
pub(crate) struct Server {
    child: Child,
    base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

fn byos() -> Command {
    without_test_environment(Command::new(env!("CARGO_BIN_EXE_byos")))
}

/// `byos` started by a shell that sets the umask first, as an operator's shell or a service
/// manager does: files byos creates must be private whatever it is.
fn byos_with_umask(umask: u32) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", &format!("umask {umask:03o} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_byos")]);
    without_test_environment(command)
}

/// The test's own environment must not leak into the server's configuration.
fn without_test_environment(mut command: Command) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("BYOS_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

impl Server {
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
        Server::start_with(byos(), dir, env, extra)
    }

    fn start_with(mut command: Command, dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let stdout = dir.join(format!("stdout-{run}"));
        let stderr = dir.join(format!("stderr-{run}"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr));
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start byos: {e}"));
        let mut server = Server { child, base: String::new(), stdout, stderr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = read(&server.stderr);
            if let Some(at) = log.find("listening on http://") {
                let rest = &log[at + "listening on ".len()..];
                let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
                server.base = rest[..end].to_owned();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("byos exited with {status} before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "byos did not listen within 30 s:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the process to end.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, read(&self.stderr));
            }
            assert!(Instant::now() < deadline, "byos did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn output(&self) -> String {
        format!("{}{}", read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub(crate) async fn call(method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYe2eSECRETKEY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_restart_and_sigterm_on_sqlite() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[], &[]);
    let data = dir.path().join("data");
    let token = read(&data.join("admin-token")).trim().to_owned();
    assert!(token.starts_with("byos_"), "admin-token holds {token:?}");
    assert!(read(&server.stdout).contains(&token), "the first token is shown once on stdout");
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("admin-token")), 0o600);
        assert_eq!(mode(&data.join("master.key")), 0o600);
        assert_eq!(mode(&data), 0o700);
    }
    assert!(data.join("byos.sqlite3").is_file());

    let health = client().get(server.url("/healthz")).send().await.map(|r| r.status().as_u16()).ok();
    assert_eq!(health, Some(200));
    let ready = client().get(server.url("/readyz")).send().await.map(|r| r.status().as_u16()).ok();
    assert_eq!(ready, Some(200));
    let (status, created) = call(
        reqwest::Method::POST,
        &server.url("/api/v1/storage-credentials"),
        &token,
        Some(json!({"name": "e2e", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let (status, log) = server.terminate();
    assert!(status.success(), "byos exited with {status} on SIGTERM:\n{log}");
    assert!(log.contains("SIGTERM received") && log.contains("stopped"), "{log}");

    // A restart keeps the data, the key and the token, and makes no new token.
    let again = Server::start(dir.path(), &[], &[]);
    assert!(!read(&again.stdout).contains("byos_"), "no second admin token: {}", read(&again.stdout));
    let (status, listed) = call(reqwest::Method::GET, &again.url("/api/v1/storage-credentials"), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["name"], json!("e2e"));
    assert_eq!(listed["items"][0]["accessKeyId"], json!("AKIA…MPLE"));
    // Checking a token only reads; its use was written by the time the first run stopped.
    let (status, tokens) = call(reqwest::Method::GET, &again.url("/api/v1/tokens"), &token, None).await;
    assert_eq!(status, 200);
    assert!(tokens["items"][0]["lastUsedAt"].is_string(), "{tokens}");
    let metrics = client().get(again.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains(r#"route="/api/v1/storage-credentials",status="200""#), "{metrics}");
    let output = again.output();
    let (_, last_log) = again.terminate();
    for text in [output, last_log, read(&data.join("byos.sqlite3-wal")), read(&data.join("byos.sqlite3"))] {
        assert!(!text.contains(SECRET), "the secret shows in output or in the database file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_admin_token_is_used_on_first_start() {
    let dir = temp_dir();
    let preset = "operator-chosen-admin-token-0123456789";
    let server = Server::start(dir.path(), &[("BYOS_ADMIN_TOKEN", preset)], &[]);
    assert_eq!(read(&dir.path().join("data/admin-token")).trim(), preset);
    assert!(!read(&server.stdout).contains(preset), "a preset token is not printed");
    let (status, _) = call(reqwest::Method::GET, &server.url("/api/v1/tokens"), preset, None).await;
    assert_eq!(status, 200);
    let (status, body) = call(reqwest::Method::GET, &server.url("/api/v1/tokens"), "byos_wrong", None).await;
    assert_eq!((status, body["code"].clone()), (401, json!("unauthenticated")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_master_key_is_refused() {
    let dir = temp_dir();
    let first = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let other = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let (status, _) = Server::start(dir.path(), &[("BYOS_MASTER_KEY", first)], &[]).terminate();
    assert!(status.success());
    assert!(!dir.path().join("data/master.key").exists(), "a key from the environment is not written");
    let output = byos()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BYOS_MASTER_KEY", other)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not the one this database's secrets are sealed with"), "{stderr}");
    assert!(!stderr.contains(other) && !stderr.contains(first), "keys are never printed");

    // The key from a file works like the one from the environment.
    let key_file = dir.path().join("key");
    byos_secrets::write_private_file(&key_file, format!("{first}\n").as_bytes()).unwrap();
    let key_path = key_file.display().to_string();
    let (status, _) = Server::start(dir.path(), &[("BYOS_MASTER_KEY_FILE", &key_path)], &[]).terminate();
    assert!(status.success());
}

/// Under an operator's usual umask (022), every file byos creates in the data directory is
/// private, the SQLite database's log and shared memory included; a data directory others can
/// read is named in a warning; a master key file others can read stops the start.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_the_data_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    chmod(&data, 0o755);
    let server = Server::start_with(byos_with_umask(0o022), dir.path(), &[], &[]);
    // The store is open: SQLite's log and shared memory exist until it closes.
    let files = ["master.key", "admin-token", "byos.sqlite3", "byos.sqlite3-wal", "byos.sqlite3-shm"];
    let modes: Vec<(&str, String)> =
        files.iter().map(|name| (*name, format!("{:o}", mode(&data.join(name))))).collect();
    let private: Vec<(&str, String)> = files.iter().map(|name| (*name, "600".to_owned())).collect();
    assert_eq!(modes, private);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let warning =
        format!("the data directory is open to others than its owner; make it private: chmod 700 {}", data.display());
    assert!(log.contains(&warning), "no warning about the data directory:\n{log}");

    let refused = |env: &[(&str, &str)]| {
        let output = byos()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let key = data.join("master.key");
    chmod(&key, 0o644);
    let (code, stderr) = refused(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    let shown = key.display();
    assert!(
        stderr.contains(&format!(
            "the master key file {shown} is open to others than its owner (mode 0644); make it private: chmod 600 {shown}"
        )),
        "{stderr}"
    );

    let key_file = dir.path().join("key");
    std::fs::copy(&key, &key_file).unwrap();
    chmod(&key_file, 0o640);
    let key_path = key_file.display().to_string();
    let (code, stderr) = refused(&[("BYOS_MASTER_KEY_FILE", &key_path)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("BYOS_MASTER_KEY_FILE") && stderr.contains(&format!("chmod 600 {key_path}")), "{stderr}");

    chmod(&key_file, 0o600);
    chmod(&data, 0o700);
    let (status, log) = Server::start(dir.path(), &[("BYOS_MASTER_KEY_FILE", &key_path)], &[]).terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("open to others"), "{log}");
}

/// Sends `GET path` on an open connection and reads one response; returns its status line.
async fn exchange(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: byos\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return head.lines().next().unwrap_or_default().to_owned();
            }
        }
        let n = stream.read(&mut chunk).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(n > 0, "the connection closed before the response to {path} was complete: {text:?}");
        received.extend_from_slice(&chunk[..n]);
    }
}

async fn connect(server: &Server) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{address}: {e}"))
}

/// A client that sends half a request line and then nothing is dropped once the header-read
/// timeout passes; the server goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[("BYOS__SERVER__HEADER_READ_TIMEOUT_SECONDS", "1")], &[]);
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /hea").await.unwrap();
    // The end of the connection (EOF, or a reset) is the state waited for; the deadline only
    // keeps a broken server from hanging the test.
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(120), slow.read_to_end(&mut received)).await;
    assert!(ended.is_ok(), "the slow connection is still open");
    assert!(!String::from_utf8_lossy(&received).contains("200 OK"), "{received:?}");
    let mut other = connect(&server).await;
    assert_eq!(exchange(&mut other, "/healthz").await, "HTTP/1.1 200 OK");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// With `server.max_connections` = 2, a third connection is not served while two are open, and
/// is served once one of them closes. SIGTERM still stops the server with connections open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[("BYOS__SERVER__MAX_CONNECTIONS", "2")], &[]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut connection = connect(&server).await;
        assert_eq!(exchange(&mut connection, "/healthz").await, "HTTP/1.1 200 OK");
        open.push(connection);
    }
    // The kernel completes the third connection's handshake; the server does not accept it.
    let mut third = connect(&server).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: byos\r\n\r\n").await.unwrap();
    // The two keep being served meanwhile, so the server is not merely slow.
    for connection in &mut open {
        for _ in 0..3 {
            assert_eq!(exchange(connection, "/healthz").await, "HTTP/1.1 200 OK");
        }
    }
    // Nothing arrives on the third: a slower machine only makes this wait longer, never the
    // check wrong.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "the third connection was answered while two were open: {early:?}");
    drop(open.pop());
    let mut response = Vec::new();
    while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
        let n = third.read(&mut byte).await.unwrap();
        assert!(n > 0, "the third connection closed unanswered: {response:?}");
        response.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200 OK"), "{response:?}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_serves_the_same_api() {
    let postgres = TestPostgres::create().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[("BYOS__DATABASE__URL", postgres.url())], &["--log-format", "json"]);
    let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
    assert!(!dir.path().join("data/byos.sqlite3").exists(), "no SQLite file when PostgreSQL is configured");
    let (status, regions) = call(reqwest::Method::GET, &server.url("/api/v1/regions"), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(regions["items"].as_array().map(Vec::len), Some(12));
    let (status, body) = call(
        reqwest::Method::POST,
        &server.url("/api/v1/storage-credentials"),
        &token,
        Some(json!({"name": "pg key", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                    "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYe2eSECRETKEY"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    // JSON logs: every line is an object with a level and a message.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string() && parsed["fields"].is_object(), "{line}");
    }
    assert!(log.contains("Postgres"), "{log}");
}

/// `database.url` with `sslmode=verify-full` and `sslrootcert`: the server starts over TLS with
/// the right authority and refuses to start, saying why, with another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_verified_tls() {
    let postgres = byos_test_support::ThrowawayPostgres::start_with_tls();
    let dir = temp_dir();
    let url = |ca: &Path| format!("{}?sslmode=verify-full&sslrootcert={}", postgres.url(), ca.display());
    let verified = url(&postgres.ca_certificate());
    let server = Server::start(dir.path(), &[("BYOS__DATABASE__URL", &verified)], &[]);
    let ready = client().get(server.url("/readyz")).send().await.map(|r| r.status().as_u16()).ok();
    assert_eq!(ready, Some(200));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    let output = byos()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BYOS__DATABASE__URL", url(&postgres.unrelated_ca_certificate()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not connect to the database at")
            && stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );
}

#[test]
fn bad_configuration_fails_at_start_with_its_key() {
    let dir: TempDir = temp_dir();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = byos()
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&[("BYOS__SERVER__LISTEN", "nowhere")], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("server.listen"), "{stderr}");
    let (code, stderr) = run(&[("BYOS__DATABASE__URL", "mysql://u:hunter2@db/x")], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("database.url") && !stderr.contains("hunter2"), "{stderr}");
    let (code, stderr) = run(&[], &["--config", "/nonexistent/byos.toml"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
    let (code, stderr) = run(&[("BYOS_MASTER_KEY", "dG9vIHNob3J0")], &["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("BYOS_MASTER_KEY"), "{stderr}");
    let usage = byos().args(["serve", "--no-such-flag"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

/// The lifecycle through the API against moto: a configuration becomes ready; a customer
/// notification that overlaps it, added behind the platform's back, turns it to error at the
/// next background check; removing it heals the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_heals_through_the_background_check() {
    use byos_domain::notifications::{Destination, NotificationConfig, NotificationRule};

    let moto = byos_test_support::Moto::start();
    let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    aws.setup(&region("eu-central-1")).create_bucket("lifecycle-bucket").await.unwrap();
    let dir = temp_dir();
    let env = [
        ("BYOS__AWS__ENDPOINT_URL", moto.url()),
        ("BYOS__LIFECYCLE__REVERIFY_INTERVAL_SECONDS", "1"),
        ("BYOS__LIFECYCLE__RETRY_BASE_SECONDS", "1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let server = Server::start(dir.path(), &env, &[]);
    let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
    let (status, credential) = call(
        reqwest::Method::POST,
        &server.url("/api/v1/storage-credentials"),
        &token,
        Some(json!({"name": "moto key", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{credential}");
    let (status, created) = call(
        reqwest::Method::POST,
        &server.url("/api/v1/storage-configurations"),
        &token,
        Some(json!({"name": "genomics", "region": "eu-central-1", "bucket": "lifecycle-bucket", "keyPrefix": "data/",
                    "credentialId": credential["id"]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/storage-configurations/{}", created["id"].as_str().unwrap_or_default());

    let wait = |want: &'static str| {
        let (url, token) = (server.url(&path), token.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, body) = call(reqwest::Method::GET, &url, &token, None).await;
                if body["status"] == json!(want) {
                    return body;
                }
                assert!(Instant::now() < deadline, "not {want} within 30 s: {body}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ready = wait("ready").await;
    assert_eq!(ready["validation"]["checks"].as_array().map(Vec::len), Some(15), "{ready}");

    let s3 = aws.own_bucket_access(&region("eu-central-1"));
    let mut config = s3.notifications("lifecycle-bucket").await.unwrap();
    let queue = aws.queues(&region("eu-central-1")).ensure("customer-queue").await.unwrap();
    config.rules.retain(|r| !r.id.as_deref().unwrap_or_default().starts_with("gds:"));
    config.rules.push(NotificationRule {
        id: Some("customer-audit".to_owned()),
        destination: Destination::Queue(queue.arn.clone()),
        events: vec!["s3:ObjectCreated:*".to_owned()],
        prefix: None,
        suffix: None,
    });
    s3.put_notifications("lifecycle-bucket", &config).await.unwrap();
    let broken = wait("error").await;
    assert_eq!(
        broken["error"]["message"],
        json!(
            "Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification"
        ),
        "{broken}"
    );

    s3.put_notifications("lifecycle-bucket", &NotificationConfig::default()).await.unwrap();
    let healed = wait("ready").await;
    assert_eq!(healed["error"], Value::Null);
    let metrics = client().get(server.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains(r#"byos_configuration_status_changes_total{from="ready",to="error"}"#), "{metrics}");
    assert!(metrics.contains(r#"byos_configuration_status_changes_total{from="error",to="ready"}"#), "{metrics}");
    let (status, _) = server.terminate();
    assert!(status.success());
}

/// schemathesis (PyPI) against the OpenAPI document the server serves, as an admin and as a
/// member: no 5xx, every answer as the document describes it (status, content type, headers,
/// body; every 4xx a catalogue body), and requests the document rules out are refused. Bounded
/// in the test run: `BYOS_SCHEMATHESIS_EXAMPLES` (default 10) examples per operation and phase,
/// more for a longer run.
///
/// Its check that every request the document allows is accepted stays off: the document is
/// looser than the server (required fields are written as optional, so that the server can say
/// which one is missing; enumerations and patterns are checked by the services, not described).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_document_says() {
    let program = std::env::var("BYOS_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("BYOS_TEST_SCHEMATHESIS is not set: run the tests with scripts/test, which installs schemathesis")
    });
    let examples = std::env::var("BYOS_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".to_owned());
    let dir = temp_dir();
    // AWS is a closed local port: configurations the run creates fail their validation there.
    let aws = format!("http://127.0.0.1:{}", byos_test_support::free_port());
    let env = [
        ("BYOS__AWS__ENDPOINT_URL", aws.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let server = Server::start(dir.path(), &env, &[]);
    let admin = read(&dir.path().join("data/admin-token")).trim().to_owned();
    let body = json!({"name": "schemathesis member", "role": "member", "projects": []});
    let (status, member) = call(reqwest::Method::POST, &server.url("/api/v1/tokens"), &admin, Some(body)).await;
    assert_eq!(status, 201, "{member}");
    let member = member["value"].as_str().unwrap_or_default().to_owned();
    for (who, token) in [("an admin", admin), ("a member", member)] {
        let output = Command::new(&program)
            .args(["run", &server.url("/api/v1/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
            .args(["--max-examples", &examples, "--seed", "1", "--workers", "2"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "schemathesis as {who} found failures:\n{}\n{}\nthe server's log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            server.output()
        );
    }
}
