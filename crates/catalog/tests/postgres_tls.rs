//! TLS to PostgreSQL, against a cluster of the test's own that takes TLS connections only:
//! `sslmode=require` and `prefer` encrypt, `verify-full` checks the server's certificate
//! against `sslrootcert`, and the store opens over TLS.

use std::time::Duration;

use byos_catalog::{Store, StoreOptions};
use byos_domain::ErrorChain;
use byos_test_support::{ThrowawayPostgres, temp_dir};
use sqlx::{Connection, PgConnection};

async fn session_is_encrypted(url: &str) -> bool {
    let mut connection = PgConnection::connect(url).await.unwrap_or_else(|e| panic!("{url}: {}", ErrorChain(&e)));
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("pg_stat_ssl: {e}"));
    let _ = connection.close().await;
    ssl
}

#[tokio::test]
async fn connections_to_postgres_are_encrypted_and_verified() {
    let postgres = ThrowawayPostgres::start_with_tls();
    let base = postgres.url();
    let ca = postgres.ca_certificate().display().to_string();
    let other_ca = postgres.unrelated_ca_certificate().display().to_string();

    assert!(session_is_encrypted(&format!("{base}?sslmode=require")).await);
    assert!(session_is_encrypted(&format!("{base}?sslmode=prefer")).await);
    assert!(session_is_encrypted(&format!("{base}?sslmode=verify-full&sslrootcert={ca}")).await);
    let by_name = base.replace("127.0.0.1", "localhost");
    assert!(session_is_encrypted(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}")).await);

    // The cluster refuses plaintext, so the connections above could only have been TLS.
    let plaintext = PgConnection::connect(&format!("{base}?sslmode=disable")).await.map(|_| ());
    let refused = plaintext.err().map(|e| ErrorChain(&e).to_string()).unwrap_or_default();
    assert!(refused.contains("no encryption"), "{refused}");

    // A certificate no trusted authority signed is refused, and the error says so.
    let wrong = PgConnection::connect(&format!("{base}?sslmode=verify-full&sslrootcert={other_ca}")).await.map(|_| ());
    let refused = wrong.err().map(|e| ErrorChain(&e).to_string()).unwrap_or_default();
    assert!(refused.contains("invalid peer certificate: UnknownIssuer"), "{refused}");

    // The store opens over TLS, applies its migrations and answers.
    let dir = temp_dir();
    let options = StoreOptions {
        url: Some(format!("{base}?sslmode=verify-full&sslrootcert={ca}")),
        max_connections: 2,
        connect_timeout: Duration::from_secs(10),
    };
    let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("{}", ErrorChain(&e)));
    store.meta.ping().await.unwrap_or_else(|e| panic!("{}", ErrorChain(&e)));
    assert_eq!(store.tokens.count_tokens().await.ok(), Some(0));
    store.close().await;
    let wrong = StoreOptions { url: Some(format!("{base}?sslmode=verify-full&sslrootcert={other_ca}")), ..options };
    let refused =
        Store::open(&wrong, dir.path()).await.map(|_| ()).err().map(|e| ErrorChain(&e).to_string()).unwrap_or_default();
    assert!(
        refused.starts_with("could not connect to the database at postgres://postgres@127.0.0.1")
            && refused.contains("invalid peer certificate: UnknownIssuer"),
        "{refused}"
    );
}
