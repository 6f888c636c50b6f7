//! `byos login`, `logout`, `credentials` and `exec`: who the client is, and the scoped AWS
//! credentials it hands to other tools.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use byos_client::{Api, ClientError, Credentials, DEFAULT_PROFILE, Login, Profiles};
use clap::{Args, ValueEnum};

use super::output::{Out, line};
use super::{Location, number_and_unit, project_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialsFormat {
    /// `export` lines for a shell.
    Env,
    /// The API's answer.
    Json,
    /// A named profile in ~/.aws/credentials (name it with --aws-profile).
    AwsProfile,
}

#[derive(Debug, Args)]
pub(crate) struct Scope {
    /// The project (name or id), or PROJECT:/folder/ for a folder below it.
    project: String,
    /// `read`, or `read-write` (which needs read-write access to the project).
    #[arg(long, value_enum, default_value = "read")]
    access: Access,
    /// How long the credentials last: 15m to 36h for an IAM user's, up to the role's maximum.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct CredentialsArgs {
    #[command(flatten)]
    scope: Scope,
    /// How to hand the credentials over.
    #[arg(long, value_enum, default_value = "env")]
    format: CredentialsFormat,
    /// The profile's name in ~/.aws/credentials, with --format aws-profile.
    #[arg(long, value_name = "NAME", required_if_eq("format", "aws-profile"))]
    aws_profile: Option<String>,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    scope: Scope,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    pub(crate) common: super::Common,
}

/// `1h`, `90m`, `3600s`, `3600`: a duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text, "a duration such as 1h or 90m")?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

pub(crate) async fn login(server: Option<String>, profile: Option<&str>, out: Out) -> Result<(), ClientError> {
    let path = Profiles::path()?;
    let mut profiles = Profiles::load(&path)?;
    let name = profile.unwrap_or(DEFAULT_PROFILE).to_owned();
    let server = server
        .or_else(|| std::env::var("BYOS_SERVER").ok().filter(|s| !s.is_empty()))
        .or_else(|| profiles.profiles.get(&name).map(|l| l.server.clone()))
        .ok_or_else(|| ClientError::Usage("which server? give --server URL (e.g. http://127.0.0.1:8080)".to_owned()))?;
    let token = read_token()?;
    let api = Api::new(&server, &token)?;
    // Any token may list projects: the check that the token works on this server.
    let projects = api.projects().await?;
    profiles.profiles.insert(name.clone(), Login { server: api.base().to_owned(), token });
    profiles.save(&path)?;
    out.note(&format!(
        "logged in to {} (profile {name}, {} projects visible); kept in {}",
        api.base(),
        projects.len(),
        path.display()
    ));
    Ok(())
}

/// The token: standard input when it is not a terminal, otherwise a prompt without echo.
fn read_token() -> Result<String, ClientError> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Token: ")
            .map_err(|source| ClientError::Io { path: "the terminal".into(), source })?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ClientError::Io { path: "standard input".into(), source })?;
        text
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(ClientError::Usage("no token: pipe it in, or type it at the prompt".to_owned()));
    }
    Ok(token)
}

pub(crate) fn logout(profile: Option<&str>, out: Out) -> Result<(), ClientError> {
    let path = Profiles::path()?;
    let mut profiles = Profiles::load(&path)?;
    let name = profile.unwrap_or(DEFAULT_PROFILE);
    if profiles.profiles.remove(name).is_some() {
        profiles.save(&path)?;
        out.note(&format!("logged out (profile {name})"));
    } else {
        out.note(&format!("profile {name} was not logged in"));
    }
    Ok(())
}

/// Credentials for the scope: the project, or a folder of it.
async fn vend(api: &Api, scope: &Scope) -> Result<Credentials, ClientError> {
    let (project, path) = match Location::parse(&scope.project) {
        Location::Project(target) => (target.project, Some(target.path).filter(|p| p != "/")),
        Location::Local(_) => (scope.project.clone(), None),
    };
    let id = project_id(api, &project).await?;
    api.temporary_credentials(&id, scope.access.as_str(), scope.duration, path.as_deref()).await
}

