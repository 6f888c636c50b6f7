//! The web console in Chromium, against `byos serve` on this machine, printing figures (see
//! BENCHMARKS.md): a folder of 1,000 entries loaded cold (first contentful paint, and the
//! listing drawn), and the next page drawn after "Load more", each beside the API's own time
//! for the same page (the reference, measured in the same run); and the size of the console's
//! assets, gzipped.
//!
//! The times come from the browser's Performance API: `first-contentful-paint`, and the marks the
//! console sets when a page has its content (`byos:page-drawn`) and when "Load more" has drawn
//! its page (`byos:more-drawn`), each taken at the next animation frame.
//!
//! `cargo run --release -p byos --example console_bench -- [--entries 1000] [--rounds 7]`;
//! needs Chromium and chromedriver (`scripts/test` installs them).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use byos_catalog::KeyUpdate;
use byos_domain::objects::{NULL_VERSION, Observation, ObservedVersion, VersionKind};
use byos_secrets::MasterKey;
use byos_test_support::{Browser, Records, open_store, temp_dir};
use clap::Parser;
use serde_json::{Value, json};

#[path = "support/server.rs"]
#[allow(dead_code, reason = "the benchmarks share this module, and this one uses a part of it")]
mod server;

#[derive(Debug, Parser)]
struct Args {
    /// Entries in the folder.
    #[arg(long, default_value_t = 1000)]
    entries: usize,
    /// Cold loads of the folder (the median is printed).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let byos = server::byos_beside_this_example()?;
    let dir = temp_dir();
    // The catalog is all the folder's page reads: no bucket is reached (a closed port stands
    // for AWS).
    let env = [
        ("BYOS__AWS__ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let server = server::Server::start(&byos, dir.path(), &env)?;
    let token = std::fs::read_to_string(dir.path().join("data/admin-token"))?.trim().to_owned();
    let project = seed(&dir.path().join("data"), args.entries).await?;
    let folder = server.url(&format!("/projects/{project}/data/run/"));
    let api_page = server.url(&format!("/api/v1/projects/{project}/data?path=/run/&limit=200"));

    let browser = Browser::start(1280, 900).await;
    browser.goto(&server.url("/sign-in")).await;
    let input = browser.find("input[name=token]").await;
    browser.type_into(&input, &token).await;
    let submit = browser.find("button[type=submit]").await;
    browser.click(&submit).await;
    browser.find("#nav .who").await;

    let (mut fcp, mut drawn, mut more) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        browser.goto(&folder).await;
        let times = browser.execute_async(PAGE_TIMES, json!([])).await;
        fcp.push(number(&times["fcp"])?);
        drawn.push(number(&times["drawn"])?);
        let next = browser.execute_async(NEXT_PAGE, json!([])).await;
        more.push(number(&next)?);
        ensure!(browser.find_all("tbody tr").await.len() >= 400.min(args.entries), "the second page is not shown");
    }

    // The reference: the API's own answer for the same pages, from a client on this machine.
    let client = reqwest::Client::new();
    let (mut api_first, mut api_next) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let started = Instant::now();
        let page = server::call(&client, reqwest::Method::GET, &api_page, &token, None).await?;
        api_first.push(started.elapsed().as_secs_f64() * 1000.0);
        let next_token = page["nextPageToken"].as_str().context("a page token")?.to_owned();
        let started = Instant::now();
        server::call(&client, reqwest::Method::GET, &format!("{api_page}&pageToken={next_token}"), &token, None)
            .await?;
        api_next.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    let (fcp, drawn, more) = (median(fcp), median(drawn), median(more));
    let (api_first, api_next) = (median(api_first), median(api_next));
    println!("console: a folder of {} entries in pages of 200, median of {} cold loads", args.entries, args.rounds);
    println!("  first contentful paint          {fcp:7.1} ms   (target < 300 ms)");
    println!("  listing drawn (page 1)          {drawn:7.1} ms   API's own time for the page {api_first:6.1} ms");
    println!(
        "  next page drawn (Load more)     {more:7.1} ms   API's own time for the page {api_next:6.1} ms   (target < 100 ms)"
    );
    let (files, raw, gzip) = assets()?;
    println!(
        "  assets: {files} files, {:.1} KiB, {:.1} KiB gzipped   (target < 200 KiB)",
        raw as f64 / 1024.0,
        gzip as f64 / 1024.0
    );
    drop(browser);
    server.stop().await
}

/// Waits for the folder's page to have its content; the paint and mark times since navigation.
const PAGE_TIMES: &str = r"
const done = arguments[arguments.length - 1];
const poll = () => {
  const drawn = performance.getEntriesByName('byos:page-drawn')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  if (drawn && fcp && document.querySelector('tbody tr')) {
    requestAnimationFrame(() => done({ fcp: fcp.startTime, drawn: performance.now() }));
  } else {
    setTimeout(poll, 5);
  }
};
poll();
";

/// Clicks "Load more" and waits for its page to be drawn; the milliseconds it took.
const NEXT_PAGE: &str = r"
const done = arguments[arguments.length - 1];
performance.clearMarks('byos:more-drawn');
const more = [...document.querySelectorAll('button')].find((b) => b.textContent === 'Load more');
const started = performance.now();
more.click();
const poll = () => {
  if (performance.getEntriesByName('byos:more-drawn')[0]) {
    requestAnimationFrame(() => done(performance.now() - started));
  } else {
    setTimeout(poll, 1);
  }
};
poll();
";

fn number(value: &Value) -> Result<f64> {
    value.as_f64().with_context(|| format!("not a time: {value}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A ready configuration, a project, and `entries` files in its folder `run/`, written into the
/// server's store as the sync engine would; the project's id.
async fn seed(data: &Path, entries: usize) -> Result<uuid::Uuid> {
    let store = open_store(data, None).await;
    let key = MasterKey::generate();
    let records = Records { store: &store, key: &key };
    let credential = records.example_access_key().await;
    let configuration = records.configuration(credential.id, "bench-bucket", Some("data/")).await;
    let ready = byos_test_support::validation_outcome(byos_domain::ConfigurationStatus::Ready);
    store.configurations.record_validation(configuration.id, &ready).await?;
    let project = records.project(&configuration, "bench").await;
    let updates: Vec<KeyUpdate> = (0..entries)
        .map(|i| KeyUpdate::Observed {
            key: format!("run/sample-{i:05}.fastq.gz"),
            observation: Observation {
                as_of_ms: 1,
                versions: vec![ObservedVersion {
                    version_id: NULL_VERSION.to_owned(),
                    kind: VersionKind::Object {
                        size: 1_000_000 + i as u64,
                        etag: format!("\"{i:032x}\""),
                        storage_class: Some("STANDARD".to_owned()),
                    },
                    last_modified_ms: 1_764_000_000_000 + i as i64,
                    restore: None,
                }],
            },
            fence: None,
        })
        .collect();
    for batch in updates.chunks(500) {
        store.data.apply(project.id, batch).await?;
    }
    store.close().await;
    Ok(project.id)
}

/// The console's files as the binary embeds them: how many, their bytes, and their bytes once
/// gzipped one by one (`gzip -9`).
fn assets() -> Result<(usize, usize, usize)> {
    let (mut raw, mut gzipped) = (0, 0);
    for asset in byos_console::ASSETS {
        raw += asset.body.len();
        let mut gzip = Command::new("gzip").arg("-9c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        std::io::Write::write_all(gzip.stdin.as_mut().context("gzip's stdin")?, asset.body)?;
        let out = gzip.wait_with_output()?;
        ensure!(out.status.success(), "gzip failed");
        gzipped += out.stdout.len();
    }
    Ok((byos_console::ASSETS.len(), raw, gzipped))
}
