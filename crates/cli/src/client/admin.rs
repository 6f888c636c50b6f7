//! `byos projects`, `byos configs`, `byos jobs` and `byos audit`.

use std::process::ExitCode;

use byos_client::{Api, AuditEvent, AuditFilter, ClientError, Configuration, Job};
use clap::{Args, Subcommand};

use super::output::{Out, human_bytes, line, more_rows, table};
use super::progress::wait_for_job;
use super::{Common, project_id};

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectsCommand {
    /// The projects this token can see.
    Ls,
    /// One project.
    Show {
        /// The project's name or id.
        project: String,
    },
    /// Create a project: a folder of a ready storage configuration (admin).
    Create {
        #[arg(long)]
        name: String,
        /// The storage configuration's name or id.
        #[arg(long)]
        configuration: String,
        /// The project's folder below the configuration's prefix.
        #[arg(long)]
        folder: String,
    },
    /// Delete a project (admin); its data stays in the bucket.
    Rm {
        /// The project's name or id.
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigsCommand {
    /// The storage configurations (admin).
    Ls,
    /// One configuration with its last validation report.
    Show {
        /// The configuration's name or id.
        configuration: String,
    },
    /// Validate a configuration now; exits 1 unless it is ready.
    Validate {
        /// The configuration's name or id.
        configuration: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Jobs, newest first.
    Ls {
        /// Only this project's (name or id).
        #[arg(long)]
        project: Option<String>,
    },
    /// One job.
    Show { job: String },
    /// Wait for a job to end, with its progress; exits 1 unless it succeeded.
    Wait { job: String },
    /// Ask a job to stop at its next step.
    Cancel { job: String },
    /// A copy job's report, one line per object: JSON lines, or CSV.
    Report {
        job: String,
        /// CSV (source, versionId, destination, bytes, result, error) instead of JSON lines.
        #[arg(long)]
        csv: bool,
    },
}

pub(crate) async fn projects(api: &Api, command: ProjectsCommand, out: Out) -> Result<(), ClientError> {
    match command {
        ProjectsCommand::Ls => {
            let projects = api.projects().await?;
            if out.json() {
                return out.value(&projects);
            }
            let rows: Vec<Vec<String>> = projects
                .iter()
                .map(|p| vec![p.id.clone(), p.name.clone(), field(&p.rest, "region"), field(&p.rest, "keyPrefix")])
                .collect();
            table(&["ID", "NAME", "REGION", "S3 PREFIX"], &rows)
        }
        ProjectsCommand::Show { project } => {
            let project = api.project(&project_id(api, &project).await?).await?;
            if out.json() {
                return out.value(&project);
            }
            let mut rows =
                vec![vec!["id".to_owned(), project.id.clone()], vec!["name".to_owned(), project.name.clone()]];
            rows.extend(project.rest.iter().map(|(k, v)| vec![k.clone(), plain(v)]));
            table(&["FIELD", "VALUE"], &rows)
        }
        ProjectsCommand::Create { name, configuration, folder } => {
            let configuration = configuration_id(api, &configuration).await?;
            let created = api.create_project(&name, &configuration, &folder).await?;
            if out.json() {
                return out.value(&created);
            }
            let id = created["id"].as_str().unwrap_or_default();
            line(&format!("created project {name} ({id}); its import: {}", created["import"]["status"]))
        }
        ProjectsCommand::Rm { project } => {
            let id = project_id(api, &project).await?;
            api.delete_project(&id).await?;
            out.note(&format!("deleted project {project} ({id})"));
            Ok(())
        }
    }
}

/// A configuration's id from its name or id.
async fn configuration_id(api: &Api, name_or_id: &str) -> Result<String, ClientError> {
    let configurations = api.configurations().await?;
    let found: Vec<_> = configurations.iter().filter(|c| c.id == name_or_id || c.name == name_or_id).collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        // The server says why: not found, or not visible to this token.
        [] => Ok(name_or_id.to_owned()),
        _ => Err(ClientError::Usage(format!("several configurations are named {name_or_id:?}: give its id"))),
    }
}

pub(crate) async fn configs(api: &Api, command: ConfigsCommand, out: Out) -> Result<ExitCode, ClientError> {
    match command {
        ConfigsCommand::Ls => {
            let configurations = api.configurations().await?;
            if out.json() {
                out.value(&configurations)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = configurations
                .iter()
                .map(|c| {
                    let bucket = format!("s3://{}/{}", field(&c.rest, "bucket"), field(&c.rest, "keyPrefix"));
                    vec![c.id.clone(), c.name.clone(), c.status.clone(), field(&c.rest, "region"), bucket]
                })
                .collect();
            table(&["ID", "NAME", "STATUS", "REGION", "BUCKET"], &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigsCommand::Show { configuration } => {
            let configuration = api.configuration(&configuration_id(api, &configuration).await?).await?;
            report(&configuration, out)?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigsCommand::Validate { configuration } => {
            let id = configuration_id(api, &configuration).await?;
            let configuration = api.validate_configuration(&id).await?;
            report(&configuration, out)?;
            // A failed advisory check (CORS for the console) leaves the configuration ready.
            Ok(if configuration.status == "ready" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// A configuration's status and validation report, check by check; a failure with its fix.
fn report(configuration: &Configuration, out: Out) -> Result<(), ClientError> {
    if out.json() {
        return out.value(configuration);
    }
    line(&format!("{} ({}): {}", configuration.name, configuration.id, configuration.status))?;
    if let Some(validation) = &configuration.validation {
        line(&format!("validated at {}", validation.checked_at))?;
        let rows: Vec<Vec<String>> =
            validation.checks.iter().map(|c| vec![c.name.clone(), c.result.clone(), c.detail.clone()]).collect();
        table(&["CHECK", "RESULT", "DETAIL"], &rows)?;
        for check in validation.checks.iter().filter(|c| c.fix.is_some()) {
            line(&format!("{}: fix: {}", check.name, check.fix.as_deref().unwrap_or_default()))?;
        }
    }
    if let Some(problem) = &configuration.error {
        line(&format!("error: {}", problem.message))?;
        line(&format!("  fix: {}", problem.fix))?;
    }
    Ok(())
}

pub(crate) async fn jobs(api: &Api, command: JobsCommand, out: Out) -> Result<ExitCode, ClientError> {
    match command {
        JobsCommand::Ls { project } => {
            let project = match project {
                Some(p) => Some(project_id(api, &p).await?),
                None => None,
            };
            let jobs = api.jobs(project.as_deref()).await?;
            if out.json() {
                out.value(&jobs)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = jobs.iter().map(job_row).collect();
            table(&["ID", "TYPE", "STATUS", "OBJECTS", "BYTES", "PATH"], &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { job } => {
            show_job(&api.job(&job).await?, out)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Wait { job } => {
            let job = wait_for_job(api, out, api.job(&job).await?).await?;
            show_job(&job, out)?;
            Ok(job_exit(&job))
        }
        JobsCommand::Cancel { job } => {
            show_job(&api.cancel_job(&job).await?, out)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Report { job, csv } => {
            // Streamed to standard output as the server sends it: a report may be long.
            use std::io::Write;
            let mut report = api.job_report(&job, csv).await?;
            let mut stdout = std::io::stdout().lock();
            let broken =
                |e: reqwest::Error| ClientError::Status { status: 200, body: format!("the report broke off: {e}") };
            while let Some(chunk) = report.chunk().await.map_err(broken)? {
                if stdout.write_all(&chunk).is_err() {
                    // A closed pipe (`| head`): the reader has what it wanted.
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only this token's calls: its name or id.
    #[arg(long, value_name = "TOKEN")]
    actor: Option<String>,
    /// Only this operation (an operation id of the API: create_project, temporary_credentials, ...).
    #[arg(long)]
    action: Option<String>,
    /// Only calls whose target starts with this (/api/v1/projects/ID for a project's).
    #[arg(long, value_name = "PATH")]
    target: Option<String>,
    /// From this time on (RFC 3339, 2026-12-01T09:30:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many events (0: all of them).
    #[arg(long, short = 'n', default_value_t = 100)]
    limit: u64,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// Pages through the audit log, printing each page as it comes: a table's widths are those of
/// each page, JSON is one event per line.
pub(crate) async fn audit(api: &Api, args: AuditArgs, out: Out) -> Result<(), ClientError> {
    const PAGE: u64 = 1000;
    let filter = AuditFilter {
        actor: args.actor,
        action: args.action,
        target: args.target,
        since: args.since,
        until: args.until,
    };
    let mut left = if args.limit == 0 { u64::MAX } else { args.limit };
    let mut token: Option<String> = None;
    let mut header = true;
    while left > 0 {
        let limit = u32::try_from(left.min(PAGE)).unwrap_or(1000);
        let page = api.audit_events(&filter, limit, token.as_deref()).await?;
        left = left.saturating_sub(page.items.len() as u64);
        if out.json() {
            for event in &page.items {
                out.json_line(event)?;
            }
        } else if !page.items.is_empty() {
            let rows: Vec<Vec<String>> = page.items.iter().map(audit_row).collect();
            const HEADER: [&str; 5] = ["TIME", "ACTOR", "ACTION", "OUTCOME", "TARGET"];
            if header {
                table(&HEADER, &rows)?;
            } else {
                more_rows(&HEADER, &rows)?;
            }
            header = false;
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(())
}

fn audit_row(event: &AuditEvent) -> Vec<String> {
    vec![
        event.at.clone(),
        event.actor.name.clone(),
        event.action.clone(),
        format!("{} ({})", event.outcome, event.status),
        event.target.clone(),
    ]
}

/// 0 when the job succeeded, 1 otherwise.
pub(crate) fn job_exit(job: &Job) -> ExitCode {
    if job.status == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn job_row(job: &Job) -> Vec<String> {
    let p = &job.progress;
    let objects = match p.objects_total {
        Some(total) => format!("{}/{total}", p.objects_done),
        None => p.objects_done.to_string(),
    };
    let path = match &job.to {
        Some(to) => format!("{} -> {to}", job.path),
        None => job.path.clone(),
    };
    vec![job.id.clone(), job.kind.clone(), job.status.clone(), objects, human_bytes(p.bytes_done), path]
}

pub(crate) fn show_job(job: &Job, out: Out) -> Result<(), ClientError> {
    if out.json() {
        return out.value(job);
    }
    table(&["ID", "TYPE", "STATUS", "OBJECTS", "BYTES", "PATH"], &[job_row(job)])?;
    if let Some(problem) = &job.error {
        line(&format!("error: {}", problem.message))?;
        line(&format!("  fix: {}", problem.fix))?;
    }
    Ok(())
}

/// A string field of a resource, or nothing.
fn field(rest: &byos_client::Rest, name: &str) -> String {
    rest.get(name).map(plain).unwrap_or_default()
}

/// A JSON value as a cell: strings without quotes.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
