//! Test support: the real peers the tests run against (PostgreSQL, moto), each started or
//! created fresh on loopback for one test, and removed afterwards: a database on the shared
//! PostgreSQL server, or a PostgreSQL cluster of its own where a test needs the server's
//! settings (TLS).
//!
//! A missing peer is a loud failure with the command that provides it, never a skipped test.

mod browser;
mod faults;
mod inventory;
mod records;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub use browser::{Browser, Element, LogLine};
pub use faults::{Call, Fault, FaultPlan, FaultProxy, Injected};
pub use inventory::{ReportRow, csv_inventory, put_report};
pub use records::{
    EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY, REGION, Records, StoreWithProject, open_store, region,
    unreachable_aws, validation_outcome,
};
pub use tempfile::TempDir;

/// The PostgreSQL server tests create their databases on. The test command sets
/// `BYOS_TEST_POSTGRES_URL`; without it, the server on this machine's standard port.
pub fn postgres_admin_url() -> String {
    std::env::var("BYOS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, dropped when this value is.
#[derive(Debug)]
pub struct TestPostgres {
    url: String,
    name: String,
    admin_url: String,
}

impl TestPostgres {
    pub async fn create() -> TestPostgres {
        let admin_url = postgres_admin_url();
        let mut admin = connect(&admin_url).await;
        let name = format!("byos_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e}"));
        let _ = admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _database)) => format!("{server}/{name}"),
            None => panic!("BYOS_TEST_POSTGRES_URL {admin_url:?} names no database"),
        };
        TestPostgres { url, name, admin_url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` on the test's database: a test that needs the database itself to fail (a
    /// trigger that refuses a row) sets that up here, with no hook in the product.
    pub async fn execute(&self, sql: &str) {
        let mut conn = connect(&self.url).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Drop runs outside any async context the test may still hold, so the clean-up gets a
        // small runtime of its own on a plain thread.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

async fn connect(url: &str) -> PgConnection {
    let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await;
    match attempt {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url}: {e}\n\
             The test command (scripts/test) starts one; or set BYOS_TEST_POSTGRES_URL"
        ),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s"),
    }
}

/// A PostgreSQL cluster of its own for one test, on a free loopback port, made with the
/// machine's `initdb` and `pg_ctl` (as the `postgres` user when the test runs as root, since
/// `initdb` refuses root). Stopped and removed when dropped.
///
/// [`ThrowawayPostgres::start_with_tls`] accepts TLS connections only, with a certificate for
/// `localhost` and `127.0.0.1` signed by a certificate authority of its own, made with the
/// `openssl` command. [`ThrowawayPostgres::start_stock`] is PostgreSQL as installed, for
/// benchmarks: plain TCP, the default settings (autovacuum, fsync) but for `extra` ones.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// `pg_ctl`'s `-o`: the port, TLS, the socket's folder.
    options: String,
}

impl ThrowawayPostgres {
    pub fn start_with_tls() -> ThrowawayPostgres {
        let (dir, bin, as_postgres) = init_cluster();
        let tls = dir.path().join("tls");
        run(as_postgres, "mkdir", &[tls.as_os_str()]);
        make_certificates(&tls, as_postgres);
        // TLS or nothing over TCP: a connection that got through is an encrypted one.
        std::fs::write(
            dir.path().join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap_or_else(|e| panic!("cannot write pg_hba.conf: {e}"));
        let port = free_port();
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
             -c ssl_cert_file={cert} -c ssl_key_file={key}",
            dir = dir.path().display(),
            cert = tls.join("server.crt").display(),
            key = tls.join("server.key").display(),
        );
        let cluster = ThrowawayPostgres { dir, bin, port, as_postgres, options };
        cluster.start();
        cluster
    }

    /// A cluster with PostgreSQL's default settings but for `extra` (`name=value`), over plain
    /// TCP on loopback.
    pub fn start_stock(extra: &[&str]) -> ThrowawayPostgres {
        let (dir, bin, as_postgres) = init_cluster();
        let port = free_port();
        let mut options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.path().display());
        for setting in extra {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let cluster = ThrowawayPostgres { dir, bin, port, as_postgres, options };
        cluster.start();
        cluster
    }

    /// Starts the cluster (again), on the same port, and waits until it takes connections.
    pub fn start(&self) {
        let log = self.dir.path().join("server.log");
        let started = command(self.as_postgres, self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-o", &self.options, "start"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(
            started.status.success(),
            "PostgreSQL did not start: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the cluster at once, as a crash or a lost network would: every connection breaks.
    pub fn stop(&self) {
        let stopped = command(self.as_postgres, self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(stopped.status.success(), "PostgreSQL did not stop: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    /// The cluster's `postgres` database, as its superuser, without TLS options: add
    /// `?sslmode=...`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The certificate (PEM) of the authority that signed the server's certificate.
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    /// The certificate of another authority, which did not sign the server's.
    pub fn unrelated_ca_certificate(&self) -> PathBuf {
        self.dir.path().join("tls/other-ca.crt")
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = command(self.as_postgres, self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A new cluster's folder (its data in `data/`, trusting local connections), the server's
/// binaries, and whether they run as the `postgres` user.
fn init_cluster() -> (TempDir, PathBuf, bool) {
    let bin = postgres_bin();
    let dir = temp_dir();
    let as_postgres = running_as_root();
    if as_postgres {
        run(false, "chown", &["postgres".as_ref(), dir.path().as_os_str()]);
    }
    let data = dir.path().join("data");
    run(
        as_postgres,
        bin.join("initdb"),
        &["-D".as_ref(), data.as_os_str(), "-U".as_ref(), "postgres".as_ref(), "--auth=trust".as_ref()],
    );
    (dir, bin, as_postgres)
}

/// The newest PostgreSQL server binaries: `BYOS_TEST_POSTGRES_BIN`, or Debian's
/// `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("BYOS_TEST_POSTGRES_BIN") {
        return PathBuf::from(bin);
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql").map(|entries| {
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|v| v.parse::<u32>().ok()))
            .filter(|v| Path::new(&format!("/usr/lib/postgresql/{v}/bin/initdb")).is_file())
            .max()
    });
    match versions {
        Ok(Some(version)) => PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")),
        _ => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: install Debian's \
             postgresql package (scripts/test does when it runs as root), or set BYOS_TEST_POSTGRES_BIN"
        ),
    }
}

