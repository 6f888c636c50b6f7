//! `byos aws bootstrap`: does, idempotently, what ICA's guide has a bucket owner do by hand —
//! the bucket in its region with default encryption, the prefix folder, CORS, the IAM policy,
//! the IAM user with the policy attached and an access key, and with `--cross-account` the copy
//! role's bucket and key policy statements, with `--inventory` a daily S3 Inventory of the
//! prefix. Every step reads first and writes only what
//! differs, so a second run changes nothing and says so. `--dry-run` prints the plan;
//! `--register URL` also creates the credential and the configuration on a byos server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use byos_aws::{ABORT_UPLOADS_RULE_ID, AwsErrorKind, BYOS_REPORTS_PREFIX, Inventory};
use byos_domain::cors::{self, CorsRule};
use byos_domain::policies::{self, ICA_CONSOLE_ORIGIN};
use byos_domain::{AccessKeyId, BucketName, KeyPrefix, KmsKeyArn, RoleArn, VersioningState};
use serde_json::{Value, json};

use super::connect::{AwsOptions, Connection, Output, connect, platform_region, print_json, say};
use super::register;
use super::steps::{Change, Key, Steps};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BootstrapArgs {
    /// The bucket to set up; created when it does not exist.
    #[arg(long)]
    pub(crate) bucket: String,
    /// The bucket's AWS region: one of the platform's regions.
    #[arg(long)]
    pub(crate) region: String,
    /// The key prefix the platform gets (ends with '/'); the whole bucket without it.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Encrypt with this SSE-KMS key (in the bucket's region); SSE-S3 without it.
    #[arg(long, value_name = "ARN", conflicts_with = "create_kms_key")]
    pub(crate) kms_key: Option<String>,
    /// Create a customer managed KMS key (alias `alias/byos-BUCKET`) and encrypt with it.
    #[arg(long)]
    pub(crate) create_kms_key: bool,
    /// Enable versioning on the bucket (and grant the version actions).
    #[arg(long)]
    pub(crate) versioned: bool,
    /// Grant the region's cross-account copy role in the bucket policy and the key policy.
    #[arg(long)]
    pub(crate) cross_account: bool,
    /// The IAM user the platform signs in as.
    #[arg(long, default_value = "illumina_ica_admin")]
    pub(crate) user: String,
    /// The name of the user's managed IAM policy.
    #[arg(long, default_value = "illumina-ica-admin-policy")]
    pub(crate) policy_name: String,
    /// The console origin allowed by CORS; repeat for several.
    #[arg(long = "origin", value_name = "URL", default_value = ICA_CONSOLE_ORIGIN)]
    pub(crate) origins: Vec<String>,
    /// Write a new access key to this file (0600, JSON) instead of printing its secret; a later
    /// `--register` reads it back.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Create an access key even when the user already has an active one.
    #[arg(long)]
    pub(crate) new_access_key: bool,
    /// Set up a daily S3 Inventory of the prefix (CSV, reports in the bucket under
    /// `byos-inventory/`): the server imports and reconciles a bucket of millions of objects from
    /// its latest report instead of listing it.
    #[arg(long)]
    pub(crate) inventory: bool,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Also create the storage credential and configuration on this byos server (https://, or
    /// http:// on this machine).
    #[arg(long, value_name = "URL", value_parser = register::server_url)]
    pub(crate) register: Option<String>,
    /// An admin token of the byos server, for --register.
    #[arg(long, env = "BYOS_TOKEN", hide_env_values = true, requires = "register")]
    pub(crate) token: Option<String>,
    /// The storage configuration's name, for --register (the bucket's name without it).
    #[arg(long, value_name = "NAME", requires = "register")]
    pub(crate) configuration_name: Option<String>,
    #[command(flatten)]
    pub(crate) aws: AwsOptions,
}

/// The typed form of the arguments.
struct Plan {
    bucket: BucketName,
    prefix: Option<KeyPrefix>,
    kms_key: Option<KmsKeyArn>,
    copy_role: Option<RoleArn>,
}

pub(crate) async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let bucket = BucketName::parse(&args.bucket).context("--bucket")?;
    let prefix = args.prefix.as_deref().map(KeyPrefix::parse).transpose().context("--prefix")?;
    let kms_key = args.kms_key.as_deref().map(KmsKeyArn::parse).transpose().context("--kms-key")?;
    let region = platform_region(&args.region).context("--region")?;
    if let Some(key) = &kms_key
        && key.region() != args.region
    {
        bail!(
            "--kms-key: the key is in {}, the bucket in {}; a bucket's key must be in its region",
            key.region(),
            args.region
        );
    }
    if args.register.is_some() && args.token.is_none() {
        bail!("--register needs an admin token of the byos server: --token or BYOS_TOKEN");
    }
    let copy_role = if args.cross_account {
        Some(RoleArn::parse(&region.cross_account_role_arn).context("the region table's copy role")?)
    } else {
        None
    };
    let connection = connect(&args.aws, &args.region).await?;
    let mut steps = Steps::new(args.dry_run, args.aws.output);
    if args.aws.output == Output::Table {
        let what = if args.dry_run { "Planning" } else { "Setting up" };
        say(format_args!("{what} bucket '{bucket}' in {} for account {}:", args.region, connection.account))?;
    }
    let mut plan = Plan { bucket, prefix, kms_key, copy_role };
    let bucket_is_new = ensure_bucket(&connection, &plan, &mut steps).await?;
    ensure_kms_key(&connection, &args, &mut plan, &mut steps).await?;
    ensure_encryption(&connection, &plan, bucket_is_new, &mut steps).await?;
    let versioning = ensure_versioning(&connection, &args, &plan, bucket_is_new, &mut steps).await?;
    ensure_prefix_folder(&connection, &plan, bucket_is_new, &mut steps).await?;
    ensure_cors(&connection, &args, &plan, bucket_is_new, &mut steps).await?;
    ensure_abort_uploads_rule(&connection, &plan, bucket_is_new, &mut steps).await?;
    let policy_arn = ensure_policy(&connection, &args, &plan, versioning, &mut steps).await?;
    let user_is_new = ensure_user(&connection, &args, &policy_arn, &mut steps).await?;
    let key = ensure_access_key(&connection, &args, user_is_new, &mut steps).await?;
    if plan.copy_role.is_some() {
        ensure_cross_account(&connection, &plan, versioning, bucket_is_new, &mut steps).await?;
    }
    if args.inventory {
        ensure_inventory(&connection, &plan, versioning, bucket_is_new, &mut steps).await?;
    }
    if let Some(url) = &args.register {
        let token = args.token.as_deref().unwrap_or_default();
        let target = register::Target {
            url,
            token,
            name: args.configuration_name.as_deref().unwrap_or(plan.bucket.as_str()),
            region: &args.region,
            bucket: &plan.bucket,
            prefix: plan.prefix.as_ref(),
            kms_key: plan.kms_key.as_ref(),
            user: &args.user,
        };
        register::run(&target, key.as_ref(), &mut steps).await?;
    }

    let changes = steps.changes();
    match args.aws.output {
        Output::Json => print_json(&json!({
            "bucket": plan.bucket.as_str(),
            "region": args.region,
            "account": connection.account,
            "dryRun": args.dry_run,
            "changes": changes,
            "steps": steps.done(),
            "accessKey": key.as_ref().filter(|k| k.shown).map(|k| json!({
                "accessKeyId": k.access_key_id,
                "secretAccessKey": k.secret_access_key,
            })),
        })),
        Output::Table => {
            if let Some(key) = key.as_ref().filter(|k| k.shown) {
                say(format_args!(
                    "\nThe new access key, shown this once (store the secret now):\n  access key id:     {}\n  secret access key: {}",
                    key.access_key_id, key.secret_access_key
                ))?;
            }
            match (changes, args.dry_run) {
                (0, _) => say("Nothing to change: the bucket is set up."),
                (n, true) => say(format_args!("{n} changes planned; run without --dry-run to make them.")),
                (n, false) => say(format_args!("{n} changes made.")),
            }
        }
    }
}

