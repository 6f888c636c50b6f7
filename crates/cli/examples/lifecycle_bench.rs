//! Benchmark of the storage configuration lifecycle on moto, printing figures (see
//! BENCHMARKS.md):
//!
//! 1. validating and provisioning one configuration: p50 and p95 over `--validations` (20);
//! 2. the first validation of `--configurations` (1,000) new configurations by the worker, with
//!    bounded concurrency: every one must end `ready`;
//! 3. a full re-verify round of them all, already `ready`, driven by the worker's own schedule
//!    (a `reverify_interval` of `--reverify-seconds`, 1, so that it is never idle): the time until
//!    every configuration's `lastVerifiedAt` has advanced, every one still `ready` at the end;
//!    and the API's p99 latency meanwhile, against its p99 when idle, in the same run.
//!
//! `cargo run --release -p byos --example lifecycle_bench -- [--validations N] [--configurations N]
//! [--reverify-seconds N]` with `BYOS_TEST_MOTO` pointing at moto_server (`scripts/test` installs it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use byos_api::AppState;
use byos_aws::{Aws, AwsSettings};
use byos_catalog::{Configuration, ConfigurationSpec, Credential, CredentialIdentity, Store, StoreOptions};
use byos_domain::{AccessKeyId, AwsRegion, BucketName, ConfigurationStatus, KeyPrefix, RegionTable, ResourceName};
use byos_lifecycle::{Lifecycle, LifecycleSettings};
use byos_secrets::MasterKey;
use byos_test_support::{MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, region, temp_dir};
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
    let reverify = Duration::from_secs(arg("--reverify-seconds", 1) as u64);
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
        reverify_interval: reverify,
        tick: Duration::from_millis(200),
        ..LifecycleSettings::default()
    };
    let buckets = byos_buckets::Buckets::new(store.clone(), aws.clone(), key.clone());
    let lifecycle = Lifecycle::new(store.clone(), aws.clone(), buckets.clone(), settings);

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
    let setup = aws.setup(&region(REGION));
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
                region: AwsRegion::parse(REGION).unwrap_or_else(|e| panic!("{e}")),
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

    // The API's latency when idle, the reference for 3.
    let sync = byos_sync::SyncEngine::new(store.clone(), aws.clone(), buckets.clone(), Default::default());
    let state = AppState::new(byos_api::Parts {
        store: store.clone(),
        master_key: key.clone(),
        regions: RegionTable::builtin(),
        buckets: buckets.clone(),
        lifecycle: lifecycle.clone(),
        jobs: byos_api::JobEngine::new(
            store.clone(),
            buckets.clone(),
            sync.clone(),
            Default::default(),
            RegionTable::builtin(),
        ),
        sync,
        data: Default::default(),
    });
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

    // 2. New configurations, all due at once, and the worker let at them: first validations.
    for i in validations..total {
        add(i, true).await;
    }
    let worker = lifecycle.spawn_worker();
    let started = Instant::now();
    loop {
        let statuses = statuses(&store).await;
        let failed: Vec<_> = statuses.iter().filter(|(_, (s, _))| *s == ConfigurationStatus::Error).collect();
        assert!(failed.is_empty(), "{} configurations ended in error, e.g. {:?}", failed.len(), failed.first());
        if statuses.values().all(|(s, _)| *s == ConfigurationStatus::Ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = started.elapsed();
    println!(
        "first validation of {configurations} new configurations (concurrency 16, the queue policy rewritten for \
         each new bucket): {:.1} s, {:.1} validations/s; all {total} ready",
        first.as_secs_f64(),
        configurations as f64 / first.as_secs_f64()
    );

    // 3. A full re-verify round of configurations that are all ready, on the worker's own
    // schedule: the round is over when every `lastVerifiedAt` has moved on.
    let before: HashMap<Uuid, Option<OffsetDateTime>> =
        statuses(&store).await.into_iter().map(|(id, (_, verified))| (id, verified)).collect();
    let started = Instant::now();
    let mut busy = Vec::new();
    loop {
        busy.extend(sample(50).await);
        let now = statuses(&store).await;
        let failed: Vec<_> = now.iter().filter(|(_, (s, _))| *s != ConfigurationStatus::Ready).collect();
        assert!(failed.is_empty(), "{} configurations are no longer ready, e.g. {:?}", failed.len(), failed.first());
        let advanced = now.iter().filter(|(id, (_, verified))| *verified > before[*id]).count();
        if advanced == before.len() {
            break;
        }
    }
    let elapsed = started.elapsed();
    worker.stop(Duration::from_secs(60)).await;
    let end = statuses(&store).await;
    let not_ready: Vec<_> = end.iter().filter(|(_, (s, _))| *s != ConfigurationStatus::Ready).collect();
    assert!(
        not_ready.is_empty(),
        "{} configurations are not ready at the end, e.g. {:?}",
        not_ready.len(),
        not_ready.first()
    );
    let busy_p99 = percentile(&mut busy, 99.0);
    println!(
        "re-verify round: all {total} ready configurations validated again on the worker's schedule \
         (reverify_interval {} s, concurrency 16): {:.1} s, {:.1} re-verifies/s; all {} still ready",
        reverify.as_secs(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        end.len()
    );
    println!(
        "API p99 (GET a configuration): idle {} over {} requests; during the re-verify round {} over {} requests; \
         ratio {:.2}",
        ms(idle_p99),
        idle.len(),
        ms(busy_p99),
        busy.len(),
        busy_p99.as_secs_f64() / idle_p99.as_secs_f64()
    );
}

/// Every configuration's status and `lastVerifiedAt`.
async fn statuses(store: &Store) -> HashMap<Uuid, (ConfigurationStatus, Option<OffsetDateTime>)> {
    store
        .configurations
        .list_configurations()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|c| (c.id, (c.status, c.last_verified_at)))
        .collect()
}
