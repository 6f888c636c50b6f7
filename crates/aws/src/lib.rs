//! The AWS adapter: typed operations on S3, SQS, STS, KMS and IAM, built on aws-sdk-rust. This
//! is the only crate that names aws-sdk types; the rest of byos sees domain types and
//! [`AwsError`].
//!
//! One HTTPS client (rustls on ring) is shared by every SDK client. Every call follows one retry
//! policy (`retries`: throttling, 5xx, timeouts and transport failures, 4 attempts, exponential
//! backoff with full jitter), counted in `byos_aws_retries_total` and `byos_aws_gave_up_total`;
//! what is still failing after that reaches the caller classified.

/// A write request with the configuration's server-side encryption (the SDK's request builders
/// share no trait for it).
macro_rules! with_sse {
    ($request:expr, $sse:expr) => {
        match $sse {
            None => $request,
            Some(byos_domain::ServerSideEncryption::Aes256) => {
                $request.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            }
            Some(byos_domain::ServerSideEncryption::Kms(key)) => $request
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id(key.as_str()),
        }
    };
}

mod bucket;
mod error;
mod inventory;
mod listing;
mod owner;
mod queue;
mod retries;
mod setup;
mod transfer;

/// `#[boxed]` turns a public `async fn` into a plain function that returns its future boxed.
/// Every public operation of this crate carries it: an `async fn`'s body is compiled in each
/// crate that awaits it, and with it the SDK's whole request pipeline, so sync, the lifecycle,
/// jobs, the API and the binary each compiled their own copy of every AWS call they make. A plain
/// function is compiled once, here; callers see a `Pin<Box<dyn Future>>`, one allocation per AWS
/// request. (async-recursion does exactly this rewrite, lifetimes included; recursion is what it
/// was written for.)
pub(crate) use async_recursion::async_recursion as boxed;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use byos_domain::{AwsRegion, ExternalId, RoleArn, SecretAccessKey};

pub use bucket::{BucketAccess, Identity, PutResult};
pub use error::{AwsError, AwsErrorKind};
pub use inventory::{
    BYOS_INVENTORY_ID, BYOS_REPORTS_PREFIX, Inventory, Manifest, ManifestFile, REQUIRED_FIELDS, ReportError,
    ReportFormat, ReportRows,
};
pub use listing::{Head, ListPage, ListedVersion, PageMarker};
pub use owner::{
    ABORT_UPLOADS_RULE_ID, AbortUploadsRule, AppliedPolicy, DefaultEncryption, IamUser, KmsKey, ManagedPolicy,
    UserPolicies,
};
pub use queue::{EventSource, QueueInfo, Queues, ReceivedMessage};
pub use setup::{NewAccessKey, Setup};
pub use transfer::{
    Checksum, Copied, CopySource, MAX_COPY_OBJECT_BYTES, MAX_DELETE_BATCH, MAX_PRESIGNED_VALIDITY, NotDeleted,
    PartsCopied, Presigned, RestoreTier, UploadedPart, Vended,
};

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// An S3-compatible or local endpoint (moto, for one) instead of AWS's own; S3 is then
    /// addressed path-style.
    pub endpoint_url: Option<String>,
    /// The platform's own keys, instead of the standard credential chain. Meant for local
    /// endpoints and tests; in AWS, leave it out and let the chain find the instance's role.
    pub static_credentials: Option<(String, String)>,
    /// A named profile of the shared AWS config and credentials files, as `--profile`.
    pub profile: Option<String>,
    /// STS at an endpoint of its own (AWS's per-service endpoint), instead of `endpoint_url`:
    /// tests put AWS's rules that the local endpoint lacks in front of it.
    pub sts_endpoint_url: Option<String>,
}

/// A stored credential in clear, as the adapter needs it.
#[derive(Debug, Clone)]
pub enum CredentialSecret {
    AwsUser {
        access_key_id: String,
        secret_access_key: SecretAccessKey,
    },
    /// Assumed with the platform's own identity; `session_name` shows in CloudTrail.
    AwsRole {
        role_arn: RoleArn,
        external_id: ExternalId,
        session_name: String,
    },
}

/// The entry point: the platform's own identity (the standard AWS credential chain) and the
/// shared HTTP client.
#[derive(Debug, Clone)]
pub struct Aws {
    platform: SdkConfig,
    endpoint_url: Option<String>,
    sts_endpoint_url: Option<String>,
    /// Where SQS requests go when not to `endpoint_url`'s endpoint (or AWS's own).
    sqs_endpoint_url: Option<String>,
    /// For CORS preflight requests, which are unsigned plain HTTP.
    preflight: reqwest::Client,
}

