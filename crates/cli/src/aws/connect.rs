//! What every `byos aws` command that talks to AWS shares: the AWS CLI's habits (the standard
//! credential chain, `--profile`, `--endpoint-url`, `--output`) and errors that say what to do
//! when there are no credentials or the endpoint cannot be reached.

use anyhow::{Context, anyhow, bail};
use byos_aws::{Aws, AwsError, AwsErrorKind, AwsSettings, Setup};
use byos_domain::{AwsRegion, RegionTable};
use clap::ValueEnum;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AwsOptions {
    /// A named profile of the shared AWS config and credentials files.
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Send AWS requests to this endpoint (a local AWS such as moto) instead of AWS's own.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

/// A connection to AWS with the caller's identity, in the bucket's region.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) aws: Aws,
    pub(crate) setup: Setup,
    pub(crate) account: String,
    pub(crate) region: AwsRegion,
}

/// Connects and asks STS who the caller is, so that missing credentials and unreachable
/// endpoints are reported once, up front, in words that say what to do.
pub(crate) async fn connect(options: &AwsOptions, region: &str) -> anyhow::Result<Connection> {
    let region = AwsRegion::parse(region)?;
    let settings = AwsSettings {
        endpoint_url: options.endpoint_url.clone(),
        static_credentials: None,
        profile: options.profile.clone(),
        sts_endpoint_url: None,
    };
    let aws = Aws::new(&settings).await;
    let setup = aws.setup(&region);
    let account = setup.account().await.map_err(|e| explain(&e, options))?;
    Ok(Connection { aws, setup, account, region })
}

/// Turns the first failed call into advice.
fn explain(error: &AwsError, options: &AwsOptions) -> anyhow::Error {
    let endpoint = options.endpoint_url.as_deref().unwrap_or("AWS");
    let text = error.message.to_ascii_lowercase();
    if text.contains("no credentials")
        || text.contains("credentials provider")
        || text.contains("failed to load credentials")
    {
        let profile = match &options.profile {
            Some(p) => format!(" (profile {p:?} gave none)"),
            None => String::new(),
        };
        return anyhow!(
            "no AWS credentials found{profile}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile \
             of ~/.aws/credentials or ~/.aws/config with --profile"
        );
    }
    match error.kind {
        AwsErrorKind::Unavailable => anyhow!("cannot reach {endpoint}: {}", error.message),
        AwsErrorKind::InvalidAccessKeyId | AwsErrorKind::SignatureDoesNotMatch => {
            anyhow!("AWS refused the credentials: {error}")
        }
        _ => anyhow!("cannot tell who the caller is: {error}"),
    }
}

/// The region must be one of the platform's (ICA's table).
pub(crate) fn platform_region(region: &str) -> anyhow::Result<byos_domain::Region> {
    let table = RegionTable::builtin();
    match table.get(region) {
        Some(found) => Ok(found.clone()),
        None => bail!("{region:?} is not a platform region; one of: {}", table.aws_region_list()),
    }
}

/// Prints a JSON value on stdout.
pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).context("formatting JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("writing to stdout")
}

/// Prints a line on stdout, for a person.
pub(crate) fn say(line: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")
}