/// Creates the bucket in the region; an existing bucket must already be there.
async fn ensure_bucket(c: &Connection, plan: &Plan, steps: &mut Steps) -> anyhow::Result<bool> {
    let bucket = plan.bucket.as_str();
    let subject = format!("bucket {bucket}");
    match c.aws.own_bucket_access(&c.region).bucket_region(bucket).await {
        Ok(actual) if c.region == actual.as_str() => {
            steps.record(Change::Unchanged, &subject, &format!("exists in {actual}"))?;
            Ok(false)
        }
        Ok(actual) => bail!(
            "bucket {bucket} exists in {actual}, not in {}: a bucket cannot move; choose another bucket name, or --region {actual} if that is a platform region",
            c.region
        ),
        Err(e) if matches!(e.kind, AwsErrorKind::NoSuchBucket | AwsErrorKind::NotFound) => {
            if !steps.is_dry_run() {
                c.setup.create_bucket(bucket).await.with_context(|| format!("creating bucket {bucket}"))?;
            }
            steps.record(Change::Created, &subject, &format!("in {}", c.region))?;
            Ok(true)
        }
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            bail!("bucket {bucket} belongs to another account or your identity may not read it: {e}")
        }
        Err(e) => Err(e).with_context(|| format!("looking for bucket {bucket}")),
    }
}

