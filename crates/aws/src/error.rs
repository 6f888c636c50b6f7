//! `AwsError`: what went wrong in an AWS call, classified so that callers can map it to the
//! catalogue and decide whether a retry can help.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use byos_domain::ErrorChain;

/// The kinds of failure the platform tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsErrorKind {
    /// The access key id does not exist.
    InvalidAccessKeyId,
    /// The secret does not match the access key id.
    SignatureDoesNotMatch,
    /// The identity lacks a permission.
    AccessDenied,
    NoSuchBucket,
    NoSuchKey,
    /// The bucket lives in another region (its region when S3 says which).
    WrongRegion {
        region: Option<String>,
    },
    /// A KMS key, queue or other named resource does not exist.
    NotFound,
    /// The request was refused as invalid (S3's `InvalidArgument`, for one).
    InvalidRequest,
    /// Throttled after the SDK's own retries.
    Throttled,
    /// The endpoint could not be reached, timed out, or answered 5xx after retries.
    Unavailable,
    Other,
}

/// A failed AWS call.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub kind: AwsErrorKind,
    /// The operation, such as `PutObject`.
    pub operation: &'static str,
    /// AWS's error code, when it sent one.
    pub code: Option<String>,
    /// AWS's own message, or a description of the transport failure.
    pub message: String,
    /// What failed underneath (the SDK's error, a body that could not be read), when anything
    /// did: [`Error::source`] gives it, so a log can show the whole chain.
    pub(crate) source: Option<Arc<dyn Error + Send + Sync>>,
}

impl AwsError {
    /// Whether trying again later can help (throttling, outages), as opposed to a failure only
    /// a change of configuration fixes.
    pub fn retryable(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Throttled | AwsErrorKind::Unavailable)
    }

    /// An error of `operation` that no AWS error code names (an answer without a field the
    /// platform needs, for one).
    pub fn new(kind: AwsErrorKind, operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { kind, operation, code: None, message: message.into(), source: None }
    }

    /// The same error, caused by `source`.
    pub(crate) fn caused_by(mut self, source: impl Error + Send + Sync + 'static) -> AwsError {
        self.source = Some(Arc::new(source));
        self
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{}: {code}: {}", self.operation, self.message),
            None => write!(f, "{}: {}", self.operation, self.message),
        }
    }
}

impl Error for AwsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// The response type every SDK error carries.
type Raw = aws_sdk_s3::config::http::HttpResponse;

/// Classifies an SDK error. `status_fallback` handles answers without an error code (HEAD
/// requests have no body, so S3 sends only a status).
pub(crate) fn classify<E>(operation: &'static str, err: SdkError<E, Raw>) -> AwsError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let error = classify_ref(operation, &err);
    error.caused_by(err)
}

fn classify_ref<E>(operation: &'static str, err: &SdkError<E, Raw>) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let raw = err.raw_response();
    let status = raw.map(|r| r.status().as_u16());
    let region = raw.and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_owned);
    match err {
        SdkError::TimeoutError(_) => {
            return AwsError::new(AwsErrorKind::Unavailable, operation, "the request timed out");
        }
        SdkError::DispatchFailure(failure) => {
            let message = match failure.as_connector_error() {
                Some(c) if c.is_timeout() => "the connection timed out".to_owned(),
                Some(c) if c.is_io() => format!("cannot reach the endpoint: {}", ErrorChain(c)),
                _ => format!("the request could not be sent: {}", ErrorChain(err)),
            };
            return AwsError::new(AwsErrorKind::Unavailable, operation, message);
        }
        SdkError::ResponseError(_) => {
            return AwsError::new(
                AwsErrorKind::Other,
                operation,
                format!("the answer could not be read: {}", ErrorChain(err)),
            );
        }
        SdkError::ConstructionFailure(_) => {
            return AwsError::new(AwsErrorKind::Other, operation, format!("invalid request: {}", ErrorChain(err)));
        }
        _ => {}
    }
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    let kind = match (code.as_deref(), status) {
        // S3 says InvalidAccessKeyId, STS InvalidClientTokenId, for a key that does not exist.
        (Some("InvalidAccessKeyId" | "InvalidClientTokenId"), _) => AwsErrorKind::InvalidAccessKeyId,
        (Some("SignatureDoesNotMatch"), _) => AwsErrorKind::SignatureDoesNotMatch,
        (Some("AccessDenied" | "AccessDeniedException" | "AllAccessDisabled"), _) => AwsErrorKind::AccessDenied,
        (Some("NoSuchBucket"), _) => AwsErrorKind::NoSuchBucket,
        (Some("NoSuchKey"), _) => AwsErrorKind::NoSuchKey,
        (Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException"), _) => {
            AwsErrorKind::WrongRegion { region }
        }
        (
            Some(
                "NotFoundException" | "NoSuchEntity" | "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist",
            ),
            _,
        ) => AwsErrorKind::NotFound,
        (Some("InvalidArgument" | "InvalidRequest" | "MalformedXML" | "ValidationException"), _) => {
            AwsErrorKind::InvalidRequest
        }
        (
            Some(
                "Throttling" | "ThrottlingException" | "SlowDown" | "RequestLimitExceeded" | "TooManyRequestsException",
            ),
            _,
        ) => AwsErrorKind::Throttled,
        (_, Some(301)) => AwsErrorKind::WrongRegion { region },
        (_, Some(403)) => AwsErrorKind::AccessDenied,
        (_, Some(404)) => AwsErrorKind::NotFound,
        (_, Some(429)) => AwsErrorKind::Throttled,
        (_, Some(s)) if s >= 500 => AwsErrorKind::Unavailable,
        _ => AwsErrorKind::Other,
    };
    let message = message.unwrap_or_else(|| match status {
        Some(s) => format!("HTTP {s}"),
        None => ErrorChain(err).to_string(),
    });
    AwsError { kind, operation, code, message, source: None }
}
