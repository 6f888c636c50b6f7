//! A project's data: `ls`, `cp`, `mv`, `rm`, `mkdir`, versions, restores.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use byos_client::transfer::{Conflict, Direction, Filters, MIB, Summary, Transfer, TransferSettings};
use byos_client::{Api, Change, ClientError, Entry, ProjectRemote};
use clap::Args;

use super::admin::{job_exit, show_job};
use super::output::{Out, human_bytes, line, table};
use super::progress::{Bars, wait_for_job};
use super::{Location, Target, number_and_unit, partial, project_id};

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// PROJECT:/folder/ (or a file).
    target: String,
    /// Size, last modified and storage class.
    #[arg(short, long)]
    long: bool,
    /// Every file below the folder, by its path.
    #[arg(short = 'R', long)]
    recursive: bool,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// A local path, or PROJECT:/path.
    source: String,
    /// A local path, or PROJECT:/path (a path ending in / is a folder).
    destination: String,
    /// Copy a folder's contents into the destination folder. Between two projects the copy is
    /// a job on the server (server-side; --concurrency and --part-size are the server's then).
    #[arg(short, long)]
    recursive: bool,
    /// Only files whose path below the source matches (a glob; `*` crosses folders).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out files whose path below the source matches.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Replace files that exist at the destination.
    #[arg(long, group = "conflict")]
    overwrite: bool,
    /// Keep files that exist at the destination; skip those.
    #[arg(long, group = "conflict")]
    no_clobber: bool,
    /// Replace files that exist at the destination only when their size differs.
    #[arg(long, group = "conflict")]
    if_size_differ: bool,
    /// Print the files that would be copied; copy nothing.
    #[arg(long)]
    dry_run: bool,
    /// Requests in flight at once, across all files.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Files above this size go in parts of it (5MiB to 5GiB), and come down in ranges of it.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    part_size: u64,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

#[derive(Debug, Args)]
pub(crate) struct MvArgs {
    /// PROJECT:/path
    source: String,
    /// PROJECT:/path; in another project, the folder the source moves into (by a job).
    destination: String,
    /// Replace a file at the destination.
    #[arg(long)]
    overwrite: bool,
    /// Do not wait for a folder's move job.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// PROJECT:/path
    target: String,
    /// Delete a folder and everything below it (a job).
    #[arg(short, long)]
    recursive: bool,
    /// Do not wait for a folder's delete job.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

#[derive(Debug, Args)]
pub(crate) struct ArchiveRestoreArgs {
    /// PROJECT:/path of an archived file.
    target: String,
    /// How many days the restored copy stays (1 to 365).
    #[arg(long)]
    days: u64,
    /// `Standard`, `Bulk` or `Expedited`.
    #[arg(long)]
    tier: Option<String>,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

/// `16MiB`, `8M`, `1GiB`, `1048576`: a size in bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text, "a size such as 16MiB")?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => 1024 * MIB,
        _ => return Err(format!("{text:?}: the unit is one of B, KiB, MiB, GiB")),
    };
    let size = number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))?;
    if !(5 * MIB..=5 * 1024 * MIB).contains(&size) {
        return Err(format!("{text:?} is not 5MiB to 5GiB, the part sizes S3 takes"));
    }
    Ok(size)
}