pub(crate) async fn credentials(api: &Api, args: CredentialsArgs, out: Out) -> Result<(), ClientError> {
    let credentials = vend(api, &args.scope).await?;
    match args.format {
        CredentialsFormat::Json => out.value(&credentials),
        _ if out.json() => out.value(&credentials),
        CredentialsFormat::Env => {
            for env in &credentials.env {
                line(env)?;
            }
            Ok(())
        }
        CredentialsFormat::AwsProfile => {
            let name = args.aws_profile.unwrap_or_default();
            let path = aws_credentials_file()?;
            write_aws_profile(&path, &name, &credentials)?;
            out.note(&format!(
                "wrote profile [{name}] to {} (until {}); e.g. aws --profile {name} --region {} s3 ls {}",
                path.display(),
                credentials.expires_at,
                credentials.region,
                credentials.s3_uri
            ));
            Ok(())
        }
    }
}

/// `AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`.
fn aws_credentials_file() -> Result<PathBuf, ClientError> {
    if let Some(file) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|f| !f.is_empty()) {
        return Ok(PathBuf::from(file));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ClientError::Usage("HOME is not set: there is no ~/.aws/credentials".to_owned()))?;
    Ok(PathBuf::from(home).join(".aws").join("credentials"))
}

/// Replaces (or adds) the section `[name]` of an AWS credentials file, keeping the others.
fn write_aws_profile(path: &Path, name: &str, credentials: &Credentials) -> Result<(), ClientError> {
    if name.is_empty() || name.contains([']', '[', '\n']) {
        return Err(ClientError::Usage(format!("--aws-profile {name:?} is not a profile name")));
    }
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = replace_section(
        &existing,
        name,
        &[
            ("aws_access_key_id", &credentials.access_key_id),
            ("aws_secret_access_key", &credentials.secret_access_key),
            ("aws_session_token", &credentials.session_token),
        ],
    );
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|source| ClientError::Io { path: folder.to_owned(), source })?;
    }
    byos_client::write_private(path, text.as_bytes())
}

/// An INI text with section `[name]` holding exactly `keys`.
fn replace_section(existing: &str, name: &str, keys: &[(&str, &str)]) -> String {
    let header = format!("[{name}]");
    let mut text = String::new();
    let mut skipping = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == header;
        }
        if !skipping {
            text.push_str(line);
            text.push('\n');
        }
    }
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(&header);
    text.push('\n');
    for (key, value) in keys {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

/// Runs the command with the credentials in its environment (and no AWS profile that could
/// take precedence); exits with its code, or 128 + the signal that ended it.
pub(crate) async fn exec(api: &Api, args: ExecArgs) -> Result<ExitCode, ClientError> {
    let credentials = vend(api, &args.scope).await?;
    let (program, rest) =
        args.command.split_first().ok_or_else(|| ClientError::Usage("no command to run".to_owned()))?;
    let status = tokio::process::Command::new(program)
        .args(rest)
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
        .env("AWS_SESSION_TOKEN", &credentials.session_token)
        .env("AWS_REGION", &credentials.region)
        .env("AWS_DEFAULT_REGION", &credentials.region)
        .env("BYOS_S3_URI", &credentials.s3_uri)
        .status()
        .await
        .map_err(|source| ClientError::Io { path: program.into(), source })?;
    if let Some(code) = status.code() {
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Ok(ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)));
        }
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_people_write() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_profile_replaces_its_own_section_only() {
        let existing = "[default]\naws_access_key_id = A\n\n[byos]\naws_access_key_id = OLD\naws_session_token = OLD\n\n[other]\nregion = x\n";
        let text = replace_section(existing, "byos", &[("aws_access_key_id", "NEW"), ("aws_session_token", "T")]);
        assert_eq!(
            text,
            "[default]\naws_access_key_id = A\n\n[other]\nregion = x\n\n[byos]\naws_access_key_id = NEW\naws_session_token = T\n"
        );
        assert_eq!(replace_section("", "p", &[("k", "v")]), "[p]\nk = v\n");
    }
}
