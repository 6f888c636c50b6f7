//! The one retry policy of every AWS call, and its metrics. Every SDK client is built here, so
//! that none escapes either.
//!
//! **The policy** is the SDK's standard strategy, set once in [`policy`]:
//!
//! - *What is retried:* throttling (HTTP 429, S3's 503 `SlowDown`, `Throttling*` codes), every
//!   5xx, timeouts, and transport failures (a refused or reset connection, an answer cut short).
//!   Nothing else: a 4xx is an answer, and asking again gets the same one.
//! - *How often:* up to 4 attempts in all, with exponential backoff from 100 ms with full jitter
//!   (each wait drawn between 0 and the bound, which doubles, up to 20 s), inside the
//!   operation's 90 s. A client-side quota (the SDK's token bucket) stops retrying when most
//!   calls fail, so an outage does not triple the load on a struggling service.
//! - *What is idempotent:* the SDK retries every operation. byos's calls are safe to repeat: a PUT
//!   of the same bytes, a DELETE (of a key, a message's receipt), reads and lists, notification
//!   and policy writes (read-merge-write of a whole document). The few that are not are made so
//!   a level up: a copy is verified against its source before the source goes; a queue message
//!   sent twice is applied once (the sequencer orders events per key).
//! - *After the SDK gives up,* the caller sees an [`AwsError`](crate::AwsError) whose
//!   `retryable()` is true (`Throttled`, `Unavailable`), and its own loop tries again later: a
//!   queue message stays in the queue and comes back after its visibility timeout; a validation
//!   is retried with doubling delays; a job step is taken up again; a reconcile runs again.
//!
//! **The metrics:** `byos_aws_retries_total{service}` counts attempts after the first, and
//! `byos_aws_gave_up_total{service}` the calls that still failed after being retried.

use std::sync::LazyLock;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::interceptors::{BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The retry policy of every client (see the module's documentation).
pub(crate) fn policy() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(4)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(20))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

/// The counters, one set per process: every client of every `Aws` counts into them.
struct Counters {
    retries: Family<ServiceLabels, Counter>,
    gave_up: Family<ServiceLabels, Counter>,
}

static COUNTERS: LazyLock<Counters> =
    LazyLock::new(|| Counters { retries: Family::default(), gave_up: Family::default() });

/// Adds the retry metrics to `registry`.
pub(crate) fn register_metrics(registry: &mut Registry) {
    registry.register("aws_retries", "AWS call attempts after the first, by service", COUNTERS.retries.clone());
    registry.register(
        "aws_gave_up",
        "AWS calls that still failed after the retry policy's attempts, by service",
        COUNTERS.gave_up.clone(),
    );
}

/// The retries a service's calls made so far, and the calls that gave up after retrying.
pub(crate) fn counts(service: &'static str) -> (u64, u64) {
    let labels = ServiceLabels { service };
    (COUNTERS.retries.get_or_create(&labels).get(), COUNTERS.gave_up.get_or_create(&labels).get())
}

/// Counts a client's retries and give-ups.
#[derive(Debug)]
struct Counting {
    service: &'static str,
}

impl Counting {
    fn attempts(cfg: &ConfigBag) -> u32 {
        cfg.load::<RequestAttempts>().map_or(0, RequestAttempts::attempts)
    }
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "byos retry metrics"
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if Counting::attempts(cfg) > 1 {
            COUNTERS.retries.get_or_create(&ServiceLabels { service: self.service }).inc();
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failed = context.output_or_error().is_some_and(|result| result.is_err());
        if failed && Counting::attempts(cfg) > 1 {
            COUNTERS.gave_up.get_or_create(&ServiceLabels { service: self.service }).inc();
        }
        Ok(())
    }
}

/// An S3 client; path-style addressing for endpoints other than AWS's.
pub(crate) fn s3(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .interceptor(Counting { service: "s3" })
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub(crate) fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(config).interceptor(Counting { service: "sqs" }).build();
    aws_sdk_sqs::Client::from_conf(config)
}

pub(crate) fn sts(config: &SdkConfig) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::config::Builder::from(config).interceptor(Counting { service: "sts" }).build();
    aws_sdk_sts::Client::from_conf(config)
}

pub(crate) fn kms(config: &SdkConfig) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(config).interceptor(Counting { service: "kms" }).build();
    aws_sdk_kms::Client::from_conf(config)
}

pub(crate) fn iam(config: &SdkConfig) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::config::Builder::from(config).interceptor(Counting { service: "iam" }).build();
    aws_sdk_iam::Client::from_conf(config)
}