/// Resolves the KMS key: the one named, or the one this tool created before (by its alias), or
/// a new one.
async fn ensure_kms_key(
    c: &Connection,
    args: &BootstrapArgs,
    plan: &mut Plan,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    if let Some(key) = &plan.kms_key {
        match c.setup.kms_key(key.as_str()).await.context("looking up --kms-key")? {
            Some(found) if found.enabled => {
                steps.record(Change::Unchanged, "kms key", &format!("{} is enabled", found.arn))?;
            }
            Some(found) => bail!("--kms-key: {} is disabled; enable it or name another key", found.arn),
            None => bail!("--kms-key: {key} does not exist in {}", c.region),
        }
        return Ok(());
    }
    if !args.create_kms_key {
        return Ok(());
    }
    let alias = format!("alias/byos-{}", plan.bucket.as_str().replace('.', "-"));
    if let Some(found) = c.setup.kms_key(&alias).await.context("looking up the key's alias")? {
        steps.record(Change::Unchanged, "kms key", &format!("{alias} is {}", found.arn))?;
        plan.kms_key = Some(KmsKeyArn::parse(&found.arn).context("the key's ARN")?);
        return Ok(());
    }
    if steps.is_dry_run() {
        steps.record(Change::Created, "kms key", &format!("a customer managed key with alias {alias}"))?;
        // The plan goes on as if the key existed, under a name that says it does not yet.
        plan.kms_key = Some(
            KmsKeyArn::parse(&format!("arn:aws:kms:{}:{}:key/to-be-created", c.region, c.account))
                .context("the planned key's ARN")?,
        );
        return Ok(());
    }
    let arn = c
        .setup
        .create_kms_key(&format!("byos: objects of bucket {}", plan.bucket))
        .await
        .context("creating the KMS key")?;
    c.setup.create_kms_alias(&alias, &arn).await.context("naming the KMS key")?;
    steps.record(Change::Created, "kms key", &format!("{arn} ({alias})"))?;
    plan.kms_key = Some(KmsKeyArn::parse(&arn).context("the new key's ARN")?);
    Ok(())
}

