//! One validation of a configuration: the named checks in order, the probe object, and the
//! outcome recorded in the store (status, report, versioning state, error, next check).
//!
//! The first check that finds a problem decides the configuration's error; the checks after it
//! are recorded as skipped. CORS is advice only: without it browser uploads fail, but
//! everything else works, so a failed CORS check leaves the configuration ready.

use byos_aws::{AwsErrorKind, BucketAccess, CredentialSecret};
use byos_catalog::{Configuration, ValidationOutcome};
use byos_domain::{
    Check, CheckResult, ConfigurationStatus, ErrorCode, PROBE_MARKER, Problem, ServerSideEncryption, ValidationCheck,
    ValidationReport, VersioningState,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problems::problem;
use crate::{Inner, LifecycleError, provision, worker};

/// The checks of one run, as they are recorded.
struct Run {
    checks: Vec<ValidationCheck>,
    /// The first blocking problem.
    problem: Option<(Check, Problem)>,
    /// The AWS account that owns the bucket, once `bucket-owner-known` passed.
    bucket_account: Option<String>,
}

impl Run {
    fn record(&mut self, check: Check, result: CheckResult, detail: String) {
        self.checks.push(ValidationCheck { name: check.name().to_owned(), result, detail, fix: None });
    }

    fn pass(&mut self, check: Check, detail: impl Into<String>) {
        self.record(check, CheckResult::Passed, detail.into());
    }

    fn skip(&mut self, check: Check, detail: impl Into<String>) {
        self.record(check, CheckResult::Skipped, detail.into());
    }

    /// A failed check; with a problem, it blocks the configuration.
    fn fail(&mut self, check: Check, detail: impl Into<String>, problem: Option<Problem>) {
        self.record(check, CheckResult::Failed, detail.into());
        if let Some(problem) = problem
            && self.problem.is_none()
        {
            self.problem = Some((check, problem));
        }
    }

    fn blocked(&self) -> bool {
        self.problem.is_some()
    }

    /// The report, with every check that did not run marked skipped, in the order of
    /// [`Check::VALIDATION`].
    fn report(mut self, checked_at: OffsetDateTime) -> (ValidationReport, Option<Problem>) {
        let reason = self.problem.as_ref().map(|(c, _)| format!("not run: {c} failed"));
        for check in Check::VALIDATION {
            if !self.checks.iter().any(|c| c.name == check.name()) {
                let detail = reason.clone().unwrap_or_else(|| "not run".to_owned());
                self.record(check, CheckResult::Skipped, detail);
            }
        }
        self.checks.sort_by_key(|c| Check::VALIDATION.iter().position(|k| k.name() == c.name));
        let report =
            ValidationReport { checked_at: checked_at.format(&Rfc3339).unwrap_or_default(), checks: self.checks };
        (report, self.problem.map(|(_, p)| p))
    }
}

/// Validates and provisions `configuration`, and records the outcome.
pub(crate) async fn run(
    inner: &Inner,
    configuration: &Configuration,
    secret: &CredentialSecret,
) -> Result<(), LifecycleError> {
    let spec = &configuration.spec;
    let access = inner.aws.bucket_access(secret, &spec.region).await;
    let mut run = Run { checks: Vec::new(), problem: None, bucket_account: None };
    let versioning = checks(inner, configuration, secret, &access, &mut run).await;
    let bucket_account = run.bucket_account.clone();
    let now = OffsetDateTime::now_utc();
    let (report, problem) = run.report(now);
    let status = if problem.is_some() { ConfigurationStatus::Error } else { ConfigurationStatus::Ready };
    let failures = if problem.is_some() { configuration.check_failures.saturating_add(1) } else { 0 };
    let outcome = ValidationOutcome {
        status,
        versioning,
        report,
        next_check_at: now + worker::next_delay(&inner.settings, failures),
        error: problem,
        verified_at: now,
        failures,
        bucket_account,
    };
    inner.store.configurations.record_validation(configuration.id, &outcome).await?;
    inner.metrics.observe(configuration.status, status);
    if configuration.status != status {
        match &outcome.error {
            Some(p) => tracing::warn!(
                configuration = %configuration.id,
                from = configuration.status.as_str(),
                to = status.as_str(),
                code = p.entry().code,
                error = p.message(),
                "storage configuration status changed"
            ),
            None => tracing::info!(
                configuration = %configuration.id,
                from = configuration.status.as_str(),
                to = status.as_str(),
                "storage configuration status changed"
            ),
        }
    }
    Ok(())
}

/// Runs the checks in order; returns the versioning state when it could be told.
async fn checks(
    inner: &Inner,
    configuration: &Configuration,
    secret: &CredentialSecret,
    access: &BucketAccess,
    run: &mut Run,
) -> Option<VersioningState> {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let prefix = spec.key_prefix.as_ref().map_or("", |p| p.as_str());
    let fail_with = |run: &mut Run, check: Check, e: &byos_aws::AwsError| {
        run.fail(check, e.to_string(), Some(problem(e, bucket, region)));
    };

    // AWS authenticates a request before it authorises it: any answer but an unknown key or a
    // bad signature proves the credential. S3 is asked because ICA's policy grants only S3, and
    // because its error carries AWS's own words for an unknown key.
    match access.list_one(bucket, prefix).await {
        Err(e) if matches!(e.kind, AwsErrorKind::InvalidAccessKeyId | AwsErrorKind::SignatureDoesNotMatch) => {
            fail_with(run, Check::CredentialValid, &e);
        }
        Err(e) if e.retryable() => fail_with(run, Check::CredentialValid, &e),
        Ok(_) => run.pass(Check::CredentialValid, "S3 accepts the key"),
        Err(e) => run.pass(
            Check::CredentialValid,
            format!("S3 accepts the key (it answered {})", e.code.as_deref().unwrap_or("an error")),
        ),
    }
    if run.blocked() {
        return None;
    }
    role_requires_external_id(inner, secret, run).await;
    if run.blocked() {
        return None;
    }

    match access.bucket_region(bucket).await {
        Ok(actual) => {
            run.pass(Check::BucketExists, format!("bucket '{bucket}' exists"));
            if actual == region {
                run.pass(Check::BucketInRegion, format!("the bucket is in {region}"));
            } else {
                run.fail(
                    Check::BucketInRegion,
                    format!("the bucket is in {actual}, the configuration in {region}"),
                    Some(Problem::bucket_wrong_region(region)),
                );
            }
        }
        Err(e) => fail_with(run, Check::BucketExists, &e),
    }
    if run.blocked() {
        return None;
    }

    match access.list_one(bucket, prefix).await {
        Ok(_) => run.pass(Check::ObjectsListable, format!("objects under '{prefix}' can be listed")),
        Err(e) => fail_with(run, Check::ObjectsListable, &e),
    }
    if run.blocked() {
        return None;
    }
    let account = bucket_owner(access, bucket, prefix, run).await?;

    // The KMS key before the probe, so that a key problem is named as such.
    match spec.server_side_encryption.as_ref().and_then(ServerSideEncryption::kms_key) {
        None => {
            run.skip(Check::KmsKeyInRegion, "no SSE-KMS key configured");
            run.skip(Check::KmsKeyUsable, "no SSE-KMS key configured");
        }
        Some(key) => {
            if key.region() == region {
                run.pass(Check::KmsKeyInRegion, format!("the key is in {region}"));
            } else {
                run.fail(
                    Check::KmsKeyInRegion,
                    format!("the key is in {}, the bucket in {region}", key.region()),
                    Some(Problem::invalid_parameters(&format!(
                        "serverSideEncryption.keyName: the KMS key is in {} but the bucket is in {region}",
                        key.region()
                    ))),
                );
                return None;
            }
            match access.kms_round_trip(key.as_str()).await {
                Ok(()) => run.pass(Check::KmsKeyUsable, "a data key was generated and decrypted"),
                Err(e) if e.kind == AwsErrorKind::NotFound => run.fail(
                    Check::KmsKeyUsable,
                    e.to_string(),
                    Some(Problem::invalid_parameters(&format!(
                        "serverSideEncryption.keyName: the KMS key {key} does not exist in {region}; \
                         the key must be in the bucket's region"
                    ))),
                ),
                Err(e) => fail_with(run, Check::KmsKeyUsable, &e),
            }
            if run.blocked() {
                return None;
            }
        }
    }

    let versioning = probe(access, configuration, run).await;
    if run.blocked() {
        return versioning;
    }

    match access.notifications(bucket).await {
        Ok(existing) => {
            run.pass(
                Check::NotificationsReadable,
                format!("{} notification rules on the bucket", existing.rules.len()),
            );
            match provision::ensure(inner, configuration, access, &account).await {
                Ok(detail) => run.pass(Check::NotificationsWritable, detail),
                Err(e) => run.fail(Check::NotificationsWritable, e.to_string(), Some(e.problem(configuration.id))),
            }
        }
        Err(e) => fail_with(run, Check::NotificationsReadable, &e),
    }
    if run.blocked() {
        return versioning;
    }

    cors(inner, access, bucket, prefix, run).await;
    versioning
}

/// For a role, that the platform cannot assume it without the external id: the role must not
/// trust the platform on behalf of every customer.
async fn role_requires_external_id(inner: &Inner, secret: &CredentialSecret, run: &mut Run) {
    let CredentialSecret::AwsRole { role_arn, session_name, .. } = secret else {
        run.skip(Check::RoleRequiresExternalId, "an aws-user credential is not assumed");
        return;
    };
    match inner.aws.assume_role_without_external_id(role_arn, session_name).await {
        Ok(()) => run.fail(
            Check::RoleRequiresExternalId,
            "the platform assumed the role without the external id: its trust policy does not require it",
            Some(Problem::new(ErrorCode::RoleTrustsWithoutExternalId, &[("roleArn", role_arn.as_str())])),
        ),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            run.pass(Check::RoleRequiresExternalId, "the role refuses the platform without the external id");
        }
        Err(e) => {
            let problem = problem(&e, "", "");
            run.fail(Check::RoleRequiresExternalId, e.to_string(), Some(problem));
        }
    }
}