pub(crate) async fn ls(api: &Api, args: LsArgs, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(&args.target)?;
    let project = project_id(api, &target.project).await?;
    let mut folder = target.path.clone();
    if !folder.ends_with('/') {
        let entry = api.entry(&project, &folder).await?.ok_or_else(|| missing(&target))?;
        if !entry.is_folder() {
            return print_entry(&entry, &args, out, "");
        }
        folder.push('/');
    }
    // Depth first, in name order; pages printed as they come.
    let mut folders = vec![folder.clone()];
    while let Some(current) = folders.pop() {
        let mut token: Option<String> = None;
        let mut below = Vec::new();
        loop {
            let page = api.browse(&project, &current, token.as_deref()).await?;
            for entry in &page.items {
                if args.recursive && entry.is_folder() {
                    below.push(entry.path.clone());
                    continue;
                }
                let prefix = if args.recursive { "" } else { current.as_str() };
                print_entry(entry, &args, out, prefix)?;
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        folders.extend(below.into_iter().rev());
    }
    Ok(())
}

/// One entry: its name below the listed folder (`prefix`), or its whole path.
fn print_entry(entry: &Entry, args: &LsArgs, out: Out, prefix: &str) -> Result<(), ClientError> {
    if out.json() {
        return out.json_line(entry);
    }
    let name = entry.path.strip_prefix(prefix).filter(|n| !n.is_empty()).unwrap_or(&entry.path);
    if !args.long {
        return line(name);
    }
    let size = if entry.is_folder() { "-".to_owned() } else { human_bytes(entry.size.unwrap_or_default()) };
    let modified = entry.last_modified.clone().unwrap_or_else(|| "-".to_owned());
    let class = entry.storage_class.clone().unwrap_or_else(|| "-".to_owned());
    line(&format!("{size:>10}  {modified:<20}  {class:<12}  {name}"))
}

fn missing(target: &Target) -> ClientError {
    ClientError::Usage(format!("{}:{}: no such file or folder", target.project, target.path))
}

pub(crate) async fn cp(api: &Api, args: CpArgs, out: Out) -> Result<ExitCode, ClientError> {
    let conflict = match (args.overwrite, args.no_clobber, args.if_size_differ) {
        (true, _, _) => Conflict::Overwrite,
        (_, true, _) => Conflict::Skip,
        (_, _, true) => Conflict::IfSizeDiffers,
        _ => Conflict::Refuse,
    };
    let (direction, target) = match (Location::parse(&args.source), Location::parse(&args.destination)) {
        (Location::Local(from), Location::Project(to)) => (Direction::Upload { from, to: to.path.clone() }, to),
        (Location::Project(from), Location::Local(to)) => (Direction::Download { from: from.path.clone(), to }, from),
        (Location::Project(from), Location::Project(to)) => {
            let on_conflict = match conflict {
                Conflict::Overwrite => "overwrite",
                Conflict::Skip => "skip",
                Conflict::Refuse => "fail",
                Conflict::IfSizeDiffers => {
                    return Err(ClientError::Usage(
                        "--if-size-differ is for uploads and downloads; a copy between projects skips (--no-clobber), overwrites (--overwrite) or fails on what is there"
                            .to_owned(),
                    ));
                }
            };
            let job = CopyJob {
                remove_sources: false,
                contents: true,
                recursive: args.recursive,
                on_conflict,
                include: args.include,
                exclude: args.exclude,
                dry_run: args.dry_run,
                no_wait: false,
            };
            return copy_between(api, &from, &to, job, out).await;
        }
        (Location::Local(_), Location::Local(_)) => {
            return Err(ClientError::Usage(
                "neither path is a project's (PROJECT:/path): use cp(1) for local copies".to_owned(),
            ));
        }
    };
    let project = project_id(api, &target.project).await?;
    let upload = matches!(direction, Direction::Upload { .. });
    if upload {
        // Read-write access, asked before anything moves: a `read` member is refused here.
        api.uploads(&project).await?;
    }
    let settings = TransferSettings {
        concurrency: usize::from(args.concurrency),
        part_size: args.part_size,
        ..TransferSettings::default()
    };
    let transfer = Transfer {
        direction,
        recursive: args.recursive,
        filters: Filters::new(&args.include, &args.exclude)?,
        conflict,
        dry_run: args.dry_run,
        settings,
    };
    let verb = if upload { "upload" } else { "download" };
    let bars = Arc::new(Bars::new(out, verb, args.dry_run, args.part_size));
    let remote = Arc::new(ProjectRemote { api: api.clone(), project });
    let started = Instant::now();
    let summary = transfer.run(remote, api.http().clone(), bars.clone()).await?;
    bars.finish();
    report(&summary, verb, args.dry_run, started, out)?;
    Ok(partial(summary.failed.len()))
}

/// A copy or move between projects, as the command line asked for it.
struct CopyJob {
    remove_sources: bool,
    /// A folder's contents go into the destination folder (`cp -r`, as `aws s3 cp
    /// --recursive`); otherwise the folder itself does (`mv`, as mv(1) into a folder).
    contents: bool,
    recursive: bool,
    on_conflict: &'static str,
    include: Vec<String>,
    exclude: Vec<String>,
    dry_run: bool,
    no_wait: bool,
}

/// The most source paths one job takes (the server's limit).
const PATHS_PER_JOB: usize = 1_000;

/// A copy between projects: a job on the server (server-side copies, verified, resumable),
/// waited for with its progress bar. A folder's contents are its entries, each a path of the
/// job (more than 1,000 make several jobs, one after the other).
async fn copy_between(api: &Api, from: &Target, to: &Target, job: CopyJob, out: Out) -> Result<ExitCode, ClientError> {
    let (source, destination) = (project_id(api, &from.project).await?, project_id(api, &to.project).await?);
    let folder = from.path.ends_with('/')
        || api.entry(&source, &from.path).await?.ok_or_else(|| missing(from))?.is_folder() && from.path != "/";
    if folder && !job.recursive {
        return Err(ClientError::Usage(format!(
            "{}:{} is a folder: add -r to copy what it holds",
            from.project, from.path
        )));
    }
    let into = match (to.path.ends_with('/'), folder) {
        (true, _) => to.path.clone(),
        (false, true) => format!("{}/", to.path),
        (false, false) => {
            return Err(ClientError::Usage(format!(
                "{}:{}: a copy between projects keeps each file's name: give the destination folder, ending with '/'",
                to.project, to.path
            )));
        }
    };
    let mut paths = Vec::new();
    if folder && job.contents {
        let path = if from.path.ends_with('/') { from.path.clone() } else { format!("{}/", from.path) };
        let mut token = None;
        loop {
            let page = api.browse(&source, &path, token.as_deref()).await?;
            paths.extend(page.items.iter().map(|e| {
                if e.is_folder() && !e.path.ends_with('/') { format!("{}/", e.path) } else { e.path.clone() }
            }));
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
    } else {
        paths.push(if folder && !from.path.ends_with('/') { format!("{}/", from.path) } else { from.path.clone() });
    }
    if paths.is_empty() {
        out.note(&format!("{}:{} is empty: nothing to copy", from.project, from.path));
        return Ok(ExitCode::SUCCESS);
    }
    let mut exit = ExitCode::SUCCESS;
    for chunk in paths.chunks(PATHS_PER_JOB) {
        let body = serde_json::json!({
            "type": if job.remove_sources { "move" } else { "copy" },
            "source": {"projectId": source, "paths": chunk},
            "destination": {"projectId": destination, "path": into},
            "onConflict": job.on_conflict,
            "include": job.include,
            "exclude": job.exclude,
            "dryRun": job.dry_run,
        });
        let started = api.start_copy(body).await?;
        if job.no_wait {
            show_job(&started, out)?;
            continue;
        }
        out.note(&format!(
            "job {} ({} {}:{} -> {}:{into})",
            started.id, started.kind, from.project, from.path, to.project
        ));
        let ended = wait_for_job(api, out, started).await?;
        if job.dry_run && !out.json() {
            print_plan(api, &ended.id).await?;
        }
        show_job(&ended, out)?;
        if job_exit(&ended) != ExitCode::SUCCESS {
            exit = job_exit(&ended);
        }
    }
    Ok(exit)
}

/// A dry run's plan, from the job's report: what would be copied where.
async fn print_plan(api: &Api, job: &str) -> Result<(), ClientError> {
    let mut report = api.job_report(job, false).await?;
    let mut pending = String::new();
    let unreadable =
        |e: reqwest::Error| ClientError::Status { status: 200, body: format!("the report broke off: {e}") };
    while let Some(chunk) = report.chunk().await.map_err(unreadable)? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let text: String = pending.drain(..=end).collect();
            let Ok(object) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let field = |name: &str| object[name].as_str().unwrap_or_default().to_owned();
            line(&format!("{:<8} {} -> {}", field("result"), field("source"), field("destination")))?;
        }
    }
    Ok(())
}

/// The end of a transfer: what moved, what was skipped, each failure with its fix.
fn report(summary: &Summary, verb: &str, dry_run: bool, started: Instant, out: Out) -> Result<(), ClientError> {
    let seconds = started.elapsed().as_secs_f64();
    if out.json() {
        let failed: Vec<_> = summary
            .failed
            .iter()
            .map(|(item, e)| {
                serde_json::json!({
                    "source": item.source, "destination": item.destination, "error": e.to_string(),
                    "code": e.code(),
                })
            })
            .collect();
        return out.value(&serde_json::json!({
            "action": verb, "dryRun": dry_run, "files": summary.files, "bytes": summary.bytes,
            "skipped": summary.skipped, "failed": failed, "seconds": seconds,
        }));
    }
    for (item, e) in &summary.failed {
        super::output::error(&ClientError::Usage(format!("{} -> {}: {e}", item.source, item.destination)));
        if let Some(problem) = e.problem() {
            out.note(&format!("  fix: {}", problem.fix));
        }
    }
    let rate = if seconds > 0.0 { summary.bytes as f64 / seconds } else { 0.0 };
    let planned = if dry_run { " would be" } else { "" };
    out.note(&format!(
        "{} files ({}){planned} {verb}ed in {seconds:.1} s ({}/s); {} skipped, {} failed",
        summary.files,
        human_bytes(summary.bytes),
        human_bytes(rate as u64),
        summary.skipped,
        summary.failed.len()
    ));
    Ok(())
}

pub(crate) async fn mv(api: &Api, args: MvArgs, out: Out) -> Result<ExitCode, ClientError> {
    let (from, to) = (Target::parse(&args.source)?, Target::parse(&args.destination)?);
    let project = project_id(api, &from.project).await?;
    if project_id(api, &to.project).await? != project {
        let job = CopyJob {
            remove_sources: true,
            contents: false,
            recursive: true,
            on_conflict: if args.overwrite { "overwrite" } else { "fail" },
            include: Vec::new(),
            exclude: Vec::new(),
            dry_run: false,
            no_wait: args.no_wait,
        };
        return copy_between(api, &from, &to, job, out).await;
    }
    let change = api.move_path(&project, &from.path, &to.path, args.overwrite).await?;
    changed(api, change, args.no_wait, out).await
}

pub(crate) async fn rm(api: &Api, args: RmArgs, out: Out) -> Result<ExitCode, ClientError> {
    let target = Target::parse(&args.target)?;
    let project = project_id(api, &target.project).await?;
    let mut path = target.path.clone();
    if args.recursive && !path.ends_with('/') {
        let entry = api.entry(&project, &path).await?.ok_or_else(|| missing(&target))?;
        if entry.is_folder() {
            path.push('/');
        }
    }
    if path.ends_with('/') && !args.recursive {
        return Err(ClientError::Usage(format!(
            "{}:{path} is a folder: add -r to delete it and all it holds",
            target.project
        )));
    }
    let change = api.delete(&project, &path).await?;
    changed(api, change, args.no_wait, out).await
}

/// A file changed at once, or a job: waited for with its progress unless `no_wait`.
async fn changed(api: &Api, change: Change, no_wait: bool, out: Out) -> Result<ExitCode, ClientError> {
    match change {
        Change::Done(Some(entry)) => {
            if out.json() {
                out.value(&entry)?;
            } else {
                out.note(&format!("now at {}", entry.path));
            }
            Ok(ExitCode::SUCCESS)
        }
        Change::Done(None) => Ok(ExitCode::SUCCESS),
        Change::Job(job) if no_wait => {
            show_job(&job, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Change::Job(job) => {
            out.note(&format!("job {} ({} {})", job.id, job.kind, job.path));
            let job = wait_for_job(api, out, *job).await?;
            show_job(&job, out)?;
            Ok(job_exit(&job))
        }
    }
}

pub(crate) async fn mkdir(api: &Api, target: &str, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(target)?;
    let project = project_id(api, &target.project).await?;
    let path = if target.path.ends_with('/') { target.path.clone() } else { format!("{}/", target.path) };
    let entry = api.create_folder(&project, &path).await?;
    if out.json() {
        return out.value(&entry);
    }
    out.note(&format!("created {}", entry.path));
    Ok(())
}

pub(crate) async fn versions(api: &Api, target: &str, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(target)?;
    let project = project_id(api, &target.project).await?;
    let versions = api.versions(&project, &target.path).await?;
    if out.json() {
        return out.value(&versions);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            let what = match (v.is_delete_marker, v.is_latest) {
                (true, true) => "delete marker (latest)",
                (true, false) => "delete marker",
                (false, true) => "latest",
                (false, false) => "",
            };
            let size = if v.is_delete_marker { "-".to_owned() } else { human_bytes(v.size) };
            vec![v.version_id.clone(), size, v.last_modified.clone().unwrap_or_default(), what.to_owned()]
        })
        .collect();
    table(&["VERSION", "SIZE", "LAST MODIFIED", ""], &rows)
}

pub(crate) async fn restore_version(api: &Api, target: &str, version: &str, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(target)?;
    let project = project_id(api, &target.project).await?;
    let entry = api.restore_version(&project, &target.path, version).await?;
    if out.json() {
        return out.value(&entry);
    }
    out.note(&format!("{} is version {version} again", entry.path));
    Ok(())
}

pub(crate) async fn undelete(api: &Api, target: &str, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(target)?;
    let project = project_id(api, &target.project).await?;
    let entry = api.undelete(&project, &target.path).await?;
    if out.json() {
        return out.value(&entry);
    }
    out.note(&format!("{} is back", entry.path));
    Ok(())
}

pub(crate) async fn archive_restore(api: &Api, args: ArchiveRestoreArgs, out: Out) -> Result<(), ClientError> {
    let target = Target::parse(&args.target)?;
    let project = project_id(api, &target.project).await?;
    let answer = api.archive_restore(&project, &target.path, args.days, args.tier.as_deref()).await?;
    if out.json() {
        return out.value(&answer);
    }
    out.note(&format!("restore of {} asked for {} days; S3 makes it readable when it is done", target.path, args.days));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_the_units_people_write() {
        assert_eq!(parse_size("16MiB"), Ok(16 * MIB));
        assert_eq!(parse_size("8M"), Ok(8 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(1024 * MIB));
        assert_eq!(parse_size("5242880"), Ok(5 * MIB));
        assert!(parse_size("1MiB").unwrap_err().contains("5MiB to 5GiB"));
        assert!(parse_size("16 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
