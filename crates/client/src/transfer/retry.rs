//! Retries of presigned requests: throttling, 5xx, dropped connections and expired URLs are
//! tried again with exponential backoff and full jitter; an expired URL is signed again first.

use std::future::Future;
use std::time::Duration;

use crate::error::ClientError;

const FIRST_DELAY: Duration = Duration::from_millis(200);
const LONGEST_DELAY: Duration = Duration::from_secs(20);

/// Runs `attempt(n)` for n = 0, 1, ... until it succeeds, fails for good, or `attempts` ran.
/// `attempt` gets the previous error, to sign its URL again when that one expired.
pub(super) async fn with_retries<T, F, Fut>(attempts: u32, mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut(Option<&ClientError>) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut last: Option<ClientError> = None;
    for n in 0..attempts.max(1) {
        if n > 0 {
            tokio::time::sleep(delay(n)).await;
        }
        match attempt(last.as_ref()).await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() || is_expired(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Usage("no attempt was made".to_owned())))
}

/// Full jitter: a random delay up to the doubled bound (AWS's "exponential backoff and
/// jitter"), so that many clients throttled together do not come back together.
fn delay(attempt: u32) -> Duration {
    let bound = FIRST_DELAY.saturating_mul(1 << attempt.min(16)).min(LONGEST_DELAY);
    bound.mul_f64(rand::random::<f64>())
}

/// Whether S3 refused a presigned request because its signature's time ran out.
pub(super) fn is_expired(error: &ClientError) -> bool {
    matches!(error, ClientError::S3 { status: 403, message, .. } if message.contains("expired"))
}

/// S3's error answer as a `ClientError`: its `<Code>` and `<Message>`.
pub(super) async fn s3_error(operation: &'static str, path: &str, response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find('<')? + start;
        Some(body[start..end].to_owned())
    };
    let message = match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ if body.is_empty() => "no details".to_owned(),
        _ => body.chars().take(300).collect(),
    };
    ClientError::S3 { operation, path: path.to_owned(), status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_a_bound_with_jitter() {
        for attempt in 1..30 {
            assert!(delay(attempt) <= LONGEST_DELAY);
        }
        let spread: std::collections::BTreeSet<_> = (0..50).map(|_| delay(10)).collect();
        assert!(spread.len() > 10, "jitter spreads the delays: {spread:?}");
    }

    #[tokio::test]
    async fn final_errors_are_not_retried_and_passing_ones_are() {
        let mut calls = 0;
        let refused: Result<(), _> = with_retries(5, |_| {
            calls += 1;
            async {
                Err(ClientError::S3 {
                    operation: "PUT",
                    path: "/a".into(),
                    status: 403,
                    message: "AccessDenied".into(),
                })
            }
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(calls, 1, "a refusal is final");

        let mut calls = 0;
        let healed = with_retries(5, |previous| {
            calls += 1;
            let expired = previous.is_some_and(is_expired);
            let n = calls;
            async move {
                match n {
                    1 => Err(ClientError::S3 {
                        operation: "PUT",
                        path: "/a".into(),
                        status: 503,
                        message: "SlowDown".into(),
                    }),
                    2 => Err(ClientError::S3 {
                        operation: "PUT",
                        path: "/a".into(),
                        status: 403,
                        message: "AccessDenied: Request has expired".into(),
                    }),
                    _ => Ok(expired),
                }
            }
        })
        .await;
        assert!(healed.unwrap(), "the third attempt saw that the URL expired");
        assert_eq!(calls, 3);
    }
}
