//! Benchmark of the storage configuration lifecycle on moto, printing figures (see
//! BENCHMARKS.md):
//!
//! 1. validating and provisioning one configuration: p50 and p95 over `--validations` (20);
//! 2. the API's p99 latency while the worker re-verifies `--configurations` (1,000) with
//!    bounded concurrency, against its p99 when idle, measured in the same run.
//!
//! `cargo run --release -p byos --example lifecycle_bench -- [--validations N] [--configurations N]`
//! with `BYOS_TEST_MOTO` pointing at moto_server (`scripts/test` installs it).

use std::time::{Duration, Instant};

use byos_api::AppState;
use byos_aws::{Aws, AwsSettings};
use byos_catalog::{Configuration, ConfigurationSpec, Credential, CredentialIdentity, Store, StoreOptions};
use byos_domain::{AccessKeyId, BucketName, ConfigurationStatus, KeyPrefix, RegionTable, ResourceName};
use byos_lifecycle::{Lifecycle, LifecycleSettings};
use byos_secrets::MasterKey;
use byos_test_support::{MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, temp_dir};
use time::OffsetDateTime;
use uuid::Uuid;

mod support;
use support::percentile;

const REGION: &str = "eu-central-1";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#[tokio::main]
async fn main() {
    let validations = arg("--validations", 20);
    let configurations = arg("--configurations", 1000);
    let moto = Moto::start();
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let dir = temp_dir();
    let options = StoreOptions { url: None, max_connections: 8, connect_timeout: Duration::from_secs(10) };
    let store = Store::open(&options, dir.path()).await.unwrap_or_else(|e| panic!("{e:?}"));
    let key = MasterKey::generate();
    byos_api::check_master_key(&store, &key).await.unwrap_or_else(|e| panic!("{e}"));
    let token = byos_api::ensure_admin_token(&store, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a new store gets a token"))
        .token;
    let settings = LifecycleSettings {
        concurrency: 16,
        reverify_interval: Duration::from_secs(3600),
        tick: Duration::from_millis(200),
        ..LifecycleSettings::default()
    };
    let lifecycle = Lifecycle::new(store.clone(), aws.clone(), key.clone(), settings);

    let credential = Uuid::new_v4();
    store
        .credentials
        .insert_credential(&Credential {
            id: credential,
            name: ResourceName::parse("bench").unwrap_or_else(|e| panic!("{e}")),
            identity: CredentialIdentity::AwsUser {
                access_key_id: AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap_or_else(|e| panic!("{e}")),
            },
            sealed_secret: key.seal(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", credential.as_bytes()),
            created_at: OffsetDateTime::now_utc(),
            updated_at: OffsetDateTime::now_utc(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // One bucket per configuration, as customers have: each validation reads and writes only
    // its own bucket's notifications.
    let setup = aws.setup(REGION);
    let total = validations + configurations;
    let started = Instant::now();
    for i in 0..total {
        setup.create_bucket(&format!("bench-bucket-{i:05}")).await.unwrap_or_else(|e| panic!("{e}"));
    }
    println!("set-up: {total} buckets on moto in {:.1} s", started.elapsed().as_secs_f64());
    let add = |i: usize, due: bool| {
        let store = store.clone();
        async move {
            let id = Uuid::new_v4();
            let now = OffsetDateTime::now_utc();
            let spec = ConfigurationSpec {
                name: ResourceName::parse(&format!("bench {i:05}")).unwrap_or_else(|e| panic!("{e}")),
                region: REGION.to_owned(),
                bucket: BucketName::parse(&format!("bench-bucket-{i:05}")).unwrap_or_else(|e| panic!("{e}")),
                key_prefix: Some(KeyPrefix::parse("data/").unwrap_or_else(|e| panic!("{e}"))),
                credential_id: credential,
                server_side_encryption: None,
                default_for_region: false,
            };
            let mut configuration = Configuration::new(id, spec, now);
            if !due {
                // Not picked up by the worker before the measured phase.
                configuration.next_check_at = Some(now + time::Duration::days(1));
            }
            store.configurations.insert_configuration(&configuration).await.unwrap_or_else(|e| panic!("{e}"));
            id
        }
    };

    // 1. One validation at a time.
    let mut samples = Vec::new();
    for i in 0..validations {
        let id = add(i, false).await;
        let start = Instant::now();
        let c = lifecycle.validate_now(id).await.unwrap_or_else(|e| panic!("{e}"));
        samples.push(start.elapsed());
        assert_eq!(c.status, ConfigurationStatus::Ready, "{c:?}");
    }
    let (p50, p95) = (percentile(&mut samples, 50.0), percentile(&mut samples, 95.0));
    println!("validate + provision one configuration on moto ({validations} runs): p50 {}, p95 {}", ms(p50), ms(p95));

    // 2. The API while the worker re-verifies.
    let sync = byos_sync::SyncEngine::new(store.clone(), aws.clone(), lifecycle.clone(), Default::default());
    let state = AppState::new(store.clone(), key.clone(), RegionTable::builtin(), lifecycle.clone(), sync);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    tokio::spawn(async move { axum::serve(listener, byos_api::router(state)).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap_or_else(|e| panic!("{e}"));
    let first = store.configurations.list_configurations().await.unwrap_or_else(|e| panic!("{e}"))[0].id;
    let probe_url = format!("{base}/api/v1/storage-configurations/{first}");
    let sample = |count: usize| {
        let (client, url, token) = (client.clone(), probe_url.clone(), token.expose().to_owned());
        async move {
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let start = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap_or_else(|e| panic!("{e}"));
                assert!(response.status().is_success());
                let _ = response.bytes().await;
                latencies.push(start.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        }
    };
    let mut idle = sample(400).await;
    let idle_p99 = percentile(&mut idle, 99.0);

    // Configurations that are all due at once, and the worker let at them.
    for i in validations..total {
        add(i, true).await;
    }
    let worker = lifecycle.spawn_worker();
    let started = Instant::now();
    let mut busy = Vec::new();
    loop {
        busy.extend(sample(50).await);
        let remaining = store
            .configurations
            .list_configurations()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .filter(|c| c.status == ConfigurationStatus::Initializing)
            .count();
        if remaining == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    worker.stop(Duration::from_secs(60)).await;
    let busy_p99 = percentile(&mut busy, 99.0);
    println!(
        "re-verify {configurations} configurations (concurrency 16): {:.1} s, {:.1} validations/s",
        elapsed.as_secs_f64(),
        configurations as f64 / elapsed.as_secs_f64()
    );
    println!(
        "API p99 (GET a configuration): idle {} over {} requests; while re-verifying {} over {} requests; ratio {:.2}",
        ms(idle_p99),
        idle.len(),
        ms(busy_p99),
        busy.len(),
        busy_p99.as_secs_f64() / idle_p99.as_secs_f64()
    );
}
