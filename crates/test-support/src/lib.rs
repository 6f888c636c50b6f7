//! Test support: the real peers the tests run against (PostgreSQL, moto), each started or
//! created fresh on loopback for one test, and removed afterwards.
//!
//! A missing peer is a loud failure with the command that provides it, never a skipped test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

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

/// A fresh, empty directory for one test, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new().prefix("byos-test-").tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "moto_server did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn url(&self) -> &str {
        &self.url
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
