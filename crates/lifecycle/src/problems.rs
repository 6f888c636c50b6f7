//! From AWS's answers to the catalogue: which entry a failed call means for a configuration.

use byos_aws::{AwsError, AwsErrorKind};
use byos_domain::{ErrorCode, Problem};

/// The IAM action an operation needs, to name it in "Access forbidden" messages.
fn action(operation: &str) -> &str {
    match operation {
        "ListObjectsV2" => "s3:ListBucket",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "HeadBucket" => "s3:ListBucket",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "GetBucketNotificationConfiguration" => "s3:GetBucketNotification",
        "PutBucketNotificationConfiguration" => "s3:PutBucketNotification",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutObject" => "s3:PutObject",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "DeleteObject" => "s3:DeleteObject",
        "GenerateDataKey" => "kms:GenerateDataKey",
        "Decrypt" => "kms:Decrypt",
        other => other,
    }
}

/// The catalogue entry for a failed call on `bucket` of a configuration in `region`.
pub fn problem(error: &AwsError, bucket: &str, region: &str) -> Problem {
    match &error.kind {
        // The seed's message is a fixed sentence, AWS's own words for S3's answer; STS words it
        // differently, and users search the catalogue for the sentence they saw.
        AwsErrorKind::InvalidAccessKeyId => ErrorCode::InvalidAccessKeyId.into(),
        AwsErrorKind::SignatureDoesNotMatch => Problem::access_forbidden(&format!(
            "{} (the secret access key does not belong to the access key id)",
            error.message
        )),
        AwsErrorKind::AccessDenied => Problem::access_forbidden(&format!(
            "{} ({} on bucket '{bucket}' is not granted)",
            error.message,
            action(error.operation)
        )),
        AwsErrorKind::NoSuchBucket => Problem::bucket_not_found(bucket),
        AwsErrorKind::WrongRegion { .. } => Problem::bucket_wrong_region(region),
        AwsErrorKind::Throttled | AwsErrorKind::Unavailable => {
            Problem::new(ErrorCode::AwsUnreachable, &[("message", &error.to_string())])
        }
        _ => Problem::new(ErrorCode::AwsRequestFailed, &[("operation", error.operation), ("message", &error.message)]),
    }
}

/// The catalogue entry for a refused write of the bucket's notification configuration: S3's
/// `InvalidArgument` (rules that overlap in a way the platform's own check did not foresee, such
/// as a rule the customer added meanwhile) keeps S3's words, as the seed's troubleshooting text
/// shows them.
pub(crate) fn notifications_refused(error: &AwsError, bucket: &str, region: &str) -> Problem {
    match error.kind {
        AwsErrorKind::InvalidRequest => Problem::new(ErrorCode::NotificationRejected, &[("message", &error.message)]),
        _ => problem(error, bucket, region),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: AwsErrorKind, operation: &'static str, message: &str) -> AwsError {
        AwsError::new(kind, operation, message)
    }

    #[test]
    fn aws_errors_map_to_the_catalogue() {
        let cases = [
            (
                error(
                    AwsErrorKind::InvalidAccessKeyId,
                    "GetCallerIdentity",
                    "The AWS Access Key Id you provided does not exist in our records.",
                ),
                "invalid-access-key-id",
                "Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records.",
            ),
            (
                error(AwsErrorKind::AccessDenied, "PutBucketNotificationConfiguration", "Access Denied"),
                "access-forbidden",
                "Access forbidden: Access Denied (s3:PutBucketNotification on bucket 'b-b-b' is not granted)",
            ),
            (
                error(AwsErrorKind::NoSuchBucket, "HeadBucket", "x"),
                "bucket-not-found",
                "Storage Container 'b-b-b' does not exist",
            ),
            (
                error(AwsErrorKind::WrongRegion { region: Some("us-east-1".to_owned()) }, "HeadBucket", "x"),
                "bucket-wrong-region",
                "Storage container must be located in the eu-central-1 region",
            ),
            (
                error(AwsErrorKind::Unavailable, "PutObject", "cannot reach the endpoint"),
                "aws-unreachable",
                "AWS could not be reached: PutObject: cannot reach the endpoint",
            ),
            (error(AwsErrorKind::Other, "PutObject", "odd"), "aws-request-failed", "AWS refused PutObject: odd"),
        ];
        for (e, code, message) in cases {
            let p = problem(&e, "b-b-b", "eu-central-1");
            assert_eq!((p.entry().code, p.message()), (code, message));
        }
        // STS words an unknown key differently; the catalogue's sentence stays the seed's.
        let sts = error(
            AwsErrorKind::InvalidAccessKeyId,
            "GetFederationToken",
            "The security token included in the request is invalid.",
        );
        assert_eq!(
            problem(&sts, "b-b-b", "eu-central-1").message(),
            "Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records."
        );
    }

    /// The seed's troubleshooting text shows S3's refusal of overlapping notification rules as
    /// `Failed to update bucket policy: Configurations overlap. Configurations on the same bucket
    /// cannot share a common event type`: the platform's answer to that refusal carries it.
    #[test]
    fn a_refused_notification_write_keeps_s3s_words() {
        let refused = error(
            AwsErrorKind::InvalidRequest,
            "PutBucketNotificationConfiguration",
            "Configurations overlap. Configurations on the same bucket cannot share a common event type.",
        );
        let p = notifications_refused(&refused, "b-b-b", "eu-central-1");
        assert_eq!(p.entry().code, "notification-rejected");
        let seed = "Failed to update bucket policy: Configurations overlap. Configurations on the same bucket cannot share a common event type";
        assert!(p.message().starts_with(seed), "{}", p.message());
        let denied = error(AwsErrorKind::AccessDenied, "PutBucketNotificationConfiguration", "Access Denied");
        assert_eq!(notifications_refused(&denied, "b-b-b", "eu-central-1").entry().code, "access-forbidden");
    }
}
