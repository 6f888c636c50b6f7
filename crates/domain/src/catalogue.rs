//! The error catalogue: every failure a user can meet, with its error type (the seed's names),
//! a stable code, a message template, an HTTP status and a fix.
//!
//! The first entries are the seed's troubleshooting table, verbatim. The rest are the errors of
//! the platform itself (authentication, missing resources, bad requests) in the same form, so
//! that every error body has one shape.

use std::fmt;

use serde::Serialize;

/// One catalogue entry, as served at `GET /api/v1/errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    /// The error type, such as `Invalid Parameter`.
    #[serde(rename = "type")]
    pub error_type: &'static str,
    /// The stable code, such as `missing-bucket-name`. Codes never change meaning.
    pub code: &'static str,
    /// The HTTP status the API answers with.
    pub status: u16,
    /// The message; `{name}` marks a value filled in when the error happens.
    pub message: &'static str,
    /// What the user can do about it.
    pub fix: &'static str,
}

macro_rules! catalogue {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            type: $type:literal,
            code: $code:literal,
            status: $status:literal,
            message: $message:literal,
            fix: $fix:literal $(,)?
        }
    )*) => {
        /// The catalogue's entries. [`ErrorCode::entry`] gives each one's data.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every entry, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn entry(self) -> &'static CatalogueEntry {
                match self {
                    $(ErrorCode::$variant => &CatalogueEntry {
                        error_type: $type,
                        code: $code,
                        status: $status,
                        message: $message,
                        fix: $fix,
                    },)*
                }
            }
        }
    };
}

