//! `byos aws ...`: the bucket owner's tools. The generators print the documents ICA's guide
//! has people copy by hand, as JSON that the AWS CLI accepts (`file://...`); `bootstrap` puts
//! them in place and `doctor` checks a bucket against everything the platform needs.

mod bootstrap;
mod connect;
mod doctor;
mod register;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use byos_domain::policies::{self, ICA_CONSOLE_ORIGIN};
use byos_domain::{BucketName, KeyPrefix, KmsKeyArn, RegionTable, VersioningState};
use clap::Subcommand;

/// The exit code of `doctor` when a check failed (1 means the command itself failed).
pub(crate) const CHECKS_FAILED: u8 = 3;

#[derive(Debug, Subcommand)]
pub(crate) enum AwsCommand {
    /// Set a bucket up for the platform, idempotently: bucket, encryption, prefix folder, CORS,
    /// IAM policy, user and access key (and the copy role's grants with --cross-account).
    Bootstrap(Box<bootstrap::BootstrapArgs>),
    /// Check a bucket against everything the platform needs; name each problem's fix.
    Doctor(Box<doctor::DoctorArgs>),
    /// Print the IAM policy of the platform's user (ICA's documents).
    Policy {
        #[arg(long)]
        bucket: String,
        /// Scope object access to this prefix (ends with '/'); the whole bucket without it.
        #[arg(long)]
        prefix: Option<String>,
        /// The bucket is versioned or suspended: add the version actions.
        #[arg(long)]
        versioned: bool,
        /// The SSE-KMS key: add kms:Decrypt, kms:Encrypt and kms:GenerateDataKey on it.
        #[arg(long, value_name = "ARN")]
        kms_key: Option<String>,
        /// Say why each action is needed instead of printing the policy.
        #[arg(long)]
        explain: bool,
    },
    /// Print the bucket's CORS configuration for browser uploads from the console.
    Cors {
        /// The console's origin; repeat for several.
        #[arg(long = "origin", value_name = "URL", default_value = ICA_CONSOLE_ORIGIN)]
        origins: Vec<String>,
    },
    /// Print a bucket policy: the cross-account copy role's grants, or deny-all with the
    /// platform's exceptions.
    BucketPolicy {
        #[arg(long)]
        bucket: String,
        /// Grant the copy role of this region (an AWS region id of the region table).
        #[arg(long, value_name = "REGION", conflicts_with = "deny_all")]
        cross_account: Option<String>,
        #[arg(long)]
        versioned: bool,
        /// Deny everyone but the platform's IAM user and its federated users in this account.
        #[arg(long, value_name = "ACCOUNT")]
        deny_all: Option<String>,
        /// The platform's IAM user, for --deny-all.
        #[arg(long, default_value = "illumina_ica_admin")]
        user: String,
    },
    /// Print the KMS key policy statement that lets a region's copy role use the key.
    KmsPolicy {
        /// An AWS region id of the region table.
        #[arg(long)]
        region: String,
    },
}

use connect::print_json;

fn role(region: &str) -> anyhow::Result<byos_domain::RoleArn> {
    let table = RegionTable::builtin();
    let Some(found) = table.get(region) else {
        bail!("{region:?} is not a platform region; one of: {}", table.aws_region_list());
    };
    byos_domain::RoleArn::parse(&found.cross_account_role_arn).context("the region table's role")
}

fn versioning(versioned: bool) -> VersioningState {
    if versioned { VersioningState::Enabled } else { VersioningState::Unversioned }
}

pub(crate) fn run(command: AwsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AwsCommand::Bootstrap(args) => {
            runtime()?.block_on(bootstrap::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Doctor(args) => runtime()?.block_on(doctor::run(*args)),
        command => {
            print(command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The commands that talk to AWS run on one thread: they wait on AWS, one call at a time.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// The printing commands.
fn print(command: AwsCommand) -> anyhow::Result<()> {
    match command {
        AwsCommand::Bootstrap(_) | AwsCommand::Doctor(_) => Ok(()),
        AwsCommand::Policy { bucket, prefix, versioned, kms_key, explain } => {
            let bucket = BucketName::parse(&bucket).context("--bucket")?;
            let prefix = prefix.as_deref().map(KeyPrefix::parse).transpose().context("--prefix")?;
            let kms_key = kms_key.as_deref().map(KmsKeyArn::parse).transpose().context("--kms-key")?;
            if explain {
                let mut out = std::io::stdout().lock();
                for e in policies::iam_policy_actions(versioning(versioned), kms_key.is_some()) {
                    writeln!(out, "{:<26} {}", e.action, e.why).context("writing to stdout")?;
                }
                return Ok(());
            }
            print_json(&policies::iam_policy(&bucket, prefix.as_ref(), versioning(versioned), kms_key.as_ref()))
        }
        AwsCommand::Cors { origins } => {
            let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
            print_json(&policies::cors_configuration(&origins))
        }
        AwsCommand::BucketPolicy { bucket, cross_account, versioned, deny_all, user } => {
            let bucket = BucketName::parse(&bucket).context("--bucket")?;
            match (cross_account, deny_all) {
                (Some(region), None) => {
                    print_json(&policies::cross_account_bucket_policy(&bucket, &role(&region)?, versioning(versioned)))
                }
                (None, Some(account)) => {
                    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                        bail!("--deny-all: {account:?} is not a 12-digit AWS account id");
                    }
                    print_json(&policies::deny_all_bucket_policy(&bucket, &account, &user))
                }
                _ => bail!("give --cross-account REGION or --deny-all ACCOUNT"),
            }
        }
        AwsCommand::KmsPolicy { region } => print_json(&policies::kms_key_policy_statement(&role(&region)?)),
    }
}