fn running_as_root() -> bool {
    let id = Command::new("id").arg("-u").output().unwrap_or_else(|e| panic!("cannot run id: {e}"));
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

fn command(as_postgres: bool, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(as_postgres: bool, program: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr]) {
    let shown = program.as_ref().to_string_lossy().into_owned();
    let output = command(as_postgres, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        output.status.success(),
        "{shown} {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority, another one, and a server certificate for `localhost` and
/// `127.0.0.1` signed by the first, with the `openssl` command; the files belong to the user
/// the server runs as, which PostgreSQL requires of its key.
fn make_certificates(tls: &Path, as_postgres: bool) {
    let openssl = |args: &[&str]| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        run(as_postgres, "openssl", &args);
    };
    let file = |name: &str| tls.join(name).display().to_string();
    for (name, subject) in [("ca", "/CN=byos test CA"), ("other-ca", "/CN=byos unrelated test CA")] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &file(&format!("{name}.key")),
            "-out",
            &file(&format!("{name}.crt")),
            "-days",
            "2",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &file("server.key"),
        "-out",
        &file("server.csr"),
        "-subj",
        "/CN=localhost",
    ]);
    let extensions = tls.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", extensions.display()));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &file("server.csr"),
        "-CA",
        &file("ca.crt"),
        "-CAkey",
        &file("ca.key"),
        "-CAcreateserial",
        "-out",
        &file("server.crt"),
        "-days",
        "2",
        "-extfile",
        &file("server.ext"),
    ]);
    // PostgreSQL refuses a key that others can read.
    run(as_postgres, "chmod", &["600".as_ref(), file("server.key").as_ref()]);
}

/// A fresh, empty directory for one test, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new().prefix("byos-test-").tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// The `x-amz-checksum-crc32` value of `bytes` (base64 of the big-endian CRC-32, IEEE), for a
/// test to put an object with a full-object checksum through plain HTTP, as an SDK would.
pub fn crc32_checksum(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let table: Vec<u32> = (0..256u32)
        .map(|mut c| {
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            c
        })
        .collect();
    let crc = !bytes.iter().fold(!0u32, |crc, &b| table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8));
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// A free TCP port on the loopback interface, never the same one twice in a process: the port
/// is free only until someone binds it, and tests running side by side (each starting a moto of
/// its own) would otherwise now and then be handed the same one, and talk to each other's.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
        if HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}