catalogue! {
    AccessForbidden {
        type: "Access Forbidden",
        code: "access-forbidden",
        status: 403,
        message: "Access forbidden: {message}",
        fix: "Mostly occurs because of lack of permission. Review the IAM policy, the bucket policy and the ACLs for the required permissions; `byos aws doctor` shows which one is missing.",
    }
    SystemTopicInvalidState {
        type: "Conflict",
        code: "system-topic-invalid-state",
        status: 409,
        message: "System topic is not in a valid state",
        fix: "The storage account's event topic is being changed or was deleted. Wait for it to finish provisioning, or delete it so the platform can recreate it, then validate the configuration again.",
    }
    NotificationPrefixOverlap {
        type: "Conflict",
        code: "notification-prefix-overlap",
        status: 409,
        message: "Found conflicting storage container notifications with overlapping prefixes",
        fix: "In the S3 console, open the bucket's Properties > Event notifications and delete the notification whose prefix overlaps the configuration's key prefix. The platform re-verifies the connection in the background.",
    }
    NotificationConflictForPrefix {
        type: "Conflict",
        code: "notification-conflict-for-prefix",
        status: 409,
        message: "Found conflicting storage container notifications for {prefix}{eventTypeMsg}",
        fix: "In the S3 console, open the bucket's Properties > Event notifications and delete the notification on this prefix that shares event types with the platform's. The platform re-verifies the connection in the background.",
    }
    NotificationOverlapDetail {
        type: "Conflict",
        code: "notification-overlap",
        status: 409,
        message: "Found conflicting storage container notifications with overlapping prefixes{prefixMsg}{eventTypeMsg}",
        fix: "In the S3 console, open the bucket's Properties > Event notifications and delete the notifications named here, or give them prefixes that do not overlap the configuration's key prefix. The platform re-verifies the connection in the background.",
    }
    CustomerNotificationExists {
        type: "Customer Container Notification Exists",
        code: "customer-notification-exists",
        status: 409,
        message: "Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification",
        fix: "The bucket already sends these events for this prefix to a destination of its own. Remove that notification, or choose a key prefix it does not cover, then validate the configuration again.",
    }
    InvalidAccessKeyId {
        type: "Invalid Access Key ID",
        code: "invalid-access-key-id",
        status: 400,
        message: "Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records.",
        fix: "Check the status of the AWS Access Key ID in the console. If not active, activate it. If missing, create it, then rotate the storage credential to the new key.",
    }
    MissingCredentials {
        type: "Invalid Parameter",
        code: "missing-credentials",
        status: 400,
        message: "Missing credentials for storage container",
        fix: "Create a storage credential (System Settings > Storage > Credentials) and name it in the configuration's credentialId.",
    }
    MissingBucketName {
        type: "Invalid Parameter",
        code: "missing-bucket-name",
        status: 400,
        message: "Missing bucket name for storage container",
        fix: "Give the name of the S3 bucket in the configuration's bucket field.",
    }
    InvalidBucketName {
        type: "Invalid Parameter",
        code: "invalid-bucket-name",
        status: 400,
        message: "The storage container name has invalid characters",
        fix: "A bucket name is 3 to 63 lowercase letters, digits, dots and hyphens, starts and ends with a letter or digit, has no two adjacent dots, is not an IP address, and does not start with xn--, sthree- or amzn-s3-demo- nor end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3.",
    }
    BucketNotFound {
        type: "Invalid Parameter",
        code: "bucket-not-found",
        status: 400,
        message: "Storage Container '{storageContainer}' does not exist",
        fix: "Check the bucket name for typing errors, and that the bucket exists in the configuration's AWS account; create it with `byos aws bootstrap` if needed.",
    }
    InvalidVolumeParameters {
        type: "Invalid Parameter",
        code: "invalid-volume-parameters",
        status: 400,
        message: "Invalid parameters for volume configuration: {message}",
        fix: "Correct the field named in the message and send the request again.",
    }
    BucketWrongRegion {
        type: "Invalid Storage Container Location",
        code: "bucket-wrong-region",
        status: 400,
        message: "Storage container must be located in the {region} region",
        fix: "Use a bucket in the configuration's AWS region, or create the configuration in the bucket's region.",
    }
    RegionNotSupported {
        type: "Invalid Storage Container Location",
        code: "region-not-supported",
        status: 400,
        message: "Storage container must be located in one of the following regions: {regions}",
        fix: "Choose one of the listed AWS regions (GET /api/v1/regions) for the configuration and its bucket.",
    }
    MissingQueueName {
        type: "Missing Configuration",
        code: "missing-queue-name",
        status: 500,
        message: "Missing queue name for storage container notification",
        fix: "The platform's event queue is not configured. An operator sets it in the server configuration.",
    }
    MissingSystemTopicName {
        type: "Missing Configuration",
        code: "missing-system-topic-name",
        status: 500,
        message: "Missing system topic name for storage container notification",
        fix: "The platform's event topic is not configured. An operator sets it in the server configuration.",
    }
    MissingLambdaArn {
        type: "Missing Configuration",
        code: "missing-lambda-arn",
        status: 500,
        message: "Missing lambda ARN for storage container notification",
        fix: "The platform's notification function is not configured. An operator sets it in the server configuration.",
    }
    MissingSubscriptionName {
        type: "Missing Configuration",
        code: "missing-subscription-name",
        status: 500,
        message: "Missing subscription name for storage container notification",
        fix: "The platform's event subscription is not configured. An operator sets it in the server configuration.",
    }
    HnsRequired {
        type: "Missing Storage Account Settings",
        code: "hns-required",
        status: 400,
        message: "The storage account '{storageAccountName}' needs HNS (Hierarchical Namespace) enabled.",
        fix: "Enable Hierarchical Namespace on the storage account (a one-way upgrade in the Azure portal), then validate again.",
    }
    MissingContainerSettings {
        type: "Missing Storage Container Settings",
        code: "missing-container-settings",
        status: 400,
        message: "Missing settings for storage container",
        fix: "Give the storage container's settings (bucket, region and credential) in the configuration.",
    }

    CorsBlocksUploads {
        type: "Missing Storage Container Settings",
        code: "cors-blocks-uploads",
        status: 400,
        message: "Browser uploads to the storage container are blocked by its CORS rules: {message}",
        fix: "Add a CORS rule for the console's origin that allows HEAD, GET, PUT, POST and DELETE and exposes the ETag header: `byos aws cors` prints it and `byos aws doctor --fix` adds it, keeping the bucket's other rules.",
    }
    NotificationRejected {
        type: "Conflict",
        code: "notification-rejected",
        status: 409,
        message: "Failed to update bucket policy: {message}",
        fix: "S3 refused the merged notification configuration. Review the bucket's event notifications for configurations that share an event type on overlapping prefixes, delete them, and validate again.",
    }

    Unauthenticated {
        type: "Unauthenticated",
        code: "unauthenticated",
        status: 401,
        message: "A valid bearer token is required: {message}",
        fix: "Send `Authorization: Bearer <token>` with a token from the admin-token file or from /api/v1/tokens.",
    }
    TokenExpired {
        type: "Unauthenticated",
        code: "token-expired",
        status: 401,
        message: "A valid bearer token is required: the token expired at {expiresAt}; ask an admin for a new one (POST /api/v1/tokens)",
        fix: "An expired token cannot be renewed. An admin creates a new one with POST /api/v1/tokens (with a later expiresAt, or none); send it as `Authorization: Bearer <token>`.",
    }
    /// A change asked for with the console's session cookie, without the session's CSRF token
    /// or from another site.
    CsrfCheckFailed {
        type: "Access Forbidden",
        code: "csrf-check-failed",
        status: 403,
        message: "The console's request was refused: {message}",
        fix: "Reload the console's page and try again. A change made with the console's session cookie must come from the console's own page, with the session's X-CSRF-Token header; API clients send `Authorization: Bearer <token>` instead of the cookie.",
    }
    NotFound {
        type: "Not Found",
        code: "not-found",
        status: 404,
        message: "{resource} '{id}' does not exist",
        fix: "Check the id; list the resources to find it.",
    }
    CredentialsPathTooLong {
        type: "Invalid Parameter",
        code: "credentials-path-too-long",
        status: 400,
        message: "Unable to generate credentials from the objectstore as the requested path is too long",
        fix: "The session policy that limits the credentials to the path must fit STS's 2,048 characters, and the path appears in it three times. Ask for credentials on a shorter folder, or on the project's root (leave path out).",
    }
    BucketNotVersioned {
        type: "Conflict",
        code: "bucket-not-versioned",
        status: 409,
        message: "Bucket '{bucket}' keeps no versions of its objects (versioning: {state})",
        fix: "Versions, restores of versions and undeletes need S3 versioning on the bucket: the bucket owner enables it (aws s3api put-bucket-versioning, or byos aws bootstrap --versioned), with the versioned IAM policy, and validates the configuration again.",
    }
    FileExists {
        type: "Conflict",
        code: "file-exists",
        status: 409,
        message: "'{path}' already exists",
        fix: "Upload with overwrite: true to replace it (on a versioned bucket the old content stays as a version), or choose another path.",
    }
    ObjectsNotDeleted {
        type: "Forbidden",
        code: "objects-not-deleted",
        status: 403,
        message: "{count} object(s) in '{folder}' were not deleted; the first, '{key}': {reason}",
        fix: "Give the configuration's storage credential s3:DeleteObject on the project's prefix (byos aws doctor names what is missing), or lift the objects' Object Lock retention or legal hold; then delete the folder again, which deletes what is left.",
    }
    ObjectsNotMoved {
        type: "Conflict",
        code: "objects-not-moved",
        status: 409,
        message: "{count} object(s) in '{folder}' were not moved; the first, '{key}': {reason}",
        fix: "The objects that were not moved are still where they were: running the move again moves what is left (a copy that did not match its source, because the source changed during the move, is made again). A destination that holds another file is kept unless the move overwrites; a missing permission (s3:PutObject, s3:DeleteObject on the project's prefix) is named by byos aws doctor.",
    }
    ObjectsNotCopied {
        type: "Conflict",
        code: "objects-not-copied",
        status: 409,
        message: "{count} object(s) were not copied; the first, '{key}': {reason}",
        fix: "The job's report (GET /api/v1/jobs/{id}/report, or byos jobs report) names every object with its error. A destination that holds another file is kept unless the job overwrites; a missing permission is named by the job's preflight and by byos aws doctor. A new job with the same sources copies what is missing (with onConflict skip, what is there stays).",
    }
    CopyPreflightFailed {
        type: "Forbidden",
        code: "copy-preflight-failed",
        status: 403,
        message: "The copy cannot start: {check} failed: {detail}",
        fix: "The job's preflight lists every check with its fix: grant what the failed check names (byos aws bucket-policy --cross-account and byos aws kms-policy print the statements to add), then start the job again. Nothing was copied.",
    }
    NotArchived {
        type: "Conflict",
        code: "not-archived",
        status: 409,
        message: "'{path}' is not archived: its storage class {storageClass} is read without a restore",
        fix: "Download the file as it is; only files in GLACIER or DEEP_ARCHIVE need a restore first.",
    }
    RestoreInProgress {
        type: "Conflict",
        code: "restore-in-progress",
        status: 409,
        message: "A restore of '{path}' is already running",
        fix: "Wait for it: the file's archiveState turns restored when S3 has made the copy (minutes for Expedited, hours for Standard, up to two days for Bulk).",
    }
    UploadIncomplete {
        type: "Conflict",
        code: "upload-incomplete",
        status: 409,
        message: "The upload of '{path}' is not complete: the bucket does not hold the file at its size yet",
        fix: "Send the file with the upload's presigned PUT (and its headers) first, then complete the upload; or abort it.",
    }
    NotDeleted {
        type: "Conflict",
        code: "not-deleted",
        status: 409,
        message: "'{path}' is not deleted: its latest version is the file, not a delete marker",
        fix: "Undelete brings back a file whose latest version is a delete marker. To bring back an older version of a file that exists, restore that version (POST .../data/restore-version).",
    }
    TooManyRequests {
        type: "Too Many Requests",
        code: "too-many-requests",
        status: 429,
        message: "Too many requests: {message}",
        fix: "Wait a minute and ask again; reuse credentials until they expire rather than asking for new ones per command.",
    }
    FileNotFound {
        type: "Not Found",
        code: "file-not-found",
        status: 404,
        message: "'{path}' is not a file of the project: {reason}",
        fix: "Browse the folder (GET .../data?path=/folder/) to find the file's path. A folder's files are downloaded one by one; a deleted file of a versioned bucket can be undeleted first.",
    }
    RouteNotFound {
        type: "Not Found",
        code: "route-not-found",
        status: 404,
        message: "No API route at {path}",
        fix: "See /api/v1/openapi.json for the API's routes.",
    }
    MethodNotAllowed {
        type: "Invalid Request",
        code: "method-not-allowed",
        status: 405,
        message: "{method} is not allowed on {path}",
        fix: "See /api/v1/openapi.json for the methods each route takes.",
    }
    InUse {
        type: "Conflict",
        code: "in-use",
        status: 409,
        message: "{resource} '{name}' is used by {users}",
        fix: "Delete or change what uses it first.",
    }
    NameTaken {
        type: "Conflict",
        code: "name-taken",
        status: 409,
        message: "A {resource} named '{name}' already exists",
        fix: "Choose another name, or change the existing one.",
    }
    DefaultForRegionTaken {
        type: "Conflict",
        code: "default-for-region-taken",
        status: 409,
        message: "Storage configuration '{name}' is already the default for region {region}",
        fix: "Clear defaultForRegion on the other configuration first, or create this one without it.",
    }
    ConfigurationPrefixOverlap {
        type: "Conflict",
        code: "configuration-prefix-overlap",
        status: 409,
        message: "Storage configuration '{name}' already uses {prefix} of bucket '{bucket}', which overlaps this key prefix",
        fix: "Two storage configurations never share keys of one bucket. Choose a key prefix that neither contains nor lies inside the other configuration's, or use that configuration.",
    }
    ProjectPrefixOverlap {
        type: "Conflict",
        code: "project-prefix-overlap",
        status: 409,
        message: "Project '{name}' already owns '{prefix}' of bucket '{bucket}', which overlaps this project's folder",
        fix: "Two projects never share keys of one bucket: choose a folder that neither contains nor lies inside the other project's.",
    }
    ProjectPrefixUnsafe {
        type: "Conflict",
        code: "project-prefix-unsafe",
        status: 409,
        message: "Project '{name}' lives under '{prefix}', which no policy can scope: {rule}",
        fix: "The project was created before such prefixes were refused. Create a project on a folder without '*', '?', '$', control or invisible characters, copy the data across (aws s3 sync), and delete this project; the README's 'Projects and their data' shows how.",
    }
    ConfigurationNotReady {
        type: "Conflict",
        code: "configuration-not-ready",
        status: 409,
        message: "Storage configuration '{name}' is {status}: a project needs a ready storage configuration",
        fix: "Wait for the configuration's validation to finish, or fix what its report names and validate it again (POST /api/v1/storage-configurations/{id}/validate).",
    }
    ValidationRunning {
        type: "Conflict",
        code: "validation-running",
        status: 409,
        message: "Storage configuration '{id}' is being validated right now",
        fix: "Wait a few seconds and read the configuration: the running validation records its report.",
    }
    AwsUnreachable {
        type: "Service Unavailable",
        code: "aws-unreachable",
        status: 503,
        message: "AWS could not be reached: {message}",
        fix: "This is usually temporary (throttling or an outage); the platform retries in the background. If it persists, an operator checks the server's network and its aws.endpoint_url.",
    }
    AwsRequestFailed {
        type: "AWS Error",
        code: "aws-request-failed",
        status: 502,
        message: "AWS refused {operation}: {message}",
        fix: "Read AWS's message; `byos aws doctor` checks the bucket's whole set-up and names the fix.",
    }
    RoleTrustsWithoutExternalId {
        type: "Access Forbidden",
        code: "role-trusts-without-external-id",
        status: 403,
        message: "Role '{roleArn}' can be assumed by the platform without its external id",
        fix: "Any customer of the platform could then reach this bucket through the role. Replace the role's trust policy with the one the platform gives (GET /api/v1/storage-credentials/{id}/trust-policy, or `byos aws trust-policy`): it requires the credential's external id.",
    }
    RoleInPlatformAccount {
        type: "Invalid Parameter",
        code: "role-in-platform-account",
        status: 400,
        message: "Role '{roleArn}' is in the platform's own AWS account {account}",
        fix: "The platform assumes only roles of the bucket owner's account: create the role there, trusting the platform's principal with the external id.",
    }
    BucketOwnerMismatch {
        type: "Access Forbidden",
        code: "bucket-owner-mismatch",
        status: 403,
        message: "Bucket '{bucket}' is not owned by the credential's AWS account {account}",
        fix: "The platform accepts a bucket's events only from the account that owns it, and learns that account from the credential: use an IAM user or role of the bucket owner's account.",
    }
    LastAdminToken {
        type: "Conflict",
        code: "last-admin-token",
        status: 409,
        message: "Token '{name}' is the last admin token that does not expire, and cannot be deleted",
        fix: "Create another admin token without expiresAt first: once admin tokens that expire have expired, nothing else could reach System Settings.",
    }
    CredentialKindMismatch {
        type: "Invalid Parameter",
        code: "credential-kind-mismatch",
        status: 400,
        message: "Storage credential '{name}' is of type {actual}; the request is for type {requested}",
        fix: "Rotate a credential with the fields of its own type.",
    }
    InvalidRequest {
        type: "Invalid Request",
        code: "invalid-request",
        status: 400,
        message: "Invalid request: {message}",
        fix: "Correct the request as the message says; /api/v1/openapi.json describes every body.",
    }
    UnsupportedMediaType {
        type: "Invalid Request",
        code: "unsupported-media-type",
        status: 415,
        message: "Request bodies are JSON: {message}",
        fix: "Send the body as JSON with `Content-Type: application/json`.",
    }
    PayloadTooLarge {
        type: "Invalid Request",
        code: "payload-too-large",
        status: 413,
        message: "The request body is larger than {limit} bytes",
        fix: "Send a smaller body.",
    }
    ServiceUnavailable {
        type: "Service Unavailable",
        code: "service-unavailable",
        status: 503,
        message: "The service is not ready: {message}",
        fix: "Retry shortly; if it persists, an operator checks the server's log and its database.",
    }
    RequestTimeout {
        type: "Service Unavailable",
        code: "request-timeout",
        status: 503,
        message: "The request did not finish within the server's limit of {limit}",
        fix: "Retry shortly. If it keeps happening, an operator checks the server's log and its database, and may raise server.request_timeout_seconds.",
    }
    Internal {
        type: "Internal Error",
        code: "internal",
        status: 500,
        message: "Internal error {errorId}",
        fix: "Retry; if it persists, give the error id to an operator, who finds the cause in the server's log.",
    }
}

