//! The client commands: projects and data from a terminal, over the API (`byos-client`), with
//! transfers going straight to S3 over presigned URLs.
//!
//! A project's path is written `PROJECT:/path`, the project by name or id; any other argument
//! is a local path. Exit codes: 0 ok, 1 failure, 2 usage, 3 partial (some files failed).

mod admin;
mod data;
mod output;
mod progress;
mod session;

use std::process::ExitCode;

use byos_client::{Api, ClientError, Profiles};
use clap::{Args, Subcommand};

pub(crate) use output::Format;
use output::Out;

/// Some files failed, the others moved.
const PARTIAL: u8 = 3;

/// The options every client command takes. Each command flattens them in (global within a
/// group such as `byos projects`, so that `byos projects ls --output json` works); they are not
/// global at the top, where `byos aws ...` has options of the same names for AWS's habits.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// The login profile to use (see `byos login --profile`).
    #[arg(long, global = true, env = "BYOS_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    /// `table` for people, `json` for scripts (the API's objects; listings one per line).
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Format,
    /// Print nothing but the answer and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// A line per file moved.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Sign in to a byos server: the token is read from standard input, or asked for without
    /// echo, and kept in the login profile (mode 0600).
    Login {
        /// The server, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Forget the login profile's server and token.
    Logout {
        #[command(flatten)]
        common: Common,
    },
    /// Projects: list, show, create, delete.
    Projects {
        #[command(subcommand)]
        command: admin::ProjectsCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Storage configurations: list, show, validate.
    Configs {
        #[command(subcommand)]
        command: admin::ConfigsCommand,
        #[command(flatten)]
        common: Common,
    },
    /// List a project's folder: `byos ls PROJECT:/a/`.
    Ls(data::LsArgs),
    /// Copy files: local to project (upload), project to local (download).
    Cp(data::CpArgs),
    /// Move or rename a file or folder in a project (a folder's move is a job).
    Mv(data::MvArgs),
    /// Delete a file, or with -r a folder (a job, waited for unless --no-wait).
    Rm(data::RmArgs),
    /// Create a folder.
    Mkdir {
        /// PROJECT:/path/
        target: String,
        #[command(flatten)]
        common: Common,
    },
    /// A file's versions and delete markers, newest first.
    Versions {
        /// PROJECT:/path
        target: String,
        #[command(flatten)]
        common: Common,
    },
    /// Make an earlier version of a file the current one (a copy; the history is kept).
    RestoreVersion {
        /// PROJECT:/path
        target: String,
        /// The version to restore, from `byos versions`.
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// Bring back a deleted file of a versioned bucket.
    Undelete {
        /// PROJECT:/path
        target: String,
        #[command(flatten)]
        common: Common,
    },
    /// Ask S3 to restore an archived file for some days.
    ArchiveRestore(data::ArchiveRestoreArgs),
    /// Jobs: list, show, wait for, cancel.
    Jobs {
        #[command(subcommand)]
        command: admin::JobsCommand,
        #[command(flatten)]
        common: Common,
    },
    /// The audit log, newest first: who changed what, and when (admin).
    Audit(admin::AuditArgs),
    /// Temporary AWS credentials for a project's prefix, for any S3 tool.
    Credentials(session::CredentialsArgs),
    /// Run a command with temporary AWS credentials for a project in its environment.
    Exec(session::ExecArgs),
}

impl ClientCommand {
    fn common(&self) -> &Common {
        match self {
            ClientCommand::Login { common, .. }
            | ClientCommand::Logout { common }
            | ClientCommand::Projects { common, .. }
            | ClientCommand::Configs { common, .. }
            | ClientCommand::Jobs { common, .. }
            | ClientCommand::Mkdir { common, .. }
            | ClientCommand::Versions { common, .. }
            | ClientCommand::RestoreVersion { common, .. }
            | ClientCommand::Undelete { common, .. } => common,
            ClientCommand::Ls(args) => &args.common,
            ClientCommand::Cp(args) => &args.common,
            ClientCommand::Mv(args) => &args.common,
            ClientCommand::Rm(args) => &args.common,
            ClientCommand::ArchiveRestore(args) => &args.common,
            ClientCommand::Audit(args) => &args.common,
            ClientCommand::Credentials(args) => &args.common,
            ClientCommand::Exec(args) => &args.common,
        }
    }
}

/// Runs a client command; prints its error, and answers the exit code.
pub(crate) fn run(command: ClientCommand) -> ExitCode {
    let common = command.common().clone();
    let out = Out { format: common.output, quiet: common.quiet, verbose: common.verbose };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            output::error(&ClientError::Usage(format!("cannot start the async runtime: {e}")));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(command, common.profile.as_deref(), out));
    match result {
        Ok(code) => code,
        Err(e) => {
            output::error(&e);
            match e {
                ClientError::Usage(_) | ClientError::NotLoggedIn { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn dispatch(command: ClientCommand, profile: Option<&str>, out: Out) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Login { server, .. } => return session::login(server, profile, out).await.map(ok),
        ClientCommand::Logout { .. } => return session::logout(profile, out).map(ok),
        _ => {}
    }
    let api = connect(profile)?;
    match command {
        ClientCommand::Login { .. } | ClientCommand::Logout { .. } => Ok(ExitCode::SUCCESS),
        ClientCommand::Projects { command, .. } => admin::projects(&api, command, out).await.map(ok),
        ClientCommand::Configs { command, .. } => admin::configs(&api, command, out).await,
        ClientCommand::Jobs { command, .. } => admin::jobs(&api, command, out).await,
        ClientCommand::Ls(args) => data::ls(&api, args, out).await.map(ok),
        ClientCommand::Cp(args) => data::cp(&api, args, out).await,
        ClientCommand::Mv(args) => data::mv(&api, args, out).await,
        ClientCommand::Rm(args) => data::rm(&api, args, out).await,
        ClientCommand::Mkdir { target, .. } => data::mkdir(&api, &target, out).await.map(ok),
        ClientCommand::Versions { target, .. } => data::versions(&api, &target, out).await.map(ok),
        ClientCommand::RestoreVersion { target, version, .. } => {
            data::restore_version(&api, &target, &version, out).await.map(ok)
        }
        ClientCommand::Undelete { target, .. } => data::undelete(&api, &target, out).await.map(ok),
        ClientCommand::ArchiveRestore(args) => data::archive_restore(&api, args, out).await.map(ok),
        ClientCommand::Audit(args) => admin::audit(&api, args, out).await.map(ok),
        ClientCommand::Credentials(args) => session::credentials(&api, args, out).await.map(ok),
        ClientCommand::Exec(args) => session::exec(&api, args).await,
    }
}

fn ok(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

/// The API client of the login profile (or of `BYOS_SERVER` and `BYOS_TOKEN`).
fn connect(profile: Option<&str>) -> Result<Api, ClientError> {
    let login = Profiles::load(&Profiles::path()?)?.login(profile)?;
    Api::new(&login.server, &login.token)
}

/// A path in a project: `PROJECT:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The project's name or id, as written.
    pub(crate) project: String,
    /// The path in the project, from `/`.
    pub(crate) path: String,
}

/// An argument of `cp`: a path in a project, or a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Project(Target),
    Local(std::path::PathBuf),
}

impl Location {
    /// `NAME:/path` is a project's path; anything else a local one (write `./a:/b` for a local
    /// file whose name has a colon).
    pub(crate) fn parse(text: &str) -> Location {
        match text.split_once(':') {
            Some((project, path)) if !project.is_empty() && !project.contains('/') && path.starts_with('/') => {
                Location::Project(Target { project: project.to_owned(), path: path.to_owned() })
            }
            _ => Location::Local(text.into()),
        }
    }
}

impl Target {
    pub(crate) fn parse(text: &str) -> Result<Target, ClientError> {
        match Location::parse(text) {
            Location::Project(target) => Ok(target),
            Location::Local(_) => {
                Err(ClientError::Usage(format!("{text:?} is not a project's path: write PROJECT:/path/in/project")))
            }
        }
    }
}

/// A project's id from its name or id; a name two projects share must be given as an id.
pub(crate) async fn project_id(api: &Api, name_or_id: &str) -> Result<String, ClientError> {
    let projects = api.projects().await?;
    if let Some(project) = projects.iter().find(|p| p.id == name_or_id) {
        return Ok(project.id.clone());
    }
    let named: Vec<_> = projects.iter().filter(|p| p.name == name_or_id).collect();
    match named.as_slice() {
        [project] => Ok(project.id.clone()),
        [] => Err(ClientError::Api {
            status: 404,
            problem: byos_client::Problem {
                kind: "Not Found".to_owned(),
                code: "not-found".to_owned(),
                message: format!("Project '{name_or_id}' does not exist"),
                fix: "Check the name; `byos projects ls` lists the projects this token can see.".to_owned(),
            },
        }),
        _ => Err(ClientError::Usage(format!(
            "{} projects are named {name_or_id:?}: name the project by its id (`byos projects ls`)",
            named.len()
        ))),
    }
}

/// A quantity as people write it, `16MiB` or `90m`: its number, and the unit after it.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.parse().map_err(|_| format!("{text:?} is not {what}"))?;
    Ok((number, unit.trim()))
}

/// A transfer that left files behind ends with exit code 3, naming each.
fn partial(failed: usize) -> ExitCode {
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(PARTIAL) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_and_local_paths_are_told_apart() {
        let target = |p: &str, path: &str| Location::Project(Target { project: p.to_owned(), path: path.to_owned() });
        assert_eq!(Location::parse("study:/in/a.txt"), target("study", "/in/a.txt"));
        assert_eq!(Location::parse("5f0c:/"), target("5f0c", "/"));
        assert_eq!(Location::parse("run42/"), Location::Local("run42/".into()));
        assert_eq!(Location::parse("./a:/b"), Location::Local("./a:/b".into()), "a local name with a colon");
        assert_eq!(Location::parse("a:b"), Location::Local("a:b".into()));
        assert!(Target::parse("run42/").is_err());
    }
}