impl Aws {
    /// Adds the retry policy's metrics (`byos_aws_retries_total`, `byos_aws_gave_up_total`) to
    /// `registry`. They count every client of the process.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        retries::register_metrics(registry);
    }

    /// The retries the calls to `service` (`s3`, `sqs`, `sts`, `kms`, `iam`) made so far in this
    /// process, and the calls that still failed after them.
    pub fn retry_counts(service: &'static str) -> (u64, u64) {
        retries::counts(service)
    }

    /// Loads the platform's identity from the environment, profiles, or instance metadata.
    #[boxed]
    pub async fn new(settings: &AwsSettings) -> Aws {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        // Every client names its region, so the default chain's region lookup (which may ask
        // the instance metadata service) never runs.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .http_client(http)
            .retry_config(retries::policy())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(90))
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some((key, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "byos-settings"));
        }
        let platform = loader.load().await;
        let preflight = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_else(|e| unreachable!("a client without custom TLS settings builds: {e}"));
        Aws {
            platform,
            endpoint_url: settings.endpoint_url.clone(),
            sts_endpoint_url: settings.sts_endpoint_url.clone(),
            sqs_endpoint_url: None,
            preflight,
        }
    }

    /// Sends the platform's queue traffic to `url` instead, and everything else where it went.
    /// A local S3 such as moto may serve a fraction of the messages per second a deployment's
    /// queue does: an emulator of SQS alone can take the queue's part.
    pub fn with_sqs_endpoint_url(mut self, url: Option<String>) -> Aws {
        self.sqs_endpoint_url = url;
        self
    }

    /// The endpoint every service is reached at instead of AWS's, when one is set: where
    /// presigned URLs point.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The platform's identity in `region`.
    fn platform_config(&self, region: &str) -> SdkConfig {
        self.platform.to_builder().region(Region::new(region.to_owned())).build()
    }

    /// `config` with STS at its own endpoint, when one is set.
    fn for_sts(&self, config: &SdkConfig) -> SdkConfig {
        match &self.sts_endpoint_url {
            Some(url) => config.to_builder().endpoint_url(url).build(),
            None => config.clone(),
        }
    }

    /// Access to buckets in `region` with a stored credential. For a role, the platform assumes
    /// it (with the external id) when first needed and refreshes it before it expires.
    #[boxed]
    pub async fn bucket_access(&self, credential: &CredentialSecret, region: &AwsRegion) -> BucketAccess {
        let base = self.platform_config(region.as_str());
        let provider = match credential {
            CredentialSecret::AwsUser { access_key_id, secret_access_key } => SharedCredentialsProvider::new(
                Credentials::new(access_key_id, secret_access_key.expose(), None, None, "byos-storage-credential"),
            ),
            CredentialSecret::AwsRole { role_arn, external_id, session_name } => SharedCredentialsProvider::new(
                aws_config::sts::AssumeRoleProvider::builder(role_arn.as_str())
                    .external_id(external_id.expose())
                    .session_name(session_name)
                    .configure(&self.for_sts(&base))
                    .build()
                    .await,
            ),
        };
        self.access_as(base, provider, region)
    }

    /// Access to buckets in `region` as a session of `role_arn` (a platform region's
    /// cross-account copy role), assumed with the platform's identity and narrowed by the session
    /// `policy`: the session may do only what both the role's policies and `policy` allow.
    #[boxed]
    pub async fn role_session_access(
        &self,
        role_arn: &RoleArn,
        session_name: &str,
        policy: &str,
        region: &AwsRegion,
    ) -> BucketAccess {
        let base = self.platform_config(region.as_str());
        let provider = SharedCredentialsProvider::new(
            aws_config::sts::AssumeRoleProvider::builder(role_arn.as_str())
                .session_name(session_name)
                .policy(policy)
                .configure(&self.for_sts(&base))
                .build()
                .await,
        );
        self.access_as(base, provider, region)
    }

    fn access_as(&self, base: SdkConfig, provider: SharedCredentialsProvider, region: &AwsRegion) -> BucketAccess {
        let config = base.to_builder().credentials_provider(provider).build();
        BucketAccess::new(
            &config,
            self.endpoint_url.is_some(),
            region.as_str(),
            self.preflight.clone(),
            self.endpoint_url.clone(),
        )
        .with_sts(&self.for_sts(&config))
    }

    /// STS with the platform's own identity.
    fn platform_sts(&self) -> aws_sdk_sts::Client {
        retries::sts(&self.for_sts(&self.platform))
    }

    /// Who the platform itself is: its account (roles in it are never assumed for customers)
    /// and the principal that customers' role trust policies name.
    #[boxed]
    pub async fn platform_identity(&self) -> Result<Identity, AwsError> {
        let out = self
            .platform_sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| error::classify("GetCallerIdentity", e))?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        })
    }

    /// Assumes `role_arn` with the platform's identity and no external id. A role whose trust
    /// policy requires the external id refuses (AccessDenied); one that does not trusts the
    /// platform for every customer, the confused deputy the external id exists to stop.
    #[boxed]
    pub async fn assume_role_without_external_id(
        &self,
        role_arn: &RoleArn,
        session_name: &str,
    ) -> Result<(), AwsError> {
        self.platform_sts()
            .assume_role()
            .role_arn(role_arn.as_str())
            .role_session_name(session_name)
            .duration_seconds(900)
            .send()
            .await
            .map_err(|e| error::classify("AssumeRole", e))?;
        Ok(())
    }

    /// The platform's own SQS queues in `region`.
    pub fn queues(&self, region: &AwsRegion) -> Queues {
        let config = self.platform_config(region.as_str());
        match &self.sqs_endpoint_url {
            Some(url) => Queues::new(&config.to_builder().endpoint_url(url).build()),
            None => Queues::new(&config),
        }
    }

    /// Set-up operations (buckets, keys, users, policies) with the platform's identity, or with
    /// whatever identity the standard chain gives the bucket owner's tools.
    pub fn setup(&self, region: &AwsRegion) -> Setup {
        Setup::new(&self.platform_config(region.as_str()), self.endpoint_url.is_some())
    }

    /// Access to buckets with the platform's own identity (or the bucket owner's, in their
    /// tools), rather than a stored credential.
    pub fn own_bucket_access(&self, region: &AwsRegion) -> BucketAccess {
        BucketAccess::new(
            &self.platform_config(region.as_str()),
            self.endpoint_url.is_some(),
            region.as_str(),
            self.preflight.clone(),
            self.endpoint_url.clone(),
        )
    }
}
