//! Storage credentials and configurations: the kinds, states and reports that the store keeps
//! and the API shows. The secret halves of credentials never appear here in clear form.

use serde::{Deserialize, Serialize};

use crate::names::KmsKeyArn;

/// What a storage credential holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// An IAM user's access key id and secret access key, as the seed describes.
    AwsUser,
    /// A role ARN and external id, which the platform assumes with its own identity.
    AwsRole,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AwsUser => "aws-user",
            CredentialKind::AwsRole => "aws-role",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        match s {
            "aws-user" => Some(CredentialKind::AwsUser),
            "aws-role" => Some(CredentialKind::AwsRole),
            _ => None,
        }
    }
}

/// Server-side encryption of the objects the platform writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3: keys managed by S3.
    Aes256,
    /// SSE-KMS with a customer managed key in the configuration's region.
    Kms(KmsKeyArn),
}

/// The algorithm names S3 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseAlgorithm {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

impl ServerSideEncryption {
    pub fn algorithm(&self) -> SseAlgorithm {
        match self {
            ServerSideEncryption::Aes256 => SseAlgorithm::Aes256,
            ServerSideEncryption::Kms(_) => SseAlgorithm::AwsKms,
        }
    }

    pub fn kms_key(&self) -> Option<&KmsKeyArn> {
        match self {
            ServerSideEncryption::Aes256 => None,
            ServerSideEncryption::Kms(key) => Some(key),
        }
    }
}

impl SseAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SseAlgorithm::Aes256 => "AES256",
            SseAlgorithm::AwsKms => "aws:kms",
        }
    }

    pub fn parse(s: &str) -> Option<SseAlgorithm> {
        match s {
            "AES256" => Some(SseAlgorithm::Aes256),
            "aws:kms" => Some(SseAlgorithm::AwsKms),
            _ => None,
        }
    }
}

/// Where a storage configuration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigurationStatus {
    /// Created, not yet validated and provisioned.
    Initializing,
    /// Validated and provisioned: projects can use it.
    Ready,
    /// The last validation failed; the configuration carries the catalogue entry and its fix.
    Error,
}

impl ConfigurationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigurationStatus::Initializing => "initializing",
            ConfigurationStatus::Ready => "ready",
            ConfigurationStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<ConfigurationStatus> {
        match s {
            "initializing" => Some(ConfigurationStatus::Initializing),
            "ready" => Some(ConfigurationStatus::Ready),
            "error" => Some(ConfigurationStatus::Error),
            _ => None,
        }
    }
}

/// A bucket's versioning state, as detected by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersioningState {
    Unversioned,
    Enabled,
    Suspended,
}

impl VersioningState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersioningState::Unversioned => "unversioned",
            VersioningState::Enabled => "enabled",
            VersioningState::Suspended => "suspended",
        }
    }
}

/// The outcome of one named check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Passed,
    Failed,
    Skipped,
}

/// One check of a validation report. Checks are named after what holds when they pass
/// (`bucket-exists`), never after the failure they detect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationCheck {
    pub name: String,
    pub result: CheckResult,
    pub detail: String,
    /// What to do about a failure, where it depends on what the check found (a copy's
    /// preflight names the statement to add); the named checks of validation have theirs in
    /// [`crate::Check::fix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The named checks of one validation, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    /// When the checks ran, RFC 3339.
    pub checked_at: String,
    pub checks: Vec<ValidationCheck>,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.result != CheckResult::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for kind in [CredentialKind::AwsUser, CredentialKind::AwsRole] {
            assert_eq!(CredentialKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(kind.as_str())));
        }
        for alg in [SseAlgorithm::Aes256, SseAlgorithm::AwsKms] {
            assert_eq!(SseAlgorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(serde_json::to_value(alg).ok(), Some(serde_json::json!(alg.as_str())));
        }
        for status in [ConfigurationStatus::Initializing, ConfigurationStatus::Ready, ConfigurationStatus::Error] {
            assert_eq!(ConfigurationStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        assert_eq!(CredentialKind::parse("aws"), None);
    }

    #[test]
    fn a_report_passes_unless_a_check_failed() {
        let check =
            |result| ValidationCheck { name: "bucket-exists".to_owned(), result, detail: String::new(), fix: None };
        let report = |checks| ValidationReport { checked_at: "2026-01-01T00:00:00Z".to_owned(), checks };
        assert!(report(vec![check(CheckResult::Passed), check(CheckResult::Skipped)]).passed());
        assert!(!report(vec![check(CheckResult::Passed), check(CheckResult::Failed)]).passed());
    }
}