/// The account that owns the bucket: the credential's, confirmed by S3 (a request that names
/// another expected owner is refused). The queue accepts the bucket's events from it only.
async fn bucket_owner(access: &BucketAccess, bucket: &str, prefix: &str, run: &mut Run) -> Option<String> {
    let region = access.region().to_owned();
    let account = match access.caller_identity().await {
        Ok(identity) => identity.account,
        Err(e) => {
            run.fail(Check::BucketOwnerKnown, e.to_string(), Some(problem(&e, bucket, &region)));
            return None;
        }
    };
    match access.owned_by(bucket, prefix, &account).await {
        Ok(true) => {
            run.pass(Check::BucketOwnerKnown, format!("account {account} owns the bucket"));
            run.bucket_account = Some(account.clone());
            Some(account)
        }
        Ok(false) => {
            run.fail(
                Check::BucketOwnerKnown,
                format!("the credential's account {account} does not own the bucket"),
                Some(Problem::new(ErrorCode::BucketOwnerMismatch, &[("bucket", bucket), ("account", &account)])),
            );
            None
        }
        Err(e) => {
            run.fail(Check::BucketOwnerKnown, e.to_string(), Some(problem(&e, bucket, &region)));
            None
        }
    }
}

/// Writes, reads and deletes a probe object; reads the versioning state where it is needed.
async fn probe(access: &BucketAccess, configuration: &Configuration, run: &mut Run) -> Option<VersioningState> {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let prefix = spec.key_prefix.as_ref().map_or("", |p| p.as_str());
    let key = format!("{prefix}{PROBE_MARKER}{}", uuid::Uuid::new_v4().simple());
    let body = format!("byos validation probe for storage configuration {}\n", configuration.id).into_bytes();

    let put = match access.put_object(bucket, &key, body.clone(), spec.server_side_encryption.as_ref()).await {
        Ok(put) => {
            run.pass(Check::ProbeWritable, format!("wrote {key}"));
            put
        }
        Err(e) => {
            run.fail(Check::ProbeWritable, e.to_string(), Some(problem(&e, bucket, region)));
            return None;
        }
    };
    match access.get_object(bucket, &key).await {
        Ok(read) if read == body => run.pass(Check::ProbeReadable, "read the probe back, byte for byte"),
        Ok(_) => run.fail(
            Check::ProbeReadable,
            "the probe read back differs from what was written",
            Some(Problem::new(
                ErrorCode::AwsRequestFailed,
                &[("operation", "GetObject"), ("message", "the object read back differs")],
            )),
        ),
        Err(e) => run.fail(Check::ProbeReadable, e.to_string(), Some(problem(&e, bucket, region))),
    }
    // On a versioned bucket, deleting the version itself leaves nothing behind.
    let deleted = access.delete_object(bucket, &key, put.version_id.as_deref()).await;
    let deleted = match (deleted, &put.version_id) {
        (Err(e), Some(_)) if e.kind == AwsErrorKind::AccessDenied => {
            // Without s3:DeleteObjectVersion a delete marker is the best the credential can do.
            access
                .delete_object(bucket, &key, None)
                .await
                .map(|()| " (a delete marker: s3:DeleteObjectVersion is not granted)")
        }
        (result, _) => result.map(|()| ""),
    };
    match deleted {
        Ok(note) => run.pass(Check::ProbeDeletable, format!("deleted the probe{note}")),
        Err(e) => run.fail(Check::ProbeDeletable, e.to_string(), Some(problem(&e, bucket, region))),
    }

    // ICA's policy for unversioned buckets has no s3:GetBucketVersioning; such a credential
    // still works, and the probe's answer (no version id) shows versioning is not enabled.
    match access.versioning(bucket).await {
        Ok(state) => {
            run.pass(Check::VersioningReadable, format!("versioning: {state:?}").to_lowercase());
            Some(state)
        }
        Err(e) if e.kind == AwsErrorKind::AccessDenied && put.version_id.is_none() => {
            run.skip(
                Check::VersioningReadable,
                "s3:GetBucketVersioning is not granted; the probe got no version id, so versioning is not enabled",
            );
            Some(VersioningState::Unversioned)
        }
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            run.fail(
                Check::VersioningReadable,
                format!("{e}; the bucket is versioned, so the policy for versioned buckets is needed"),
                Some(problem(&e, bucket, region)),
            );
            Some(VersioningState::Enabled)
        }
        Err(e) => {
            run.fail(Check::VersioningReadable, e.to_string(), Some(problem(&e, bucket, region)));
            None
        }
    }
}

