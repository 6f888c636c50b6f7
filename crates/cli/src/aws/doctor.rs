//! `byos aws doctor`: checks a bucket against everything the platform needs, with the bucket
//! owner's identity, and names the fix for each problem.
//!
//! The checks carry the names of the platform's validation report ([`Check::DOCTOR`]). Where the
//! platform probes with its stored key, the doctor evaluates the platform user's policies
//! (attached, inline, through groups, the permissions boundary) together with the bucket policy
//! or the key policy with [`byos_domain::iam`], so it says which statement grants or denies.
//! Every failure carries the catalogue entry the platform would report and the command that
//! fixes it; `--fix` applies the fixes that touch only what byos owns or adds (CORS rules, the
//! leftover `gds:*` notification rules, byos's own IAM policy), then checks again.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use byos_aws::{AwsErrorKind, BucketAccess, KmsKey};
use byos_domain::cors::{self, CorsRule};
use byos_domain::iam::{Access, Decision, Policies, PolicyDocument, PolicyKind, Request, ResourcePolicy};
use byos_domain::notifications::{self, NotificationConfig, NotificationRule};
use byos_domain::policies::{self, ICA_CONSOLE_ORIGIN};
use byos_domain::{BucketName, Check, ErrorCode, KeyPrefix, KmsKeyArn, Problem, RegionTable, RoleArn, VersioningState};
use serde_json::{Value, json};

use super::connect::{AwsOptions, Connection, Output, connect, print_json, say};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The bucket to check.
    #[arg(long)]
    pub(crate) bucket: String,
    /// The key prefix the platform uses (ends with '/'); the whole bucket without it.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// The region of the project or configuration that will use the bucket.
    #[arg(long, value_name = "REGION")]
    pub(crate) project_region: Option<String>,
    /// The AWS region to ask first; the doctor finds the bucket's own region and reads the rest
    /// there.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
    /// The IAM user the platform signs in as.
    #[arg(long, default_value = "illumina_ica_admin")]
    pub(crate) user: String,
    /// The name of the user's managed IAM policy that byos manages (and --fix may update).
    #[arg(long, default_value = "illumina-ica-admin-policy")]
    pub(crate) policy_name: String,
    /// The SSE-KMS key the platform writes with; the bucket's default key without it.
    #[arg(long, value_name = "ARN")]
    pub(crate) kms_key: Option<String>,
    /// The console origin that uploads from a browser; repeat for several.
    #[arg(long = "origin", value_name = "URL", default_value = ICA_CONSOLE_ORIGIN)]
    pub(crate) origins: Vec<String>,
    /// Also check the region's cross-account copy role.
    #[arg(long)]
    pub(crate) cross_account: bool,
    /// Above this many objects under the prefix, the doctor asks for a fresh S3 Inventory
    /// report, which the server imports from instead of listing the objects.
    #[arg(long, value_name = "OBJECTS", default_value_t = 100_000)]
    pub(crate) inventory_threshold: u64,
    /// Apply the safe fixes after showing them, then check again.
    #[arg(long)]
    pub(crate) fix: bool,
    #[command(flatten)]
    pub(crate) aws: AwsOptions,
}

/// A check's outcome in the doctor's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }
}

/// A change `--fix` may make: it touches only what byos owns or adds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repair {
    /// Add ICA's CORS rule for these origins, keeping the bucket's other rules.
    AddCors(Vec<String>),
    /// Remove these `gds:*` notification rules, left by a platform configuration that is gone.
    RemoveLeftovers(Vec<String>),
    /// Make ICA's document the default version of byos's managed policy.
    SetPolicy { arn: String, document: String },
}

impl Repair {
    fn describe(&self, bucket: &str) -> String {
        match self {
            Repair::AddCors(origins) => format!("add a CORS rule on {bucket} for {}", origins.join(", ")),
            Repair::RemoveLeftovers(ids) => format!("remove the leftover rules {} from {bucket}", ids.join(", ")),
            Repair::SetPolicy { arn, .. } => format!("make ICA's policy the default version of {arn}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Finding {
    check: Check,
    verdict: Verdict,
    detail: String,
    problem: Option<Problem>,
    fix: Option<String>,
    repair: Option<Repair>,
}

impl Finding {
    fn new(check: Check, verdict: Verdict, detail: impl Into<String>) -> Finding {
        Finding { check, verdict, detail: detail.into(), problem: None, fix: None, repair: None }
    }

    fn pass(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Verdict::Pass, detail)
    }

    fn skip(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Verdict::Skip, detail)
    }

    fn warn(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Verdict::Warn, detail)
    }

    fn fail(check: Check, detail: impl Into<String>, problem: Problem, fix: impl Into<String>) -> Finding {
        Finding { problem: Some(problem), fix: Some(fix.into()), ..Finding::new(check, Verdict::Fail, detail) }
    }

    fn with_repair(mut self, repair: Repair) -> Finding {
        self.repair = Some(repair);
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.check.name(),
            "result": self.verdict.as_str().to_ascii_lowercase(),
            "detail": self.detail,
            "error": self.problem.as_ref().map(|p| json!({
                "type": p.entry().error_type,
                "code": p.entry().code,
                "message": p.message(),
                "fix": p.entry().fix,
            })),
            "fixCommand": self.fix,
            "fixable": self.repair.is_some(),
        })
    }
}

/// The arguments, parsed.
struct Target {
    bucket: BucketName,
    prefix: Option<KeyPrefix>,
    kms_key: Option<KmsKeyArn>,
    project_region: Option<String>,
}

/// What the doctor read from AWS; the checks are pure functions of it.
struct Facts {
    account: String,
    bucket_region: Result<String, String>,
    user: Option<byos_aws::IamUser>,
    access_keys: Vec<String>,
    identity: Vec<(String, PolicyDocument)>,
    boundary: Option<PolicyDocument>,
    /// Policies that could not be parsed, with why.
    unreadable: Vec<String>,
    our_policy: Option<String>,
    encryption: Option<byos_aws::DefaultEncryption>,
    versioning: Option<VersioningState>,
    notifications: Result<NotificationConfig, String>,
    cors: Result<Option<Vec<CorsRule>>, String>,
    abort_rules: Result<Vec<byos_aws::AbortUploadsRule>, String>,
    inventory: Result<InventoryFacts, String>,
    bucket_policy: Result<Option<PolicyDocument>, String>,
    kms: Option<KmsFacts>,
    /// Whether the account the platform's user is in (the doctor's) owns the bucket.
    owned: Result<bool, String>,
}

