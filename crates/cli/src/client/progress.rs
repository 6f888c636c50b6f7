//! Progress of transfers and jobs: with a terminal on stderr, a bar for the total (bytes,
//! files, rate, ETA) and one per large file in flight; without one, no bars, and a line per file
//! with `--verbose`. A dry run prints each planned file on stdout.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use byos_client::transfer::{Item, Outcome, Progress};
use byos_client::{ClientError, Job};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{Out, human_bytes, line};

/// The progress of one transfer.
#[derive(Debug)]
pub(crate) struct Bars {
    out: Out,
    /// Plan only: print each file.
    dry_run: bool,
    /// `upload` or `download`, for the planned lines.
    verb: &'static str,
    /// Files above this size get a bar of their own.
    large: u64,
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<String, ProgressBar>>,
    drawn: bool,
    planned_files: AtomicU64,
    ended_files: AtomicU64,
}

impl Bars {
    pub(crate) fn new(out: Out, verb: &'static str, dry_run: bool, large: u64) -> Bars {
        let drawn = std::io::stderr().is_terminal() && !out.quiet && !dry_run;
        let target = if drawn { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        Bars {
            out,
            dry_run,
            verb,
            large,
            multi,
            total,
            files: Mutex::new(HashMap::new()),
            drawn,
            planned_files: AtomicU64::new(0),
            ended_files: AtomicU64::new(0),
        }
    }

    /// Ends the bars, leaving the total on screen.
    pub(crate) fn finish(&self) {
        self.total.finish();
    }

    /// Files ended of those planned so far, beside the total bar.
    fn count_files(&self) {
        let (ended, planned) = (self.ended_files.load(Ordering::Relaxed), self.planned_files.load(Ordering::Relaxed));
        self.total.set_message(format!("{ended}/{planned} files"));
    }
}

impl Progress for Bars {
    fn planned(&self, item: &Item) {
        self.total.inc_length(item.size);
        self.planned_files.fetch_add(1, Ordering::Relaxed);
        self.count_files();
        if self.dry_run {
            let printed = if self.out.json() {
                self.out.json_line(&serde_json::json!({
                    "action": self.verb, "source": item.source, "destination": item.destination, "size": item.size,
                }))
            } else {
                line(&format!("(dry run) {} {} -> {}", self.verb, item.source, item.destination))
            };
            if let Err(e) = printed {
                super::output::error(&e);
            }
        }
    }

    fn started(&self, item: &Item) {
        if self.drawn && item.size > self.large {
            let bar = self.multi.insert_before(&self.total, ProgressBar::new(item.size));
            bar.set_style(
                ProgressStyle::with_template("  {wide_msg} [{bar:20}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(item.destination.clone());
            if let Ok(mut files) = self.files.lock() {
                files.insert(item.source.clone(), bar);
            }
        }
    }

    fn advanced(&self, item: &Item, n: u64) {
        self.total.inc(n);
        if let Ok(files) = self.files.lock()
            && let Some(bar) = files.get(&item.source)
        {
            bar.inc(n);
        }
    }

    fn finished(&self, item: &Item, outcome: &Outcome) {
        if let Ok(mut files) = self.files.lock()
            && let Some(bar) = files.remove(&item.source)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.ended_files.fetch_add(1, Ordering::Relaxed);
        self.count_files();
        let text = match outcome {
            Outcome::Done => {
                format!("{} {} -> {} ({})", self.verb, item.source, item.destination, human_bytes(item.size))
            }
            Outcome::Skipped => format!("skip {} ({} exists)", item.source, item.destination),
            Outcome::Failed(e) => format!("failed {} -> {}: {e}", item.source, item.destination),
        };
        match outcome {
            // Failures are listed at the end, whatever the flags.
            Outcome::Failed(_) => {}
            _ if self.out.verbose && !self.out.json() => {
                self.multi.suspend(|| self.out.note(&text));
            }
            _ => {}
        }
    }
}

/// Waits for a job to end, showing its progress; answers it as it ended.
pub(crate) async fn wait_for_job(api: &byos_client::Api, out: Out, mut job: Job) -> Result<Job, ClientError> {
    let drawn = std::io::stderr().is_terminal() && !out.quiet;
    let bar = if drawn { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} objects {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", job.kind, job.path));
    let mut delay = std::time::Duration::from_millis(200);
    while !job.is_finished() {
        let progress = &job.progress;
        if let Some(total) = progress.objects_total {
            bar.set_length(total);
        }
        bar.set_position(progress.objects_done + progress.objects_skipped + progress.objects_failed);
        bar.set_message(job.status.clone());
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
        job = api.job(&job.id).await?;
    }
    bar.finish_and_clear();
    Ok(job)
}