/// Waits until `child` (a peer called `what`) listens on loopback `port`; panics, saying so,
/// when it exits first or takes more than 30 s.
fn wait_until_listening(child: &mut Child, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|stream| !connected_to_itself(&stream)) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening");
        }
        assert!(Instant::now() < deadline, "{what} did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a loopback connection met no listener but itself: a connect to a port nobody listens
/// on succeeds, now and then, when the kernel picks that same port as the connection's own
/// (TCP's simultaneous open). A server still starting up on that port would look ready.
fn connected_to_itself(stream: &std::net::TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(local), Ok(peer)) if local == peer)
}

/// A moto server of its own for one test: the local AWS (S3, SQS, STS, KMS, IAM). Stopped when
/// dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    url: String,
}

/// The credentials any request to moto may use while IAM enforcement is off.
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";

impl Moto {
    /// Starts `moto_server` from `BYOS_TEST_MOTO` (set by scripts/test) on a free port.
    pub fn start() -> Moto {
        let program = std::env::var("BYOS_TEST_MOTO").unwrap_or_else(|_| {
            panic!("BYOS_TEST_MOTO is not set: run the tests with scripts/test, which installs moto")
        });
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        wait_until_listening(&mut moto.child, port, "moto_server");
        moto
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id, to read what it uses (its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Switches IAM enforcement on: from now on only the IAM users' own keys work, within their
    /// policies. Set the users up first.
    pub async fn enforce_iam(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.url))
            .body("0")
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto reset-auth: {e}"));
        assert!(response.status().is_success(), "moto reset-auth answered {}", response.status());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto behind a shim that reads to the SDK as S3 does. moto 5.2 answers ListParts and
/// CompleteMultipartUpload with the roots `ListPartsResponse` and
/// `CompleteMultipartUploadResponse` where S3 has `...Result`, which the Rust SDK refuses; the
/// shim renames those two roots and passes everything else through unchanged (S3, SQS, STS,
/// presigned requests). Point byos's AWS endpoint here to test multipart uploads on moto.
/// Stopped when dropped.
#[derive(Debug)]
pub struct MotoShim {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl MotoShim {
    pub async fn start(moto: &Moto) -> MotoShim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        let upstream: std::sync::Arc<str> = moto.url().into();
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build().unwrap_or_default();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, client) = (upstream.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (upstream, client) = (upstream.clone(), client.clone());
                        async move { Ok::<_, std::convert::Infallible>(shim_forward(request, &upstream, &client).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        MotoShim { url: format!("http://127.0.0.1:{port}"), task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for MotoShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request passed to moto, its answer's misnamed roots renamed.
async fn shim_forward(
    request: hyper::Request<hyper::body::Incoming>,
    upstream: &str,
    client: &reqwest::Client,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return bad_gateway(format!("reading the request: {e}")),
    };
    forward(hyper::Request::from_parts(parts, http_body_util::Full::new(body)), upstream, client).await
}

fn bad_gateway(what: String) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(what)));
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}

/// One request, read whole, passed to moto (or another peer at `upstream`); moto's misnamed
/// multipart roots renamed in its answer.
pub(crate) async fn forward(
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    upstream: &str,
    client: &reqwest::Client,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let failed = bad_gateway;
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let target = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut forwarded = client.request(parts.method, target).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH && name != hyper::header::EXPECT {
            forwarded = forwarded.header(name, value);
        }
    }
    let answer = match forwarded.send().await {
        Ok(answer) => answer,
        Err(e) => return failed(format!("moto: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return failed(format!("moto's answer: {e}")),
    };
    let mut rewritten = false;
    if bytes.starts_with(b"<?xml") {
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("<ListPartsResponse") || text.contains("<CompleteMultipartUploadResponse") {
            let renamed = text
                .replace("ListPartsResponse", "ListPartsResult")
                .replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult");
            bytes = bytes::Bytes::from(renamed);
            rewritten = true;
        }
    }
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes));
    *response.status_mut() = status;
    // moto's Content-Length stays (a HEAD's is the object's size, its body empty), but for a
    // renamed body, whose length hyper sets.
    for (name, value) in &headers {
        let length = name == hyper::header::CONTENT_LENGTH;
        if (!length || !rewritten) && name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONNECTION {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// An s3s-fs server of its own for one test: S3 over a folder, checking SigV4 signatures
/// (presigned URLs included) for one access key, which moto does not. No versioning,
/// notifications or CORS. Stopped, and its folder removed, when dropped.
#[derive(Debug)]
pub struct S3sFs {
    child: Child,
    url: String,
    root: TempDir,
}

impl S3sFs {
    /// Starts `s3s-fs` from `BYOS_TEST_S3S_FS` (set by scripts/test) on a free port, taking
    /// requests signed with `access_key_id` and `secret_access_key` only.
    pub fn start(access_key_id: &str, secret_access_key: &str) -> S3sFs {
        let program = std::env::var("BYOS_TEST_S3S_FS").unwrap_or_else(|_| {
            panic!("BYOS_TEST_S3S_FS is not set: run the tests with scripts/test, which installs s3s-fs")
        });
        let root = temp_dir();
        let port = free_port();
        let child = Command::new(&program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key_id, "--secret-key", secret_access_key])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut server = S3sFs { child, url: format!("http://127.0.0.1:{port}"), root };
        wait_until_listening(&mut server.child, port, "s3s-fs");
        server
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes an object straight into the served folder (a bucket is a folder, a key a path).
    pub fn put_file(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.root.path().join(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's STS with one rule of AWS's that moto lacks: a role whose trust policy requires an
/// external id (`StringEquals sts:ExternalId`) refuses an AssumeRole that carries none; moto lets
/// it through. Tests of the confused-deputy check point STS here (AWS's per-service endpoint);
/// every other request goes to moto as it is. Stopped when dropped.
#[derive(Debug)]
pub struct StsGate {
    url: String,
    task: tokio::task::JoinHandle<()>,
    assumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StsGate {
    /// Serves on a free loopback port, for `moto`, refusing AssumeRole without an external id
    /// for the roles in `strict` (their ARNs).
    pub async fn start(moto: &Moto, strict: &[String]) -> StsGate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        let (upstream, strict) = (moto.url().to_owned(), strict.to_vec());
        let client = reqwest::Client::new();
        let assumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = assumed.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, strict, client, counted) =
                    (upstream.clone(), strict.clone(), client.clone(), counted.clone());
                tokio::spawn(async move {
                    let _ = sts_gate_serve(stream, &upstream, &strict, &client, &counted).await;
                });
            }
        });
        StsGate { url: format!("http://127.0.0.1:{port}"), task, assumed }
    }

    /// How many AssumeRole calls (of any role, with or without an external id) reached it.
    pub fn assume_role_calls(&self) -> u64 {
        self.assumed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for StsGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: requests read by their Content-Length (STS's are small form posts), each
/// answered by the rule or by moto.
async fn sts_gate_serve(
    mut stream: tokio::net::TcpStream,
    upstream: &str,
    strict: &[String],
    client: &reqwest::Client,
    assumed: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if field("Action").as_deref() == Some("AssumeRole") {
            assumed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let refused = field("Action").as_deref() == Some("AssumeRole")
            && field("ExternalId").is_none()
            && field("RoleArn").is_some_and(|arn| strict.contains(&arn));
        let (status, content_type, answer) = if refused {
            let xml = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                <Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole \
                (the role's trust policy requires an external id)</Message></Error>\
                <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>";
            (403, "text/xml".to_owned(), xml.as_bytes().to_vec())
        } else {
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            let method = request_line.split(' ').next().unwrap_or("POST");
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
            let mut request = client.request(method, format!("{upstream}{path}")).body(body);
            for (k, v) in &headers {
                if k != "host" && k != "content-length" && k != "connection" {
                    request = request.header(k.as_str(), v.as_str());
                }
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("text/xml")
                        .to_owned();
                    (status, content_type, response.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
                }
                Err(e) => (502, "text/plain".to_owned(), e.to_string().into_bytes()),
            }
        };
        let head = format!(
            "HTTP/1.1 {status} Gate\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket bound to a port and connected to that same port, nothing listening there,
    /// connects to itself; `wait_until_listening` must not take that for the server it waits for.
    #[tokio::test]
    async fn a_connection_to_itself_is_not_a_listener() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let own = socket.local_addr().unwrap();
        let stream = socket.connect(own).await.unwrap().into_std().unwrap();
        assert!(connected_to_itself(&stream), "{own}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!connected_to_itself(&stream));
    }
}
