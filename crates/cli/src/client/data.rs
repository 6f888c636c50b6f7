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
    /// Copy a folder's contents into the destination folder.
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
    /// PROJECT:/path, in the same project.
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
        (Location::Project(_), Location::Project(_)) => {
            return Err(ClientError::Usage(
                "a copy from a project to a project is a copy job, which this server does not offer yet; \
                 download and upload instead, or use `byos mv` within a project"
                    .to_owned(),
            ));
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
                    "code": e.problem().map(|p| p.code.clone()),
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
        return Err(ClientError::Usage(
            "a move between projects is a copy job, which this server does not offer yet".to_owned(),
        ));
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