/// How many objects the prefix holds, and the inventory reports that could stand for them.
struct InventoryFacts {
    /// Counted up to the threshold and one more.
    objects: u64,
    /// The bucket's inventory configurations; why they cannot be read.
    inventories: Result<Vec<byos_aws::Inventory>, String>,
    /// The newest complete report of each inventory that fits the prefix.
    reports: Vec<(String, Result<Option<byos_aws::Manifest>, String>)>,
    now_ms: i64,
}

/// The KMS key the platform writes with.
struct KmsFacts {
    named: String,
    key: Option<KmsKey>,
    policy: Result<PolicyDocument, String>,
}

pub(crate) async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let target = Target {
        bucket: BucketName::parse(&args.bucket).context("--bucket")?,
        prefix: args.prefix.as_deref().map(KeyPrefix::parse).transpose().context("--prefix")?,
        kms_key: args.kms_key.as_deref().map(KmsKeyArn::parse).transpose().context("--kms-key")?,
        project_region: args.project_region.clone(),
    };
    if let Some(region) = &target.project_region
        && RegionTable::builtin().get(region).is_none()
    {
        anyhow::bail!(
            "--project-region: {region:?} is not a platform region; one of: {}",
            RegionTable::builtin().aws_region_list()
        );
    }
    // The bucket's region is found first: S3 tells it to any region's client, and KMS keys and
    // the rest are read in it.
    let first = connect(&args.aws, target.project_region.as_deref().unwrap_or(&args.region)).await?;
    let bucket_region = match first.aws.own_bucket_access(&first.region).bucket_region(target.bucket.as_str()).await {
        Ok(region) => Ok(region),
        Err(e) if matches!(e.kind, AwsErrorKind::NoSuchBucket | AwsErrorKind::NotFound) => Err(e.to_string()),
        Err(e) => return Err(e).context("looking for the bucket"),
    };
    let connection = match &bucket_region {
        Ok(region) if first.region != region.as_str() => connect(&args.aws, region).await?,
        _ => first,
    };
    let mut findings = examine(&connection, &args, &target, bucket_region.clone()).await?;
    let table = args.aws.output == Output::Table;
    let mut repairs: Vec<Repair> = Vec::new();
    for repair in findings.iter().filter_map(|f| f.repair.clone()) {
        if !repairs.contains(&repair) {
            repairs.push(repair);
        }
    }
    let mut applied = Vec::new();
    if args.fix && !repairs.is_empty() {
        if table {
            report(&connection, &target, &findings)?;
            say("\nApplying fixes:")?;
        }
        for repair in &repairs {
            let description = repair.describe(target.bucket.as_str());
            if table {
                say(format_args!("  - {description}"))?;
            }
            apply(&connection, &target, repair).await?;
            applied.push(description);
        }
        findings = examine(&connection, &args, &target, bucket_region).await?;
        if table {
            say("\nChecking again:\n")?;
        }
    }
    if table {
        report(&connection, &target, &findings)?;
        if args.fix && repairs.is_empty() {
            say("Nothing that --fix can change.")?;
        }
    } else {
        print_json(&json!({
            "bucket": target.bucket.as_str(),
            "region": connection.region,
            "account": connection.account,
            "checks": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "failed": findings.iter().filter(|f| f.verdict == Verdict::Fail).count(),
            "warnings": findings.iter().filter(|f| f.verdict == Verdict::Warn).count(),
            "fixesApplied": applied,
        }))?;
    }
    let failed = findings.iter().any(|f| f.verdict == Verdict::Fail);
    Ok(if failed { ExitCode::from(super::CHECKS_FAILED) } else { ExitCode::SUCCESS })
}

/// Reads what the checks need and runs them.
async fn examine(
    c: &Connection,
    args: &DoctorArgs,
    target: &Target,
    bucket_region: Result<String, String>,
) -> anyhow::Result<Vec<Finding>> {
    let facts = gather(c, args, target, bucket_region).await?;
    Ok(Doctor { args, target, facts: &facts }.checks())
}

