//! The named checks of a storage configuration's validation, shared by the platform's
//! validation report and `byos aws doctor`. Each is named after what holds when it passes.
//!
//! The platform runs [`Check::VALIDATION`] with the stored credential. The doctor runs with the
//! bucket owner's identity and evaluates the platform user's policies instead of probing with
//! its key, so it checks the same things under the same names, plus what only the owner can
//! read ([`Check::DOCTOR`]): default encryption, the bucket policy, federation and the copy
//! role.

use std::fmt;

/// Validation's probe objects are named `{prefix}.byos-probe-{uuid}`; the sync engine ignores
/// keys whose name starts with it.
pub const PROBE_MARKER: &str = ".byos-probe-";

/// Whether a key is one of validation's probe objects.
pub fn is_probe_key(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|name| name.starts_with(PROBE_MARKER))
}

/// One check. [`Check::VALIDATION`] and [`Check::DOCTOR`] are the orders they run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// AWS accepts the credential: it knows the key and the signature matches.
    CredentialValid,
    /// An `aws-role` credential's role refuses the platform without the external id, so that no
    /// other customer of the platform can make it act on this bucket (the confused deputy).
    RoleRequiresExternalId,
    /// The bucket exists.
    BucketExists,
    /// The bucket is in the configuration's region.
    BucketInRegion,
    /// Objects under the prefix can be listed.
    ObjectsListable,
    /// The AWS account that owns the bucket is the credential's: the queue accepts the bucket's
    /// events only from that account.
    BucketOwnerKnown,
    /// A probe object can be written under the prefix, with the configuration's encryption.
    ProbeWritable,
    /// The probe object can be read back, byte for byte.
    ProbeReadable,
    /// The probe object can be deleted, leaving nothing behind.
    ProbeDeletable,
    /// The bucket's versioning state can be read (needed for versioned buckets only).
    VersioningReadable,
    /// The bucket's notification configuration can be read.
    NotificationsReadable,
    /// The platform's notification rules are in place on the prefix.
    NotificationsWritable,
    /// The KMS key is in the bucket's region.
    KmsKeyInRegion,
    /// Objects can be encrypted and decrypted with the KMS key.
    KmsKeyUsable,
    /// The bucket's CORS rules let the console's origin upload from a browser.
    CorsAllowsConsoleOrigin,
    /// A lifecycle rule aborts the multipart uploads nobody completes under the prefix, so that
    /// their parts stop costing storage even when the platform is not there to abort them
    /// (doctor only).
    AbortsIncompleteUploads,
    /// The bucket encrypts new objects by default (doctor only).
    EncryptionConfigured,
    /// A bucket of many objects has a fresh S3 Inventory report the server can import from
    /// instead of listing it (doctor only).
    InventoryReportFresh,
    /// No bucket policy statement denies the platform's user or its federated users what the
    /// platform needs (doctor only).
    BucketPolicyAllowsPlatform,
    /// The platform's user may vend temporary credentials with `sts:GetFederationToken`
    /// (doctor only).
    FederationAllowed,
    /// The region's cross-account copy role may read and write objects, and use the KMS key
    /// (doctor only, with `--cross-account`).
    CopyRoleAllowed,
}

impl Check {
    /// The platform's validation report, in order.
    pub const VALIDATION: [Check; 15] = [
        Check::CredentialValid,
        Check::RoleRequiresExternalId,
        Check::BucketExists,
        Check::BucketInRegion,
        Check::ObjectsListable,
        Check::BucketOwnerKnown,
        Check::ProbeWritable,
        Check::ProbeReadable,
        Check::ProbeDeletable,
        Check::VersioningReadable,
        Check::NotificationsReadable,
        Check::NotificationsWritable,
        Check::KmsKeyInRegion,
        Check::KmsKeyUsable,
        Check::CorsAllowsConsoleOrigin,
    ];