/// Whether the console can upload from a browser: the bucket's CORS rules when the credential
/// may read them, else a real preflight request.
async fn cors(inner: &Inner, access: &BucketAccess, bucket: &str, prefix: &str, run: &mut Run) {
    let origin = inner.settings.console_origin.as_str();
    match access.cors_rules(bucket).await {
        Ok(Some(rules)) => match byos_domain::cors::allows_uploads(&rules, origin, "PUT") {
            Ok(()) => run.pass(Check::CorsAllowsConsoleOrigin, format!("CORS allows uploads from {origin}")),
            Err(reason) => {
                run.fail(Check::CorsAllowsConsoleOrigin, format!("{reason}: browser uploads will fail"), None);
            }
        },
        Ok(None) => run.fail(
            Check::CorsAllowsConsoleOrigin,
            format!("the bucket has no CORS rules: browser uploads from {origin} will fail"),
            None,
        ),
        Err(_) => match access.cors_allows(bucket, &format!("{prefix}{PROBE_MARKER}cors"), origin, "PUT").await {
            Ok(true) => run.pass(Check::CorsAllowsConsoleOrigin, format!("a preflight from {origin} is allowed")),
            Ok(false) => run.fail(
                Check::CorsAllowsConsoleOrigin,
                format!("a preflight from {origin} is refused: browser uploads will fail"),
                None,
            ),
            Err(e) => run.skip(Check::CorsAllowsConsoleOrigin, format!("could not check: {e}")),
        },
    }
}
