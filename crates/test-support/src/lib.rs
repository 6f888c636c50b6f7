//! Test support: the real peers the tests run against, each started or created fresh on
//! loopback for one test, and removed afterwards.
//!
//! A missing peer is a loud failure with the command that provides it, never a skipped test.

use std::time::Duration;

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