    /// `byos aws doctor`'s table, in order: the validation's checks where the owner's view
    /// allows them, and the owner's own.
    pub const DOCTOR: [Check; 21] = [
        Check::CredentialValid,
        Check::RoleRequiresExternalId,
        Check::BucketExists,
        Check::BucketInRegion,
        Check::EncryptionConfigured,
        Check::ObjectsListable,
        Check::BucketOwnerKnown,
        Check::ProbeWritable,
        Check::ProbeReadable,
        Check::ProbeDeletable,
        Check::VersioningReadable,
        Check::NotificationsReadable,
        Check::NotificationsWritable,
        Check::KmsKeyInRegion,
        Check::KmsKeyUsable,
        Check::CorsAllowsConsoleOrigin,
        Check::AbortsIncompleteUploads,
        Check::InventoryReportFresh,
        Check::BucketPolicyAllowsPlatform,
        Check::FederationAllowed,
        Check::CopyRoleAllowed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::CredentialValid => "credential-valid",
            Check::RoleRequiresExternalId => "role-requires-external-id",
            Check::BucketOwnerKnown => "bucket-owner-known",
            Check::BucketExists => "bucket-exists",
            Check::BucketInRegion => "bucket-in-region",
            Check::ObjectsListable => "objects-listable",
            Check::ProbeWritable => "probe-writable",
            Check::ProbeReadable => "probe-readable",
            Check::ProbeDeletable => "probe-deletable",
            Check::VersioningReadable => "versioning-readable",
            Check::NotificationsReadable => "notifications-readable",
            Check::NotificationsWritable => "notifications-writable",
            Check::KmsKeyInRegion => "kms-key-in-region",
            Check::KmsKeyUsable => "kms-key-usable",
            Check::CorsAllowsConsoleOrigin => "cors-allows-console-origin",
            Check::AbortsIncompleteUploads => "aborts-incomplete-uploads",
            Check::EncryptionConfigured => "encryption-configured",
            Check::InventoryReportFresh => "inventory-report-fresh",
            Check::BucketPolicyAllowsPlatform => "bucket-policy-allows-platform",
            Check::FederationAllowed => "federation-allowed",
            Check::CopyRoleAllowed => "copy-role-allowed",
        }
    }

    /// Whether a failure makes the configuration unusable. The others are advice: CORS only
    /// matters for uploads from a browser, and ICA's policy for unversioned buckets grants no
    /// `s3:GetBucketVersioning`, which such buckets do not need.
    pub fn required(self) -> bool {
        !matches!(
            self,
            Check::CorsAllowsConsoleOrigin
                | Check::AbortsIncompleteUploads
                | Check::VersioningReadable
                | Check::EncryptionConfigured
                | Check::InventoryReportFresh
                | Check::CopyRoleAllowed
        )
    }

    /// What to do when the check fails, as the validation report and the console show it.
    pub fn fix(self) -> &'static str {
        match self {
            Check::CredentialValid => {
                "Check the access key id and secret (or the role ARN) of the storage credential; rotate it with the key the bucket owner gave, which `byos aws bootstrap` prints."
            }
            Check::RoleRequiresExternalId => {
                "Give the role the trust policy of its credential (`GET .../trust-policy`, or `byos aws trust-policy`): it must require the credential's external id."
            }
            Check::BucketExists => {
                "Check the bucket's name, or create it in the configuration's region (`byos aws bootstrap --bucket ... --region ...`)."
            }
            Check::BucketInRegion => {
                "Use a bucket in the configuration's region, or a configuration in the bucket's region: S3 notifies only queues of its own region."
            }
            Check::ObjectsListable => {
                "Grant the credential's IAM identity s3:ListBucket on the bucket for the prefix (`byos aws iam-policy` prints the policy; `byos aws doctor --fix` applies it)."
            }
            Check::BucketOwnerKnown => {
                "The credential must belong to the AWS account that owns the bucket: use a key or role of that account."
            }
            Check::ProbeWritable => {
                "Grant s3:PutObject under the prefix (and kms:GenerateDataKey for SSE-KMS), and make sure no bucket policy denies it; `byos aws doctor` names the statement."
            }
            Check::ProbeReadable => {
                "Grant s3:GetObject under the prefix (and kms:Decrypt for SSE-KMS); `byos aws doctor` shows which permission is missing."
            }
            Check::ProbeDeletable => {
                "Grant s3:DeleteObject under the prefix; `byos aws iam-policy` prints the policy the platform needs."
            }
            Check::VersioningReadable => {
                "Grant s3:GetBucketVersioning on the bucket; an unversioned bucket works without it."
            }
            Check::NotificationsReadable => "Grant s3:GetBucketNotification on the bucket (`byos aws iam-policy`).",
            Check::NotificationsWritable => {
                "Grant s3:PutBucketNotification on the bucket, and remove notification rules of your own that overlap the prefix for the same events (`byos aws doctor` lists them)."
            }
            Check::KmsKeyInRegion => "Use a KMS key in the bucket's region.",
            Check::KmsKeyUsable => {
                "Allow the credential's IAM identity kms:Encrypt, kms:Decrypt and kms:GenerateDataKey in the key's policy (`byos aws kms-policy`)."
            }
            Check::CorsAllowsConsoleOrigin => {
                "Add the console's CORS rule to the bucket: `byos aws cors --origin <console URL>` prints it, `byos aws doctor --fix` adds it. Only uploads from a browser need it."
            }
            Check::AbortsIncompleteUploads => {
                "Add a lifecycle rule that aborts incomplete multipart uploads under the prefix (`byos aws doctor --fix`)."
            }
            Check::EncryptionConfigured => "Turn on default encryption for the bucket (SSE-S3 or SSE-KMS).",
            Check::InventoryReportFresh => {
                "Set up a daily S3 Inventory of the prefix (`byos aws bootstrap --bucket ... --inventory`); S3 delivers the first report within 48 hours."
            }
            Check::BucketPolicyAllowsPlatform => {
                "Change the bucket policy statement that denies the platform's user, or add it to the statement's exceptions (`byos aws bucket-policy --deny-all`)."
            }
            Check::FederationAllowed => {
                "Grant the platform's user sts:GetFederationToken, so that it can vend temporary credentials (`byos aws iam-policy`)."
            }
            Check::CopyRoleAllowed => {
                "Grant the region's cross-account copy role access to the bucket and the KMS key (`byos aws bucket-policy --cross-account`, `byos aws kms-policy`)."
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::DOCTOR.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_says_what_to_do_when_it_fails() {
        for check in Check::DOCTOR {
            let fix = check.fix();
            assert!(fix.len() > 20 && fix.ends_with(['.', ')']), "{check}: {fix:?}");
        }
    }

    #[test]
    fn names_are_positive_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for check in Check::DOCTOR {
            assert!(seen.insert(check.name()));
            assert_eq!(Check::from_name(check.name()), Some(check));
            for negative in ["missing", "invalid", "denied", "not-", "fail"] {
                assert!(!check.name().contains(negative), "{check} is named after a failure");
            }
        }
    }

    #[test]
    fn the_doctor_runs_every_validation_check_in_the_same_order() {
        let shared: Vec<Check> = Check::DOCTOR.into_iter().filter(|c| Check::VALIDATION.contains(c)).collect();
        assert_eq!(shared, Check::VALIDATION);
    }
}