impl ErrorCode {
    /// The entry with this stable code.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.entry().code == code)
    }

    /// The names of the `{placeholders}` of this entry's message, in order.
    pub fn placeholders(self) -> Vec<&'static str> {
        placeholders(self.entry().message).collect()
    }
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// An error of the catalogue with its message rendered: what an API error body, a validation
/// report and `byos aws doctor` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    code: ErrorCode,
    message: String,
}

impl Problem {
    /// Renders the entry's message with the given values for its placeholders.
    ///
    /// # Panics
    /// If `values` does not name exactly the entry's placeholders: that is a programming error,
    /// which the unit tests of every constructor below catch.
    pub fn new(code: ErrorCode, values: &[(&str, &str)]) -> Problem {
        let template = code.entry().message;
        let mut names: Vec<&str> = placeholders(template).collect();
        let mut given: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        given.sort_unstable();
        assert_eq!(names, given, "values for catalogue entry {}", code.entry().code);
        let mut message = template.to_owned();
        for (name, value) in values {
            message = message.replace(&format!("{{{name}}}"), value);
        }
        Problem { code, message }
    }

    /// A problem as it was rendered before, for example when read back from the store.
    pub fn restore(code: ErrorCode, message: String) -> Problem {
        Problem { code, message }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn entry(&self) -> &'static CatalogueEntry {
        self.code.entry()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn bucket_not_versioned(bucket: &str, state: &str) -> Problem {
        Problem::new(ErrorCode::BucketNotVersioned, &[("bucket", bucket), ("state", state)])
    }

    pub fn file_exists(path: &str) -> Problem {
        Problem::new(ErrorCode::FileExists, &[("path", path)])
    }

    pub fn objects_not_deleted(count: u64, folder: &str, key: &str, reason: &str) -> Problem {
        Problem::new(
            ErrorCode::ObjectsNotDeleted,
            &[("count", &count.to_string()), ("folder", folder), ("key", key), ("reason", reason)],
        )
    }

    pub fn objects_not_moved(count: u64, folder: &str, key: &str, reason: &str) -> Problem {
        Problem::new(
            ErrorCode::ObjectsNotMoved,
            &[("count", &count.to_string()), ("folder", folder), ("key", key), ("reason", reason)],
        )
    }

    pub fn objects_not_copied(count: u64, key: &str, reason: &str) -> Problem {
        Problem::new(ErrorCode::ObjectsNotCopied, &[("count", &count.to_string()), ("key", key), ("reason", reason)])
    }

    pub fn copy_preflight_failed(check: &str, detail: &str) -> Problem {
        Problem::new(ErrorCode::CopyPreflightFailed, &[("check", check), ("detail", detail)])
    }

    pub fn not_archived(path: &str, storage_class: &str) -> Problem {
        Problem::new(ErrorCode::NotArchived, &[("path", path), ("storageClass", storage_class)])
    }

    pub fn restore_in_progress(path: &str) -> Problem {
        Problem::new(ErrorCode::RestoreInProgress, &[("path", path)])
    }

    pub fn upload_incomplete(path: &str) -> Problem {
        Problem::new(ErrorCode::UploadIncomplete, &[("path", path)])
    }

    pub fn not_deleted(path: &str) -> Problem {
        Problem::new(ErrorCode::NotDeleted, &[("path", path)])
    }

    pub fn too_many_requests(message: &str) -> Problem {
        Problem::new(ErrorCode::TooManyRequests, &[("message", message)])
    }

    pub fn file_not_found(path: &str, reason: &str) -> Problem {
        Problem::new(ErrorCode::FileNotFound, &[("path", path), ("reason", reason)])
    }

    pub fn project_prefix_unsafe(name: &str, prefix: &str, rule: &str) -> Problem {
        Problem::new(ErrorCode::ProjectPrefixUnsafe, &[("name", name), ("prefix", prefix), ("rule", rule)])
    }

    pub fn access_forbidden(message: &str) -> Problem {
        Problem::new(ErrorCode::AccessForbidden, &[("message", message)])
    }

    pub fn bucket_not_found(bucket: &str) -> Problem {
        Problem::new(ErrorCode::BucketNotFound, &[("storageContainer", bucket)])
    }

    pub fn invalid_parameters(message: &str) -> Problem {
        Problem::new(ErrorCode::InvalidVolumeParameters, &[("message", message)])
    }

    pub fn bucket_wrong_region(region: &str) -> Problem {
        Problem::new(ErrorCode::BucketWrongRegion, &[("region", region)])
    }

    pub fn region_not_supported(regions: &str) -> Problem {
        Problem::new(ErrorCode::RegionNotSupported, &[("regions", regions)])
    }

    pub fn not_found(resource: &str, id: &str) -> Problem {
        Problem::new(ErrorCode::NotFound, &[("resource", resource), ("id", id)])
    }

    pub fn invalid_request(message: &str) -> Problem {
        Problem::new(ErrorCode::InvalidRequest, &[("message", message)])
    }

    pub fn unauthenticated(message: &str) -> Problem {
        Problem::new(ErrorCode::Unauthenticated, &[("message", message)])
    }

    /// A console change without its session's CSRF token, or from another site.
    pub fn csrf_check_failed(message: &str) -> Problem {
        Problem::new(ErrorCode::CsrfCheckFailed, &[("message", message)])
    }

    /// A token that expired at `expires_at` (RFC 3339).
    pub fn token_expired(expires_at: &str) -> Problem {
        Problem::new(ErrorCode::TokenExpired, &[("expiresAt", expires_at)])
    }

    pub fn internal(error_id: &str) -> Problem {
        Problem::new(ErrorCode::Internal, &[("errorId", error_id)])
    }
}

impl From<ErrorCode> for Problem {
    /// The problem for an entry whose message has no placeholders.
    fn from(code: ErrorCode) -> Problem {
        Problem::new(code, &[])
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use expect_test::expect;

    use super::*;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let entry = code.entry();
            assert!(seen.insert(entry.code), "duplicate code {}", entry.code);
            assert!(
                entry.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{} is not kebab-case",
                entry.code
            );
            assert!((400..600).contains(&entry.status), "{}", entry.code);
            assert!(!entry.fix.is_empty(), "{} has no fix", entry.code);
            assert_eq!(ErrorCode::from_code(entry.code), Some(*code));
        }
    }