async fn ensure_encryption(c: &Connection, plan: &Plan, bucket_is_new: bool, steps: &mut Steps) -> anyhow::Result<()> {
    let bucket = plan.bucket.as_str();
    let wanted = match &plan.kms_key {
        Some(key) => format!("SSE-KMS with {key}"),
        None => "SSE-S3 (AES256)".to_owned(),
    };
    let current = if bucket_is_new && steps.is_dry_run() {
        None
    } else {
        c.setup.bucket_encryption(bucket).await.context("reading the bucket's default encryption")?
    };
    let matches = match (&current, &plan.kms_key) {
        (Some(e), None) => e.algorithm == "AES256",
        (Some(e), Some(key)) => {
            e.algorithm == "aws:kms"
                && e.kms_key.as_deref().is_some_and(|k| k == key.as_str() || key.as_str().ends_with(&format!("/{k}")))
        }
        (None, _) => false,
    };
    if matches {
        return steps.record(Change::Unchanged, "default encryption", &wanted);
    }
    if !steps.is_dry_run() {
        c.setup
            .put_bucket_encryption(bucket, plan.kms_key.as_ref().map(KmsKeyArn::as_str))
            .await
            .context("setting the bucket's default encryption")?;
    }
    let change = if current.is_some() { Change::Updated } else { Change::Created };
    steps.record(change, "default encryption", &wanted)
}