async fn gather(
    c: &Connection,
    args: &DoctorArgs,
    target: &Target,
    bucket_region: Result<String, String>,
) -> anyhow::Result<Facts> {
    let bucket = target.bucket.as_str();
    let user = c.setup.user(&args.user).await.context("looking up the IAM user")?;
    let mut facts = Facts {
        account: c.account.clone(),
        bucket_region,
        user,
        access_keys: Vec::new(),
        identity: Vec::new(),
        boundary: None,
        unreadable: Vec::new(),
        our_policy: None,
        encryption: None,
        versioning: None,
        notifications: Err("not read".to_owned()),
        cors: Err("not read".to_owned()),
        abort_rules: Err("not read".to_owned()),
        inventory: Err("not read".to_owned()),
        bucket_policy: Ok(None),
        kms: None,
        owned: Err("not read".to_owned()),
    };
    if facts.user.is_some() {
        facts.access_keys = c.setup.active_access_keys(&args.user).await.context("listing the user's access keys")?;
        let applied = c.setup.user_policies(&args.user).await.context("reading the user's policies")?;
        let ours = format!("arn:aws:iam::{}:policy/{}", c.account, args.policy_name);
        for policy in applied.identity {
            if policy.source.ends_with(&ours) {
                facts.our_policy = Some(ours.clone());
            }
            match PolicyDocument::parse_as(&policy.document, PolicyKind::Identity) {
                Ok(document) => facts.identity.push((policy.source, document)),
                Err(e) => facts.unreadable.push(format!("{}: {e}", policy.source)),
            }
        }
        if let Some(boundary) = applied.boundary {
            match PolicyDocument::parse_as(&boundary.document, PolicyKind::Identity) {
                Ok(document) => facts.boundary = Some(document),
                Err(e) => facts.unreadable.push(format!("{}: {e}", boundary.source)),
            }
        }
    }
    if facts.bucket_region.is_err() {
        return Ok(facts);
    }
    let access: BucketAccess = c.aws.own_bucket_access(&c.region);
    facts.encryption = c.setup.bucket_encryption(bucket).await.context("reading the default encryption")?;
    facts.versioning = Some(access.versioning(bucket).await.context("reading the versioning state")?);
    facts.owned = access
        .owned_by(bucket, target.prefix.as_ref().map_or("", |p| p.as_str()), &c.account)
        .await
        .map_err(|e| e.to_string());
    facts.notifications = access.notifications(bucket).await.map_err(|e| e.to_string());
    facts.cors = access.cors_rules(bucket).await.map_err(|e| e.to_string());
    facts.abort_rules = c.setup.abort_upload_rules(bucket).await.map_err(|e| e.to_string());
    let versioned = facts.versioning.is_some_and(|v| v != VersioningState::Unversioned);
    facts.inventory = inventory_facts(&access, bucket, target, versioned, args.inventory_threshold).await;
    facts.bucket_policy = match c.setup.bucket_policy(bucket).await.context("reading the bucket policy")? {
        None => Ok(None),
        Some(text) => PolicyDocument::parse_as(&text, PolicyKind::Resource).map(Some).map_err(|e| e.to_string()),
    };
    let named = target.kms_key.as_ref().map(|k| k.as_str().to_owned()).or_else(|| {
        facts.encryption.as_ref().filter(|e| e.algorithm.starts_with("aws:kms")).and_then(|e| e.kms_key.clone())
    });
    if let Some(named) = named {
        let key = c.setup.kms_key(&named).await.context("looking up the KMS key")?;
        let policy = match &key {
            Some(key) => match c.setup.kms_key_policy(&key.arn).await {
                Ok(text) => PolicyDocument::parse_as(&text, PolicyKind::Resource).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => Err("the key does not exist".to_owned()),
        };
        facts.kms = Some(KmsFacts { named, key, policy });
    }
    Ok(facts)
}

/// Counts the prefix's objects up to `threshold` (one more says "above it"), and, above it,
/// reads the inventories and their latest reports.
async fn inventory_facts(
    access: &BucketAccess,
    bucket: &str,
    target: &Target,
    versioned: bool,
    threshold: u64,
) -> Result<InventoryFacts, String> {
    let prefix = target.prefix.as_ref().map_or("", KeyPrefix::as_str);
    let mut objects = 0;
    let mut after = None;
    while objects <= threshold {
        let page = access.list_objects_page(bucket, prefix, after.as_ref(), 1000).await.map_err(|e| e.to_string())?;
        objects += page.entries.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let now_ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
    let mut facts = InventoryFacts { objects, inventories: Ok(Vec::new()), reports: Vec::new(), now_ms };
    if objects <= threshold {
        return Ok(facts);
    }
    facts.inventories = access.inventories(bucket).await.map_err(|e| e.to_string());
    for inventory in facts.inventories.as_ref().map_or(&[][..], Vec::as_slice) {
        if inventory.unfit_for(prefix, versioned).is_none() {
            let report = access.latest_report(bucket, inventory).await.map_err(|e| e.to_string());
            facts.reports.push((inventory.id.clone(), report));
        }
    }
    Ok(facts)
}

/// The checks, as pure functions of the facts.
struct Doctor<'a> {
    args: &'a DoctorArgs,
    target: &'a Target,
    facts: &'a Facts,
}

/// The platform's queues are named `byos-events-{region}`.
const QUEUE_PREFIX: &str = "byos-events-";

/// The object key a permission check asks about: a probe under the prefix.
const PROBE_KEY: &str = ".byos-probe-doctor";

impl Doctor<'_> {
    fn bucket(&self) -> &str {
        self.target.bucket.as_str()
    }

    fn prefix(&self) -> &str {
        self.target.prefix.as_ref().map_or("", KeyPrefix::as_str)
    }

    fn region(&self) -> &str {
        self.facts.bucket_region.as_deref().unwrap_or("us-east-1")
    }

    fn versioned(&self) -> bool {
        self.facts.versioning.is_some_and(|v| v != VersioningState::Unversioned)
    }

    fn kms_arn(&self) -> Option<KmsKeyArn> {
        self.facts.kms.as_ref().and_then(|k| k.key.as_ref()).and_then(|k| KmsKeyArn::parse(&k.arn).ok())
    }

    /// `byos aws bootstrap` with what the doctor was told: it creates or corrects everything.
    fn bootstrap_command(&self, region: &str) -> String {
        let mut command = format!("byos aws bootstrap --bucket {} --region {region}", self.bucket());
        if let Some(prefix) = &self.target.prefix {
            let _ = write!(command, " --prefix {prefix}");
        }
        if self.versioned() {
            command.push_str(" --versioned");
        }
        if let Some(key) = &self.facts.kms {
            let _ = write!(command, " --kms-key {}", key.key.as_ref().map_or(key.named.as_str(), |k| k.arn.as_str()));
        }
        if self.args.user != "illumina_ica_admin" {
            let _ = write!(command, " --user {}", self.args.user);
        }
        command
    }

    /// Bootstrap with a new key of the bucket's region instead of the one configured.
    fn new_key_command(&self, region: &str) -> String {
        let command = self.bootstrap_command(region);
        format!("{} --create-kms-key", command.split(" --kms-key").next().unwrap_or_default())
    }

    /// The commands that put ICA's policy in place for the user.
    fn policy_fix(&self) -> String {
        let mut print = format!("byos aws policy --bucket {}", self.bucket());
        if let Some(prefix) = &self.target.prefix {
            let _ = write!(print, " --prefix {prefix}");
        }
        if self.versioned() {
            print.push_str(" --versioned");
        }
        if let Some(key) = self.kms_arn() {
            let _ = write!(print, " --kms-key {key}");
        }
        let arn = format!("arn:aws:iam::{}:policy/{}", self.facts.account, self.args.policy_name);
        if self.facts.our_policy.is_some() {
            format!(
                "{print} > policy.json && aws iam create-policy-version --policy-arn {arn} --policy-document file://policy.json --set-as-default"
            )
        } else {
            format!(
                "{print} > policy.json && aws iam create-policy --policy-name {} --policy-document file://policy.json && aws iam attach-user-policy --user-name {} --policy-arn {arn}",
                self.args.policy_name, self.args.user
            )
        }
    }

    /// `--fix` may rewrite the policy only when it is byos's own, attached to the user.
    fn policy_repair(&self) -> Option<Repair> {
        let arn = self.facts.our_policy.clone()?;
        let document = policies::iam_policy(
            &self.target.bucket,
            self.target.prefix.as_ref(),
            self.facts.versioning.unwrap_or(VersioningState::Unversioned),
            self.kms_arn().as_ref(),
        );
        Some(Repair::SetPolicy { arn, document: document.to_string() })
    }

    fn request(&self, action: &str, resource: &str) -> Request {
        let user = self.facts.user.as_ref();
        let mut request = Request::new(action, resource)
            .with_context("aws:SecureTransport", "true")
            .with_context("aws:PrincipalAccount", self.facts.account.as_str());
        if let Some(user) = user {
            request = request
                .with_principal(user.arn.as_str())
                .with_context("aws:username", user.name.as_str())
                .with_context("aws:userid", user.user_id.as_str());
        }
        if action.eq_ignore_ascii_case("s3:ListBucket") || action.eq_ignore_ascii_case("s3:ListBucketVersions") {
            request = request.with_context("s3:prefix", self.prefix());
        }
        request
    }

    fn decide(&self, request: &Request, resource: ResourcePolicy<'_>) -> Decision {
        let identity: Vec<&PolicyDocument> = self.facts.identity.iter().map(|(_, d)| d).collect();
        Policies { identity: &identity, boundary: self.facts.boundary.as_ref(), resource }.decide(request)
    }

    fn bucket_policy(&self) -> ResourcePolicy<'_> {
        match &self.facts.bucket_policy {
            Ok(Some(document)) => ResourcePolicy::Standard(document),
            _ => ResourcePolicy::Absent,
        }
    }

    /// Says which policy and statement decided, for a person.
    fn why(&self, decision: &Decision) -> String {
        let Some(deciding) = &decision.deciding else {
            return match decision.effect {
                Access::ImplicitlyDenied => "no statement allows it".to_owned(),
                Access::Undetermined => match decision.unevaluated.first() {
                    Some(u) => format!(
                        "it depends on {} in statement {}, which the doctor cannot evaluate",
                        u.unsupported, u.statement
                    ),
                    None => "it cannot be told".to_owned(),
                },
                _ => String::new(),
            };
        };
        let policy = match deciding.policy {
            byos_domain::iam::PolicySource::Identity(i) => {
                self.facts.identity.get(i).map_or_else(|| "an identity policy".to_owned(), |(s, _)| s.clone())
            }
            byos_domain::iam::PolicySource::Boundary => "the permissions boundary".to_owned(),
            byos_domain::iam::PolicySource::Resource => "the bucket policy".to_owned(),
            byos_domain::iam::PolicySource::KeyPolicy => "the key policy".to_owned(),
        };
        format!("statement {} of {policy}", deciding.statement)
    }

    /// A check that the user may do every `(action, resource)`.
    fn permissions(&self, check: Check, wanted: &[(&str, String)], resource: ResourcePolicy<'_>) -> Finding {
        if self.facts.user.is_none() {
            return Finding::skip(check, format!("not run: user {} does not exist", self.args.user));
        }
        let mut warnings = Vec::new();
        for (action, arn) in wanted {
            let decision = self.decide(&self.request(action, arn), resource);
            match decision.effect {
                Access::Allowed => {}
                Access::Undetermined => warnings.push(format!("{action} on {arn}: {}", self.why(&decision))),
                Access::ImplicitlyDenied | Access::ExplicitlyDenied => {
                    let how = if decision.effect == Access::ExplicitlyDenied {
                        "explicitly denied by"
                    } else {
                        "not granted:"
                    };
                    let detail = format!("{action} on {arn} is {how} {}", self.why(&decision));
                    let problem = if action.starts_with("kms:") {
                        Problem::access_forbidden(&format!("Access Denied ({action} on key '{arn}' is not granted)"))
                    } else {
                        Problem::access_forbidden(&format!(
                            "Access Denied ({action} on bucket '{}' is not granted)",
                            self.bucket()
                        ))
                    };
                    let fix = match (&decision.deciding, decision.effect) {
                        (Some(d), Access::ExplicitlyDenied) => {
                            format!(
                                "remove {action} from the Deny of statement {} ({}), or narrow it",
                                d.statement,
                                self.why(&decision)
                            )
                        }
                        _ => self.policy_fix(),
                    };
                    let finding = Finding::fail(check, detail, problem, fix);
                    return match (decision.effect, self.policy_repair()) {
                        (Access::ImplicitlyDenied, Some(repair)) => finding.with_repair(repair),
                        _ => finding,
                    };
                }
            }
        }
        if !warnings.is_empty() {
            return Finding::warn(check, warnings.join("; "));
        }
        let actions: Vec<&str> = wanted.iter().map(|(a, _)| *a).collect();
        Finding::pass(check, format!("{} granted to {}", actions.join(", "), self.args.user))
    }

    fn checks(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        findings.push(self.credential());
        findings.push(Finding::skip(Check::RoleRequiresExternalId, "the platform's user is an IAM user, not a role"));
        findings.extend(self.bucket_checks());
        if self.facts.bucket_region.is_err() {
            for check in Check::DOCTOR {
                if !findings.iter().any(|f| f.check == check) {
                    findings.push(Finding::skip(check, "not run: the bucket does not exist"));
                }
            }
            return findings;
        }
        findings.push(self.encryption());
        let bucket_arn = format!("arn:aws:s3:::{}", self.bucket());
        let object_arn = format!("{bucket_arn}/{}{PROBE_KEY}", self.prefix());
        let resource = self.bucket_policy();
        findings.push(self.permissions(Check::ObjectsListable, &[("s3:ListBucket", bucket_arn.clone())], resource));
        findings.push(self.bucket_owner());
        findings.push(self.permissions(Check::ProbeWritable, &[("s3:PutObject", object_arn.clone())], resource));
        findings.push(self.permissions(Check::ProbeReadable, &[("s3:GetObject", object_arn.clone())], resource));
        let mut delete = vec![("s3:DeleteObject", object_arn.clone())];
        if self.versioned() {
            delete.push(("s3:DeleteObjectVersion", object_arn.clone()));
        }
        findings.push(self.permissions(Check::ProbeDeletable, &delete, resource));
        findings.push(self.versioning(&bucket_arn, &object_arn));
        findings.push(self.permissions(
            Check::NotificationsReadable,
            &[("s3:GetBucketNotification", bucket_arn.clone())],
            resource,
        ));
        findings.push(self.notifications(&bucket_arn));
        findings.extend(self.kms());
        findings.push(self.cors());
        findings.push(self.abort_uploads());
        findings.push(self.inventory());
        findings.push(self.bucket_policy_check(&bucket_arn, &object_arn));
        findings.push(self.permissions(
            Check::FederationAllowed,
            &[("sts:GetFederationToken", format!("arn:aws:sts::{}:federated-user/byos-doctor", self.facts.account))],
            ResourcePolicy::Absent,
        ));
        findings.push(self.copy_role(&bucket_arn));
        findings
    }

    /// The queue accepts the bucket's events from the account of the platform's user only: the
    /// user must be in the account that owns the bucket.
    fn bucket_owner(&self) -> Finding {
        let account = &self.facts.account;
        match &self.facts.owned {
            Ok(true) => {
                Finding::pass(Check::BucketOwnerKnown, format!("account {account}, the user's, owns the bucket"))
            }
            Ok(false) => Finding::fail(
                Check::BucketOwnerKnown,
                format!("account {account}, the user's, does not own the bucket"),
                Problem::new(ErrorCode::BucketOwnerMismatch, &[("bucket", self.bucket()), ("account", account)]),
                "create the platform's IAM user in the account that owns the bucket".to_owned(),
            ),
            Err(e) => Finding::warn(Check::BucketOwnerKnown, format!("could not check the bucket's owner: {e}")),
        }
    }

    fn credential(&self) -> Finding {
        let user = &self.args.user;
        let invalid = || Problem::from(ErrorCode::InvalidAccessKeyId);
        let mut finding = match &self.facts.user {
            None => Finding::fail(
                Check::CredentialValid,
                format!("IAM user {user} does not exist"),
                invalid(),
                self.bootstrap_command(self.facts.bucket_region.as_deref().unwrap_or("REGION")),
            ),
            Some(_) if self.facts.access_keys.is_empty() => Finding::fail(
                Check::CredentialValid,
                format!("IAM user {user} has no active access key"),
                invalid(),
                format!("aws iam create-access-key --user-name {user}"),
            ),
            Some(_) => {
                let keys: Vec<String> = self
                    .facts
                    .access_keys
                    .iter()
                    .map(|k| byos_domain::AccessKeyId::parse(k).map_or_else(|_| k.clone(), |k| k.masked()))
                    .collect();
                Finding::pass(
                    Check::CredentialValid,
                    format!("IAM user {user} has an active access key ({})", keys.join(", ")),
                )
            }
        };
        if finding.verdict == Verdict::Pass && !self.facts.unreadable.is_empty() {
            finding = Finding::warn(
                Check::CredentialValid,
                format!("{}; policies that could not be read: {}", finding.detail, self.facts.unreadable.join("; ")),
            );
        }
        finding
    }

    fn bucket_checks(&self) -> Vec<Finding> {
        let bucket = self.bucket();
        let actual = match &self.facts.bucket_region {
            Ok(region) => region,
            Err(e) => {
                let region = self.target.project_region.as_deref().unwrap_or("REGION");
                return vec![Finding::fail(
                    Check::BucketExists,
                    e.clone(),
                    Problem::bucket_not_found(bucket),
                    self.bootstrap_command(region),
                )];
            }
        };
        let exists = Finding::pass(Check::BucketExists, format!("bucket '{bucket}' exists"));
        let table = RegionTable::builtin();
        let in_region = match (&self.target.project_region, table.get(actual)) {
            (Some(wanted), _) if wanted != actual => Finding::fail(
                Check::BucketInRegion,
                format!("the bucket is in {actual}, the project in {wanted}"),
                Problem::bucket_wrong_region(wanted),
                format!("a bucket cannot move: {}", self.bootstrap_command(wanted).replacen(bucket, "NEW-BUCKET", 1)),
            ),
            (_, None) => Finding::fail(
                Check::BucketInRegion,
                format!("the bucket is in {actual}, which is not a platform region"),
                Problem::region_not_supported(&table.aws_region_list()),
                format!(
                    "a bucket cannot move: {}",
                    self.bootstrap_command("eu-central-1").replacen(bucket, "NEW-BUCKET", 1)
                ),
            ),
            (_, Some(region)) => {
                Finding::pass(Check::BucketInRegion, format!("the bucket is in {actual} ({})", region.name))
            }
        };
        vec![exists, in_region]
    }

    fn encryption(&self) -> Finding {
        match &self.facts.encryption {
            None => Finding::warn(
                Check::EncryptionConfigured,
                "no default encryption configured: S3 encrypts new objects with SSE-S3",
            ),
            Some(e) if e.algorithm == "AES256" => Finding::pass(Check::EncryptionConfigured, "SSE-S3 (AES256)"),
            Some(e) => Finding::pass(
                Check::EncryptionConfigured,
                format!("{} with {}", e.algorithm, e.kms_key.as_deref().unwrap_or("the AWS managed key aws/s3")),
            ),
        }
    }

    fn versioning(&self, bucket_arn: &str, object_arn: &str) -> Finding {
        let state = self.facts.versioning.unwrap_or(VersioningState::Unversioned);
        if !self.versioned() {
            return Finding::pass(
                Check::VersioningReadable,
                "the bucket is unversioned: the version actions are not needed",
            );
        }
        let mut finding = self.permissions(
            Check::VersioningReadable,
            &[
                ("s3:GetBucketVersioning", bucket_arn.to_owned()),
                ("s3:ListBucketVersions", bucket_arn.to_owned()),
                ("s3:GetObjectVersion", object_arn.to_owned()),
            ],
            self.bucket_policy(),
        );
        finding.detail = format!("versioning {}: {}", state.as_str(), finding.detail);
        finding
    }

    fn notifications(&self, bucket_arn: &str) -> Finding {
        let granted = self.permissions(
            Check::NotificationsWritable,
            &[("s3:PutBucketNotification", bucket_arn.to_owned())],
            self.bucket_policy(),
        );
        if granted.verdict == Verdict::Fail {
            return granted;
        }
        let existing = match &self.facts.notifications {
            Ok(existing) => existing,
            Err(e) => {
                return Finding::warn(Check::NotificationsWritable, format!("cannot read the notification rules: {e}"));
            }
        };
        let queue = format!("arn:aws:sqs:{}:{}:byos-events-{}", self.region(), self.facts.account, self.region());
        let desired = notifications::our_rules(&queue, self.target.prefix.as_ref(), None);
        // Rules of ours are leftovers or another configuration's: the platform adopts them, so
        // only the owner's own rules can conflict.
        let theirs = notifications::without(existing, notifications::is_ours);
        if let Err(conflict) = notifications::plan(&theirs, &desired, |_| true) {
            let ids: Vec<&str> =
                conflict.collisions.iter().map(|c| c.rule_id.as_deref().unwrap_or("(no id)")).collect();
            return Finding::fail(
                Check::NotificationsWritable,
                format!("the bucket's own rule(s) {} overlap the platform's on '{}'", ids.join(", "), self.prefix()),
                conflict.problem(),
                format!(
                    "aws s3api get-bucket-notification-configuration --bucket {b} > notifications.json, then move rule {} to \
                     another prefix or event type (or pick another --prefix) and aws s3api \
                     put-bucket-notification-configuration --bucket {b} --notification-configuration file://notifications.json",
                    ids.join(", "),
                    b = self.bucket()
                ),
            );
        }
        // The platform's rules on this prefix to a byos queue are a live configuration's; other
        // gds:* rules (another queue, another prefix) were left by one that is gone.
        let live = |r: &NotificationRule| {
            r.prefix.as_deref().unwrap_or("") == self.prefix()
                && r.destination.arn().rsplit(':').next().is_some_and(|q| q.starts_with(QUEUE_PREFIX))
        };
        let leftovers: Vec<String> = existing
            .rules
            .iter()
            .filter(|r| notifications::is_ours(r) && !live(r))
            .filter_map(|r| r.id.clone())
            .collect();
        if !leftovers.is_empty() {
            let mut finding = Finding::warn(
                Check::NotificationsWritable,
                format!(
                    "leftover platform rules {} (not this prefix's, or to another queue): remove them with --fix",
                    leftovers.join(", ")
                ),
            )
            .with_repair(Repair::RemoveLeftovers(leftovers));
            finding.fix = Some(format!("byos aws doctor --bucket {} --prefix {} --fix", self.bucket(), self.prefix()));
            return finding;
        }
        let in_place = existing.rules.iter().filter(|r| notifications::is_ours(r) && live(r)).count();
        let state = if in_place == 0 {
            "the platform's rules are not set yet (it adds them when it validates the configuration)".to_owned()
        } else {
            format!("{in_place} platform rules in place")
        };
        Finding::pass(
            Check::NotificationsWritable,
            format!(
                "{}; {state}; no rule of the bucket's overlaps the platform's on '{}'",
                granted.detail,
                self.prefix()
            ),
        )
    }

    fn kms(&self) -> Vec<Finding> {
        let Some(kms) = &self.facts.kms else {
            return vec![
                Finding::skip(Check::KmsKeyInRegion, "no SSE-KMS key configured"),
                Finding::skip(Check::KmsKeyUsable, "no SSE-KMS key configured"),
            ];
        };
        let region = self.region();
        let Some(key) = &kms.key else {
            return vec![
                Finding::fail(
                    Check::KmsKeyInRegion,
                    format!("KMS key {} does not exist in {region}", kms.named),
                    Problem::invalid_parameters(&format!(
                        "serverSideEncryption.keyName: the KMS key {} does not exist in {region}; the key must be in the bucket's region",
                        kms.named
                    )),
                    self.new_key_command(region),
                ),
                Finding::skip(Check::KmsKeyUsable, "not run: the key does not exist"),
            ];
        };
        let key_region = key.arn.split(':').nth(3).unwrap_or_default();
        let in_region = if key_region == region {
            Finding::pass(Check::KmsKeyInRegion, format!("{} is in {region}", key.arn))
        } else {
            Finding::fail(
                Check::KmsKeyInRegion,
                format!("the key is in {key_region}, the bucket in {region}"),
                Problem::invalid_parameters(&format!(
                    "serverSideEncryption.keyName: the KMS key is in {key_region} but the bucket is in {region}"
                )),
                self.new_key_command(region),
            )
        };
        let usable = if !key.enabled {
            Finding::fail(
                Check::KmsKeyUsable,
                format!("{} is disabled", key.arn),
                Problem::invalid_parameters(&format!(
                    "serverSideEncryption.keyName: the KMS key {} is disabled",
                    key.arn
                )),
                format!("aws kms enable-key --key-id {}", key.arn),
            )
        } else {
            match &kms.policy {
                Ok(policy) => self.permissions(
                    Check::KmsKeyUsable,
                    &[
                        ("kms:Decrypt", key.arn.clone()),
                        ("kms:Encrypt", key.arn.clone()),
                        ("kms:GenerateDataKey", key.arn.clone()),
                    ],
                    ResourcePolicy::KmsKey(policy),
                ),
                Err(e) => Finding::warn(Check::KmsKeyUsable, format!("cannot read the key policy: {e}")),
            }
        };
        vec![in_region, usable]
    }

    fn cors(&self) -> Finding {
        let rules = match &self.facts.cors {
            Ok(rules) => rules.clone().unwrap_or_default(),
            Err(e) => return Finding::warn(Check::CorsAllowsConsoleOrigin, format!("cannot read the CORS rules: {e}")),
        };
        let mut reasons = Vec::new();
        let mut missing = Vec::new();
        for origin in &self.args.origins {
            for method in ["PUT", "POST", "GET"] {
                if let Err(reason) = cors::allows_uploads(&rules, origin, method) {
                    reasons.push(reason);
                    missing.push(origin.clone());
                    break;
                }
            }
        }
        if missing.is_empty() {
            return Finding::pass(
                Check::CorsAllowsConsoleOrigin,
                format!("browser uploads allowed from {}", self.args.origins.join(", ")),
            );
        }
        let (detail, cause) = if rules.is_empty() {
            (
                format!("the bucket has no CORS rules: browser uploads from {} will fail", missing.join(", ")),
                "the bucket has no CORS rules".to_owned(),
            )
        } else {
            (reasons.join("; "), reasons.join("; "))
        };
        let origins: Vec<String> = missing.iter().map(|o| format!("--origin {o}")).collect();
        let fix = if rules.is_empty() {
            format!(
                "byos aws cors {} > cors.json && aws s3api put-bucket-cors --bucket {} --cors-configuration file://cors.json",
                origins.join(" "),
                self.bucket()
            )
        } else {
            format!(
                "byos aws doctor --bucket {} --fix (adds the rule, keeping the bucket's {} rules)",
                self.bucket(),
                rules.len()
            )
        };
        let problem = Problem::new(ErrorCode::CorsBlocksUploads, &[("message", &cause)]);
        Finding::fail(Check::CorsAllowsConsoleOrigin, detail, problem, fix).with_repair(Repair::AddCors(missing))
    }

    /// A lifecycle rule that aborts the multipart uploads nobody completes: advice, since the
    /// server aborts those it started while it runs.
    fn abort_uploads(&self) -> Finding {
        const CHECK: Check = Check::AbortsIncompleteUploads;
        let rules = match &self.facts.abort_rules {
            Ok(rules) => rules,
            Err(e) => return Finding::warn(CHECK, format!("cannot read the lifecycle rules: {e}")),
        };
        let prefix = self.prefix();
        if let Some(rule) = rules.iter().find(|r| r.enabled && prefix.starts_with(&r.prefix)) {
            let id = rule.id.as_deref().map_or_else(String::new, |id| format!(" (rule {id})"));
            return Finding::pass(
                CHECK,
                format!("incomplete multipart uploads aborted after {} day(s){id}", rule.days),
            );
        }
        Finding::warn(
            CHECK,
            format!(
                "no enabled lifecycle rule aborts incomplete multipart uploads under '{prefix}': the parts of an upload \
                 nobody completes cost storage until someone aborts them (the server does, after \
                 data.abandoned_upload_hours, while it runs); byos aws bootstrap --bucket {} adds one",
                self.bucket()
            ),
        )
    }

    /// Above the threshold, a fresh report of an inventory that fits the prefix: advice, since
    /// the server lists a bucket without one.
    fn inventory(&self) -> Finding {
        const CHECK: Check = Check::InventoryReportFresh;
        /// A daily report is at most a day old, and S3 takes up to a day more to deliver it.
        const FRESH_MS: i64 = 48 * 3600 * 1000;
        let facts = match &self.facts.inventory {
            Ok(facts) => facts,
            Err(e) => return Finding::warn(CHECK, format!("cannot count the objects under the prefix: {e}")),
        };
        let (prefix, threshold) = (self.prefix(), self.args.inventory_threshold);
        if facts.objects <= threshold {
            return Finding::pass(
                CHECK,
                format!("{} object(s) under '{prefix}', up to {threshold}: listing them is quick", facts.objects),
            );
        }
        let setup = format!("byos aws bootstrap --bucket {} --region {} --inventory", self.bucket(), self.region());
        let inventories = match &facts.inventories {
            Ok(inventories) => inventories,
            Err(e) => return Finding::warn(CHECK, format!("cannot read the bucket's inventory configurations: {e}")),
        };
        let newest = facts
            .reports
            .iter()
            .filter_map(|(id, report)| report.as_ref().ok().and_then(Option::as_ref).map(|m| (id, m)))
            .max_by_key(|(_, m)| m.created_ms);
        let Some((id, manifest)) = newest else {
            if facts.reports.is_empty() {
                let why: Vec<String> = inventories
                    .iter()
                    .filter_map(|i| i.unfit_for(prefix, self.versioned()).map(|why| format!("{}: {why}", i.id)))
                    .collect();
                let why = if why.is_empty() { "the bucket has none".to_owned() } else { why.join("; ") };
                return Finding::warn(
                    CHECK,
                    format!(
                        "more than {threshold} objects under '{prefix}' and no inventory covers them as the server \
                         needs ({why}): every import and reconcile lists them all; {setup} sets one up"
                    ),
                );
            }
            let errors: Vec<String> =
                facts.reports.iter().filter_map(|(id, r)| r.as_ref().err().map(|e| format!("{id}: {e}"))).collect();
            let detail = if errors.is_empty() {
                "no complete report yet: S3 delivers the first within 48 hours of setting an inventory up".to_owned()
            } else {
                format!("cannot read the latest report ({})", errors.join("; "))
            };
            return Finding::warn(CHECK, detail);
        };
        let hours = (facts.now_ms - manifest.created_ms) / 3_600_000;
        if facts.now_ms - manifest.created_ms > FRESH_MS {
            return Finding::warn(
                CHECK,
                format!(
                    "the latest report of inventory {id} is {hours} hours old: the server lists the bucket instead; \
                     check that the inventory is enabled and S3 may write its reports ({setup})"
                ),
            );
        }
        Finding::pass(CHECK, format!("inventory {id}: a report {hours} hour(s) old ({})", manifest.key))
    }

    /// The bucket policy on its own: a Deny that catches the user or its federated users.
    fn bucket_policy_check(&self, bucket_arn: &str, object_arn: &str) -> Finding {
        let document = match &self.facts.bucket_policy {
            Ok(None) => return Finding::pass(Check::BucketPolicyAllowsPlatform, "the bucket has no bucket policy"),
            Ok(Some(document)) => document,
            Err(e) => {
                return Finding::warn(Check::BucketPolicyAllowsPlatform, format!("cannot read the bucket policy: {e}"));
            }
        };
        let Some(user) = &self.facts.user else {
            return Finding::skip(
                Check::BucketPolicyAllowsPlatform,
                format!("not run: user {} does not exist", self.args.user),
            );
        };
        let federated = format!("arn:aws:sts::{}:federated-user/byos-doctor", self.facts.account);
        let mut wanted: Vec<(&str, &str, &str)> =
            ["s3:ListBucket", "s3:GetBucketNotification", "s3:PutBucketNotification"]
                .into_iter()
                .map(|a| (user.arn.as_str(), a, bucket_arn))
                .collect();
        for action in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"] {
            wanted.push((user.arn.as_str(), action, object_arn));
            wanted.push((federated.as_str(), action, object_arn));
        }
        for (principal, action, arn) in wanted {
            let mut request = self.request(action, arn);
            if principal != user.arn {
                request = Request::new(action, arn)
                    .with_principal(principal)
                    .with_context("aws:SecureTransport", "true")
                    .with_context("aws:PrincipalAccount", self.facts.account.as_str());
            }
            let outcome = document.evaluate(&request, PolicyKind::Resource);
            if let byos_domain::iam::Outcome::ExplicitDeny { statement } = outcome {
                let who = if principal == user.arn {
                    format!("user {}", self.args.user)
                } else {
                    "its federated users".to_owned()
                };
                return Finding::fail(
                    Check::BucketPolicyAllowsPlatform,
                    format!("statement {statement} of the bucket policy denies {who} {action} on {arn}"),
                    Problem::access_forbidden(&format!(
                        "Access Denied ({action} on bucket '{}' is not granted)",
                        self.bucket()
                    )),
                    format!(
                        "add the platform's exceptions to statement {statement}: byos aws bucket-policy --bucket {} --deny-all {} --user {} \
                         shows them; then aws s3api put-bucket-policy --bucket {} --policy file://bucket-policy.json",
                        self.bucket(),
                        self.facts.account,
                        self.args.user,
                        self.bucket()
                    ),
                );
            }
        }
        Finding::pass(Check::BucketPolicyAllowsPlatform, "no statement denies the user or its federated users")
    }

    /// With `--cross-account`: the copy role's grants in the bucket policy and the key policy.
    fn copy_role(&self, bucket_arn: &str) -> Finding {
        if !self.args.cross_account {
            return Finding::skip(Check::CopyRoleAllowed, "not asked (--cross-account)");
        }
        let region = self.region();
        let Some(role) =
            RegionTable::builtin().get(region).and_then(|r| RoleArn::parse(&r.cross_account_role_arn).ok())
        else {
            return Finding::skip(Check::CopyRoleAllowed, format!("{region} has no copy role"));
        };
        let objects = format!("{bucket_arn}/{}{PROBE_KEY}", self.prefix());
        let mut wanted = vec![
            ("s3:ListBucket", bucket_arn.to_owned()),
            ("s3:GetObject", objects.clone()),
            ("s3:PutObject", objects),
        ];
        let key = self.kms_arn();
        if let Some(key) = &key {
            wanted.extend([("kms:Decrypt", key.to_string()), ("kms:GenerateDataKey", key.to_string())]);
        }
        for (action, arn) in &wanted {
            // The role is in the platform's account: only the resource's own policy can grant it.
            let request = Request::new(*action, arn.as_str()).with_principal(role.as_str());
            let resource = if action.starts_with("kms:") {
                match self.facts.kms.as_ref().map(|k| &k.policy) {
                    Some(Ok(policy)) => ResourcePolicy::KmsKey(policy),
                    _ => ResourcePolicy::Absent,
                }
            } else {
                self.bucket_policy()
            };
            let decision = Policies { identity: &[], boundary: None, resource }.decide(&request);
            if !decision.is_allowed() {
                let fix = match &key {
                    Some(key) => format!(
                        "{} --cross-account (adds the copy role to the bucket policy and the key policy of {key})",
                        self.bootstrap_command(region)
                    ),
                    None => format!("{} --cross-account", self.bootstrap_command(region)),
                };
                return Finding::fail(
                    Check::CopyRoleAllowed,
                    format!("{role} may not {action} on {arn}: {}", self.why(&decision)),
                    Problem::access_forbidden(&format!(
                        "Access Denied ({action} for the copy role {role} is not granted)"
                    )),
                    fix,
                );
            }
        }
        Finding::pass(Check::CopyRoleAllowed, format!("{role} may copy objects in and out"))
    }
}