    /// The seed's table, verbatim (with its "Paramater" spelled right), is in the catalogue.
    #[test]
    fn seed_table_is_verbatim() {
        let rows: String = ErrorCode::ALL[..20]
            .iter()
            .map(|c| format!("{} | {}\n", c.entry().error_type, c.entry().message))
            .collect();
        expect![[r#"
            Access Forbidden | Access forbidden: {message}
            Conflict | System topic is not in a valid state
            Conflict | Found conflicting storage container notifications with overlapping prefixes
            Conflict | Found conflicting storage container notifications for {prefix}{eventTypeMsg}
            Conflict | Found conflicting storage container notifications with overlapping prefixes{prefixMsg}{eventTypeMsg}
            Customer Container Notification Exists | Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification
            Invalid Access Key ID | Failed to update bucket policy: The AWS Access Key Id you provided does not exist in our records.
            Invalid Parameter | Missing credentials for storage container
            Invalid Parameter | Missing bucket name for storage container
            Invalid Parameter | The storage container name has invalid characters
            Invalid Parameter | Storage Container '{storageContainer}' does not exist
            Invalid Parameter | Invalid parameters for volume configuration: {message}
            Invalid Storage Container Location | Storage container must be located in the {region} region
            Invalid Storage Container Location | Storage container must be located in one of the following regions: {regions}
            Missing Configuration | Missing queue name for storage container notification
            Missing Configuration | Missing system topic name for storage container notification
            Missing Configuration | Missing lambda ARN for storage container notification
            Missing Configuration | Missing subscription name for storage container notification
            Missing Storage Account Settings | The storage account '{storageAccountName}' needs HNS (Hierarchical Namespace) enabled.
            Missing Storage Container Settings | Missing settings for storage container
        "#]]
        .assert_eq(&rows);
    }

    #[test]
    fn rendering_fills_every_placeholder() {
        for &code in ErrorCode::ALL {
            let values: Vec<(&str, &str)> = code.placeholders().into_iter().map(|p| (p, "X")).collect();
            let problem = Problem::new(code, &values);
            assert!(!problem.message().contains('{'), "{}: {}", code.entry().code, problem.message());
        }
        let p = Problem::new(
            ErrorCode::NotificationOverlapDetail,
            &[("prefixMsg", " (data/ and data/raw/)"), ("eventTypeMsg", " for s3:ObjectCreated:*")],
        );
        assert_eq!(
            p.message(),
            "Found conflicting storage container notifications with overlapping prefixes (data/ and data/raw/) for s3:ObjectCreated:*"
        );
        assert_eq!(
            Problem::invalid_parameters("found conflicting storage container notifications with overlapping prefixes")
                .message(),
            "Invalid parameters for volume configuration: found conflicting storage container notifications with overlapping prefixes"
        );
    }

    #[test]
    fn constructors_match_their_templates() {
        // Each constructor panics if its values do not match the template: calling each is the test.
        let problems = [
            Problem::access_forbidden("Access Denied"),
            Problem::bucket_not_found("b"),
            Problem::invalid_parameters("m"),
            Problem::bucket_wrong_region("eu-central-1"),
            Problem::region_not_supported("a, b"),
            Problem::not_found("Storage credential", "x"),
            Problem::invalid_request("m"),
            Problem::unauthenticated("m"),
            Problem::token_expired("2030-01-02T03:04:05Z"),
            Problem::csrf_check_failed("m"),
            Problem::internal("e"),
            Problem::from(ErrorCode::MissingBucketName),
        ];
        let rendered: String = problems.iter().map(|p| format!("{p}\n")).collect();
        expect![[r#"
            Access forbidden: Access Denied
            Storage Container 'b' does not exist
            Invalid parameters for volume configuration: m
            Storage container must be located in the eu-central-1 region
            Storage container must be located in one of the following regions: a, b
            Storage credential 'x' does not exist
            Invalid request: m
            A valid bearer token is required: m
            A valid bearer token is required: the token expired at 2030-01-02T03:04:05Z; ask an admin for a new one (POST /api/v1/tokens)
            The console's request was refused: m
            Internal error e
            Missing bucket name for storage container
        "#]]
        .assert_eq(&rendered);
    }
}