/// Enables versioning when asked; returns the bucket's versioning state, which decides the
/// IAM policy's variant.
async fn ensure_versioning(
    c: &Connection,
    args: &BootstrapArgs,
    plan: &Plan,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<VersioningState> {
    let bucket = plan.bucket.as_str();
    let current = if bucket_is_new {
        VersioningState::Unversioned
    } else {
        c.aws.own_bucket_access(&c.region).versioning(bucket).await.context("reading the bucket's versioning")?
    };
    if !args.versioned || current == VersioningState::Enabled {
        if args.versioned || current != VersioningState::Unversioned {
            steps.record(Change::Unchanged, "versioning", current.as_str())?;
        }
        return Ok(current);
    }
    if !steps.is_dry_run() {
        c.setup.set_versioning(bucket, VersioningState::Enabled).await.context("enabling versioning")?;
    }
    steps.record(Change::Updated, "versioning", &format!("{} -> enabled", current.as_str()))?;
    Ok(VersioningState::Enabled)
}

async fn ensure_prefix_folder(
    c: &Connection,
    plan: &Plan,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let Some(prefix) = &plan.prefix else { return Ok(()) };
    let (bucket, key) = (plan.bucket.as_str(), prefix.as_str());
    let subject = format!("folder {key}");
    let exists = !(bucket_is_new && steps.is_dry_run())
        && c.setup.object_exists(bucket, key).await.context("looking for the prefix folder")?;
    if exists {
        return steps.record(Change::Unchanged, &subject, "exists");
    }
    if !steps.is_dry_run() {
        c.setup.put_empty_object(bucket, key).await.context("creating the prefix folder")?;
    }
    steps.record(Change::Created, &subject, "an empty folder marker object")
}

/// Adds ICA's CORS rule for the origins that no rule lets upload yet, keeping the owner's rules.
async fn ensure_cors(
    c: &Connection,
    args: &BootstrapArgs,
    plan: &Plan,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let bucket = plan.bucket.as_str();
    let current = if bucket_is_new && steps.is_dry_run() {
        None
    } else {
        c.aws.own_bucket_access(&c.region).cors_rules(bucket).await.context("reading the bucket's CORS rules")?
    };
    let rules = current.clone().unwrap_or_default();
    let missing: Vec<&str> = args
        .origins
        .iter()
        .map(String::as_str)
        .filter(|origin| ["PUT", "POST", "GET"].iter().any(|m| cors::allows_uploads(&rules, origin, m).is_err()))
        .collect();
    if missing.is_empty() {
        return steps.record(Change::Unchanged, "cors", &format!("uploads allowed from {}", args.origins.join(", ")));
    }
    if !steps.is_dry_run() {
        let mut merged = rules;
        merged.push(CorsRule::console(&missing));
        c.setup.put_cors_rules(bucket, &merged).await.context("setting the bucket's CORS rules")?;
    }
    let change = if current.is_some() { Change::Updated } else { Change::Created };
    steps.record(change, "cors", &format!("uploads allowed from {}", missing.join(", ")))
}

/// How long a multipart upload nobody completes is kept by the rule bootstrap adds: a week, long
/// past the server's own abort (`data.abandoned_upload_hours`, a day by default).
const ABORT_UPLOADS_AFTER_DAYS: i32 = 7;

/// Adds a lifecycle rule that aborts the multipart uploads nobody completes under the prefix,
/// unless one does already; the owner's other rules are kept.
async fn ensure_abort_uploads_rule(
    c: &Connection,
    plan: &Plan,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let bucket = plan.bucket.as_str();
    let prefix = plan.prefix.as_ref().map_or("", |p| p.as_str());
    let rules = if bucket_is_new && steps.is_dry_run() {
        Vec::new()
    } else {
        c.setup.abort_upload_rules(bucket).await.context("reading the bucket's lifecycle rules")?
    };
    if let Some(rule) = rules.iter().find(|r| r.enabled && prefix.starts_with(&r.prefix)) {
        let detail = format!("incomplete multipart uploads aborted after {} day(s)", rule.days);
        return steps.record(Change::Unchanged, "lifecycle", &detail);
    }
    if !steps.is_dry_run() {
        c.setup
            .put_abort_uploads_rule(bucket, prefix, ABORT_UPLOADS_AFTER_DAYS)
            .await
            .context("adding the lifecycle rule that aborts incomplete uploads")?;
    }
    let detail = format!(
        "rule {ABORT_UPLOADS_RULE_ID}: incomplete multipart uploads aborted after {ABORT_UPLOADS_AFTER_DAYS} days"
    );
    steps.record(Change::Created, "lifecycle", &detail)
}

/// Creates the managed policy, or makes its default version ICA's document when it differs.
async fn ensure_policy(
    c: &Connection,
    args: &BootstrapArgs,
    plan: &Plan,
    versioning: VersioningState,
    steps: &mut Steps,
) -> anyhow::Result<String> {
    let document = policies::iam_policy(&plan.bucket, plan.prefix.as_ref(), versioning, plan.kms_key.as_ref());
    let text = document.to_string();
    let arn = format!("arn:aws:iam::{}:policy/{}", c.account, args.policy_name);
    let subject = format!("iam policy {}", args.policy_name);
    let variant = if versioning == VersioningState::Unversioned { "unversioned" } else { "versioned" };
    match c.setup.managed_policy(&arn).await.context("reading the IAM policy")? {
        Some(current) if serde_json::from_str::<Value>(&current.document).ok().as_ref() == Some(&document) => {
            steps.record(Change::Unchanged, &subject, &format!("ICA's {variant} policy"))?;
        }
        Some(_) => {
            if !steps.is_dry_run() {
                c.setup.set_policy_document(&arn, &text).await.context("updating the IAM policy")?;
            }
            steps.record(Change::Updated, &subject, &format!("new default version: ICA's {variant} policy"))?;
        }
        None => {
            if !steps.is_dry_run() {
                c.setup.ensure_policy(&args.policy_name, &text).await.context("creating the IAM policy")?;
            }
            steps.record(Change::Created, &subject, &format!("ICA's {variant} policy"))?;
        }
    }
    Ok(arn)
}

async fn ensure_user(
    c: &Connection,
    args: &BootstrapArgs,
    policy_arn: &str,
    steps: &mut Steps,
) -> anyhow::Result<bool> {
    let subject = format!("iam user {}", args.user);
    let exists = c.setup.user(&args.user).await.context("looking up the IAM user")?.is_some();
    if exists {
        steps.record(Change::Unchanged, &subject, "exists")?;
    } else {
        if !steps.is_dry_run() {
            c.setup.ensure_user(&args.user).await.context("creating the IAM user")?;
        }
        steps.record(Change::Created, &subject, "")?;
    }
    let attached = exists
        && c.setup
            .attached_user_policies(&args.user)
            .await
            .context("listing the user's policies")?
            .iter()
            .any(|a| a == policy_arn);
    let subject = format!("policy attachment {} -> {}", args.policy_name, args.user);
    if attached {
        steps.record(Change::Unchanged, &subject, "attached")?;
        return Ok(false);
    }
    if !steps.is_dry_run() {
        c.setup.attach_user_policy(&args.user, policy_arn).await.context("attaching the policy to the user")?;
    }
    steps.record(Change::Created, &subject, "attached")?;
    Ok(!exists)
}

async fn ensure_access_key(
    c: &Connection,
    args: &BootstrapArgs,
    user_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<Option<Key>> {
    let subject = format!("access key of {}", args.user);
    let active = if user_is_new {
        Vec::new()
    } else {
        c.setup.active_access_keys(&args.user).await.context("listing access keys")?
    };
    let saved = match &args.secret_file {
        Some(path) if path.exists() => Some(read_secret_file(path)?),
        _ => None,
    };
    if !active.is_empty() && !args.new_access_key {
        let masked: Vec<String> =
            active.iter().map(|id| AccessKeyId::parse(id).map_or_else(|_| id.clone(), |k| k.masked())).collect();
        let known = saved.filter(|k| active.contains(&k.access_key_id));
        let detail = match (&known, &args.secret_file) {
            (Some(_), Some(path)) => format!("{} (secret in {})", masked.join(", "), path.display()),
            _ => format!(
                "{} (its secret was shown when it was created; --new-access-key makes another)",
                masked.join(", ")
            ),
        };
        steps.record(Change::Unchanged, &subject, &detail)?;
        return Ok(known);
    }
    if steps.is_dry_run() {
        steps.record(Change::Created, &subject, "a new access key")?;
        return Ok(None);
    }
    if let Some(path) = &args.secret_file
        && path.exists()
    {
        bail!("--secret-file: {} exists and holds another key; name a new file", path.display());
    }
    let new = c.setup.create_access_key(&args.user).await.context("creating an access key")?;
    let masked = AccessKeyId::parse(&new.access_key_id).map_or_else(|_| new.access_key_id.clone(), |k| k.masked());
    let mut key = Key { access_key_id: new.access_key_id, secret_access_key: new.secret_access_key, shown: true };
    match &args.secret_file {
        Some(path) => {
            let contents = json!({"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key});
            byos_secrets::write_private_file(path, format!("{contents}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            key.shown = false;
            steps.record(
                Change::Created,
                &subject,
                &format!("{masked} (secret written to {}, mode 0600)", path.display()),
            )?;
        }
        None => steps.record(Change::Created, &subject, &format!("{masked} (secret shown below, once)"))?,
    }
    Ok(Some(key))
}

fn read_secret_file(path: &std::path::Path) -> anyhow::Result<Key> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let field = |name: &str| {
        value[name].as_str().map(str::to_owned).with_context(|| format!("{} has no {name}", path.display()))
    };
    Ok(Key { access_key_id: field("accessKeyId")?, secret_access_key: field("secretAccessKey")?, shown: false })
}

/// Merges the copy role's statements into the bucket policy and, with SSE-KMS, the key policy,
/// and makes the bucket own every object written into it.
async fn ensure_cross_account(
    c: &Connection,
    plan: &Plan,
    versioning: VersioningState,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let Some(role) = &plan.copy_role else { return Ok(()) };
    let bucket = plan.bucket.as_str();
    let ours = policies::cross_account_bucket_policy(&plan.bucket, role, versioning);
    merge_bucket_policy(c, plan, bucket_is_new, &ours, &format!("copy role {role}"), steps).await?;

    // What the role writes must belong to the bucket's owner, not to the platform's account.
    let ownership = if bucket_is_new && steps.is_dry_run() {
        None
    } else {
        c.setup.object_ownership(bucket).await.context("reading the Object Ownership")?
    };
    let enforced = "BucketOwnerEnforced";
    let detail = format!("{enforced}: the copy role's copies belong to the bucket's owner");
    if ownership.as_deref() == Some(enforced) {
        steps.record(Change::Unchanged, "object ownership", &detail)?;
    } else {
        if !steps.is_dry_run() {
            c.setup.put_object_ownership(bucket, enforced).await.context("writing the Object Ownership")?;
        }
        steps.record(Change::Updated, "object ownership", &detail)?;
    }
    let detail = format!("copy role {role}");

    let Some(key) = &plan.kms_key else { return Ok(()) };
    if key.as_str().ends_with("/to-be-created") {
        return steps.record(Change::Updated, "kms key policy", &detail);
    }
    let current = c.setup.kms_key_policy(key.as_str()).await.context("reading the key policy")?;
    let merged = policies::merge_statements(Some(&current), &policies::kms_key_policy_statement(role))
        .map_err(anyhow::Error::msg)
        .context("the key policy")?;
    if !merged.changed {
        return steps.record(Change::Unchanged, "kms key policy", &detail);
    }
    if !steps.is_dry_run() {
        c.setup
            .put_kms_key_policy(key.as_str(), &merged.document.to_string())
            .await
            .context("writing the key policy")?;
    }
    steps.record(Change::Updated, "kms key policy", &detail)
}

/// A daily inventory of the prefix, and the bucket policy statement that lets S3 write its
/// reports into the bucket.
async fn ensure_inventory(
    c: &Connection,
    plan: &Plan,
    versioning: VersioningState,
    bucket_is_new: bool,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let bucket = plan.bucket.as_str();
    let access = c.aws.own_bucket_access(&c.region);
    let ours =
        Inventory::byos(bucket, plan.prefix.as_ref().map(|p| p.as_str()), versioning == VersioningState::Enabled);
    let current = if bucket_is_new && steps.is_dry_run() {
        Vec::new()
    } else {
        access.inventories(bucket).await.context("reading the bucket's inventory configurations")?
    };
    let existing = current.iter().find(|i| i.id == ours.id);
    let detail = format!(
        "daily CSV report of '{}' into s3://{bucket}/{BYOS_REPORTS_PREFIX}/",
        ours.prefix.as_deref().unwrap_or("")
    );
    if existing == Some(&ours) {
        steps.record(Change::Unchanged, "inventory", &detail)?;
    } else {
        if !steps.is_dry_run() {
            access.put_inventory(bucket, &ours).await.context("writing the inventory configuration")?;
        }
        let change = if existing.is_some() { Change::Updated } else { Change::Created };
        steps.record(change, "inventory", &detail)?;
    }

    let statement = policies::inventory_reports_bucket_policy(&plan.bucket, &c.account, BYOS_REPORTS_PREFIX);
    merge_bucket_policy(c, plan, bucket_is_new, &statement, "S3 Inventory may write its reports", steps).await
}

/// Merges `ours` (statements with their `Sid`s) into the bucket policy, keeping the owner's own.
async fn merge_bucket_policy(
    c: &Connection,
    plan: &Plan,
    bucket_is_new: bool,
    ours: &Value,
    detail: &str,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let bucket = plan.bucket.as_str();
    let current = if bucket_is_new && steps.is_dry_run() {
        None
    } else {
        c.setup.bucket_policy(bucket).await.context("reading the bucket policy")?
    };
    let merged = policies::merge_statements(current.as_deref(), ours)
        .map_err(anyhow::Error::msg)
        .context("the bucket policy")?;
    if !merged.changed {
        return steps.record(Change::Unchanged, "bucket policy", detail);
    }
    if !steps.is_dry_run() {
        c.setup.put_bucket_policy(bucket, &merged.document.to_string()).await.context("writing the bucket policy")?;
    }
    let change = if current.is_some() { Change::Updated } else { Change::Created };
    steps.record(change, "bucket policy", detail)
}