/// Applies one repair.
async fn apply(c: &Connection, target: &Target, repair: &Repair) -> anyhow::Result<()> {
    let bucket = target.bucket.as_str();
    let access = c.aws.own_bucket_access(&c.region);
    match repair {
        Repair::AddCors(origins) => {
            let mut rules = access.cors_rules(bucket).await.context("reading the CORS rules")?.unwrap_or_default();
            let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
            rules.push(CorsRule::console(&origins));
            c.setup.put_cors_rules(bucket, &rules).await.context("writing the CORS rules")
        }
        Repair::RemoveLeftovers(ids) => {
            let existing = access.notifications(bucket).await.context("reading the notification rules")?;
            let cleaned = notifications::without(&existing, |r| {
                notifications::is_ours(r) && r.id.as_ref().is_some_and(|id| ids.contains(id))
            });
            access.put_notifications(bucket, &cleaned).await.context("writing the notification rules")
        }
        Repair::SetPolicy { arn, document } => {
            c.setup.set_policy_document(arn, document).await.context("updating the IAM policy")
        }
    }
}

/// Prints the table.
fn report(c: &Connection, target: &Target, findings: &[Finding]) -> anyhow::Result<()> {
    let prefix = target.prefix.as_ref().map_or_else(|| "(whole bucket)".to_owned(), ToString::to_string);
    say(format_args!("Bucket {} in {} (account {}), prefix {prefix}\n", target.bucket, c.region, c.account))?;
    say(format_args!("{:<30} {:<6} DETAIL", "CHECK", "RESULT"))?;
    for finding in findings {
        say(format_args!("{:<30} {:<6} {}", finding.check.name(), finding.verdict.as_str(), finding.detail))?;
        if let Some(problem) = &finding.problem {
            say(format_args!(
                "{:<37}error: {} ({}): {}",
                "",
                problem.entry().error_type,
                problem.entry().code,
                problem.message()
            ))?;
        }
        if let Some(fix) = &finding.fix {
            let auto = if finding.repair.is_some() { "  [--fix applies it]" } else { "" };
            say(format_args!("{:<37}fix:   {fix}{auto}", ""))?;
        }
    }
    let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
    say(format_args!(
        "\n{} passed, {} failed, {} warnings, {} skipped",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Warn),
        count(Verdict::Skip)
    ))
}
