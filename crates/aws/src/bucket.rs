//! Operations on one customer's bucket with a stored credential: what validation probes and
//! what provisioning writes.

use aws_config::SdkConfig;
use aws_sdk_s3::config::SharedCredentialsProvider;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, EncodingType, EventBridgeConfiguration, FilterRule, FilterRuleName,
    LambdaFunctionConfiguration, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter, TopicConfiguration,
};
use byos_domain::cors::CorsRule;
use byos_domain::notifications::{Destination, NotificationConfig, NotificationRule};
use byos_domain::{ServerSideEncryption, VersioningState};

use crate::boxed;
use crate::error::{AwsError, AwsErrorKind, classify};
use crate::listing::listed_key;
use crate::retries;

/// Who a credential is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// What a PutObject answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Present when the bucket's versioning is enabled.
    pub version_id: Option<String>,
    pub e_tag: Option<String>,
}

/// S3, STS and KMS clients for one credential in one region.
#[derive(Debug, Clone)]
pub struct BucketAccess {
    s3: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    kms: aws_sdk_kms::Client,
    region: String,
    preflight: reqwest::Client,
    endpoint_url: Option<String>,
    /// What signs the clients' requests; presigned URLs last no longer than what it gives.
    credentials: Option<SharedCredentialsProvider>,
}

impl BucketAccess {
    pub(crate) fn new(
        config: &SdkConfig,
        path_style: bool,
        region: &str,
        preflight: reqwest::Client,
        endpoint_url: Option<String>,
    ) -> BucketAccess {
        BucketAccess {
            s3: retries::s3(config, path_style),
            sts: retries::sts(config),
            kms: retries::kms(config),
            region: region.to_owned(),
            preflight,
            endpoint_url,
            credentials: config.credentials_provider(),
        }
    }

    /// The same, with STS reached through `config` (an STS endpoint of its own).
    pub(crate) fn with_sts(mut self, config: &SdkConfig) -> BucketAccess {
        self.sts = retries::sts(config);
        self
    }

    pub(crate) fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    pub(crate) fn sts(&self) -> &aws_sdk_sts::Client {
        &self.sts
    }

    pub(crate) fn credentials(&self) -> Option<&SharedCredentialsProvider> {
        self.credentials.as_ref()
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// STS GetCallerIdentity: needs no permission, so it tells a bad key from a missing grant.
    #[boxed]
    pub async fn caller_identity(&self) -> Result<Identity, AwsError> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| classify("GetCallerIdentity", e))?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        })
    }

    /// The bucket's policy text, if it has one and the credential may read it.
    #[boxed]
    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        crate::owner::bucket_policy(&self.s3, bucket).await
    }

    /// A KMS key's policy text, if the credential may read it.
    #[boxed]
    pub async fn kms_key_policy(&self, key_arn: &str) -> Result<String, AwsError> {
        crate::owner::kms_key_policy(&self.kms, key_arn).await
    }

    /// The bucket's Object Ownership (`None`: not set, which S3 reads as `ObjectWriter`).
    #[boxed]
    pub async fn object_ownership(&self, bucket: &str) -> Result<Option<String>, AwsError> {
        crate::owner::object_ownership(&self.s3, bucket).await
    }

    /// The bucket's region. HeadBucket names it in a header even when access is denied; when it
    /// does not, GetBucketLocation (granted by ICA's policy) does.
    #[boxed]
    pub async fn bucket_region(&self, bucket: &str) -> Result<String, AwsError> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(out) => {
                if let Some(region) = out.bucket_region() {
                    return Ok(region.to_owned());
                }
            }
            Err(e) => {
                let region = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_owned);
                let error = classify("HeadBucket", e);
                match (&error.kind, region) {
                    (AwsErrorKind::NotFound | AwsErrorKind::NoSuchBucket, _) => {
                        return Err(AwsError { kind: AwsErrorKind::NoSuchBucket, ..error });
                    }
                    (_, Some(region)) => return Ok(region),
                    (AwsErrorKind::AccessDenied | AwsErrorKind::WrongRegion { .. }, None) => {}
                    _ => return Err(error),
                }
            }
        }
        let out =
            self.s3.get_bucket_location().bucket(bucket).send().await.map_err(|e| classify("GetBucketLocation", e))?;
        // No constraint means us-east-1; "EU" is the old name of eu-west-1.
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(other) => other.to_owned(),
        })
    }

    /// Lists at most one key under `prefix`: proves ListBucket on it.
    #[boxed]
    pub async fn list_one(&self, bucket: &str, prefix: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(1)
            .encoding_type(EncodingType::Url)
            .send()
            .await
            .map_err(|e| classify("ListObjectsV2", e))?;
        out.contents().first().map(|o| listed_key(o.key(), out.encoding_type(), "ListObjectsV2")).transpose()
    }

    /// Whether `account` owns the bucket: S3 refuses a request whose expected bucket owner is
    /// not the owner. Asked after listing was shown to work, so a refusal means another owner.
    #[boxed]
    pub async fn owned_by(&self, bucket: &str, prefix: &str, account: &str) -> Result<bool, AwsError> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(1)
            .encoding_type(EncodingType::Url)
            .expected_bucket_owner(account)
            .send()
            .await;
        match listed.map_err(|e| classify("ListObjectsV2", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == AwsErrorKind::AccessDenied => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[boxed]
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        sse: Option<&ServerSideEncryption>,
    ) -> Result<PutResult, AwsError> {
        let request = with_sse!(self.s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)), sse);
        let out = request.send().await.map_err(|e| classify("PutObject", e))?;
        Ok(PutResult {
            version_id: out.version_id().filter(|v| !v.is_empty() && *v != "null").map(str::to_owned),
            e_tag: out.e_tag().map(str::to_owned),
        })
    }

    #[boxed]
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out = self.s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| classify("GetObject", e))?;
        let bytes = out.body.collect().await.map_err(|e| {
            AwsError::new(AwsErrorKind::Unavailable, "GetObject", format!("reading the body: {e}")).caused_by(e)
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Deletes a key, or one version of it.
    #[boxed]
    pub async fn delete_object(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<(), AwsError> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("DeleteObject", e))?;
        Ok(())
    }

    #[boxed]
    pub async fn versioning(&self, bucket: &str) -> Result<VersioningState, AwsError> {
        let out = match self.s3.get_bucket_versioning().bucket(bucket).send().await {
            Ok(out) => out,
            Err(e) if empty_success(&e) => {
                // moto's answer has its own root element; its <Status> is still the state.
                let body = e.raw_response().and_then(|r| r.body().bytes()).unwrap_or_default();
                let body = String::from_utf8_lossy(body);
                return Ok(if body.contains("<Status>Enabled</Status>") {
                    VersioningState::Enabled
                } else if body.contains("<Status>Suspended</Status>") {
                    VersioningState::Suspended
                } else {
                    VersioningState::Unversioned
                });
            }
            Err(e) => return Err(classify("GetBucketVersioning", e)),
        };
        Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => VersioningState::Enabled,
            Some(BucketVersioningStatus::Suspended) => VersioningState::Suspended,
            _ => VersioningState::Unversioned,
        })
    }

    #[boxed]
    pub async fn notifications(&self, bucket: &str) -> Result<NotificationConfig, AwsError> {
        let out = match self.s3.get_bucket_notification_configuration().bucket(bucket).send().await {
            Ok(out) => out,
            Err(e) if empty_success(&e) => return Ok(NotificationConfig::default()),
            Err(e) => return Err(classify("GetBucketNotificationConfiguration", e)),
        };
        let mut rules = Vec::new();
        for q in out.queue_configurations() {
            rules.push(rule(q.id(), Destination::Queue(q.queue_arn().to_owned()), q.events(), q.filter()));
        }
        for t in out.topic_configurations() {
            rules.push(rule(t.id(), Destination::Topic(t.topic_arn().to_owned()), t.events(), t.filter()));
        }
        for l in out.lambda_function_configurations() {
            rules.push(rule(l.id(), Destination::Lambda(l.lambda_function_arn().to_owned()), l.events(), l.filter()));
        }
        Ok(NotificationConfig { rules, eventbridge: out.event_bridge_configuration().is_some() })
    }

    /// Replaces the bucket's whole notification configuration: callers read, merge and write.
    #[boxed]
    pub async fn put_notifications(&self, bucket: &str, config: &NotificationConfig) -> Result<(), AwsError> {
        let mut out = NotificationConfiguration::builder();
        for r in &config.rules {
            let events = r.events.iter().map(|e| e.as_str().into()).collect::<Vec<_>>();
            let filter = filter(r);
            let built = match &r.destination {
                Destination::Queue(arn) => QueueConfiguration::builder()
                    .set_id(r.id.clone())
                    .queue_arn(arn)
                    .set_events(Some(events))
                    .set_filter(filter)
                    .build()
                    .map(|q| out = std::mem::take(&mut out).queue_configurations(q)),
                Destination::Topic(arn) => TopicConfiguration::builder()
                    .set_id(r.id.clone())
                    .topic_arn(arn)
                    .set_events(Some(events))
                    .set_filter(filter)
                    .build()
                    .map(|t| out = std::mem::take(&mut out).topic_configurations(t)),
                Destination::Lambda(arn) => LambdaFunctionConfiguration::builder()
                    .set_id(r.id.clone())
                    .lambda_function_arn(arn)
                    .set_events(Some(events))
                    .set_filter(filter)
                    .build()
                    .map(|l| out = std::mem::take(&mut out).lambda_function_configurations(l)),
            };
            built.map_err(|e| {
                AwsError::new(AwsErrorKind::Other, "PutBucketNotificationConfiguration", e.to_string()).caused_by(e)
            })?;
        }
        if config.eventbridge {
            out = out.event_bridge_configuration(EventBridgeConfiguration::builder().build());
        }
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(out.build())
            .send()
            .await
            .map_err(|e| classify("PutBucketNotificationConfiguration", e))?;
        Ok(())
    }

    /// Encrypts and decrypts a data key with the KMS key in this region: what S3 does with it
    /// for every SSE-KMS object, with the permissions ICA's policy grants.
    #[boxed]
    pub async fn kms_round_trip(&self, key_arn: &str) -> Result<(), AwsError> {
        let key = self
            .kms
            .generate_data_key()
            .key_id(key_arn)
            .number_of_bytes(32)
            .send()
            .await
            .map_err(|e| classify("GenerateDataKey", e))?;
        let blob = key
            .ciphertext_blob()
            .cloned()
            .ok_or_else(|| AwsError::new(AwsErrorKind::Other, "GenerateDataKey", "the answer has no ciphertext"))?;
        self.kms.decrypt().key_id(key_arn).ciphertext_blob(blob).send().await.map_err(|e| classify("Decrypt", e))?;
        Ok(())
    }

    /// The bucket's CORS rules; `None` when it has none.
    #[boxed]
    pub async fn cors_rules(&self, bucket: &str) -> Result<Option<Vec<CorsRule>>, AwsError> {
        match self.s3.get_bucket_cors().bucket(bucket).send().await {
            Ok(out) => Ok(Some(
                out.cors_rules()
                    .iter()
                    .map(|r| CorsRule {
                        allowed_origins: r.allowed_origins().to_vec(),
                        allowed_methods: r.allowed_methods().to_vec(),
                        allowed_headers: r.allowed_headers().to_vec(),
                        expose_headers: r.expose_headers().to_vec(),
                    })
                    .collect(),
            )),
            Err(e) => {
                let error = classify("GetBucketCors", e);
                if error.code.as_deref() == Some("NoSuchCORSConfiguration") { Ok(None) } else { Err(error) }
            }
        }
    }

    /// A browser's CORS preflight for an upload from `origin`: whether S3 would allow it. It is
    /// unsigned and needs no permission.
    #[boxed]
    pub async fn cors_allows(&self, bucket: &str, key: &str, origin: &str, method: &str) -> Result<bool, AwsError> {
        let url = match &self.endpoint_url {
            Some(endpoint) => format!("{}/{bucket}/{}", endpoint.trim_end_matches('/'), encode_key(key)),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/{}", self.region, encode_key(key)),
        };
        let response = self
            .preflight
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .send()
            .await
            .map_err(|e| {
                AwsError::new(AwsErrorKind::Unavailable, "CorsPreflight", format!("{url}: {e}")).caused_by(e)
            })?;
        let status = response.status().as_u16();
        Ok((200..300).contains(&status))
    }
}

fn rule(
    id: Option<&str>,
    destination: Destination,
    events: &[aws_sdk_s3::types::Event],
    filter: Option<&NotificationConfigurationFilter>,
) -> NotificationRule {
    let rules = filter.and_then(|f| f.key()).map(|k| k.filter_rules()).unwrap_or_default();
    let value = |name: FilterRuleName| {
        rules.iter().find(|r| r.name() == Some(&name)).and_then(|r| r.value()).map(str::to_owned)
    };
    NotificationRule {
        id: id.map(str::to_owned),
        destination,
        events: events.iter().map(|e| e.as_str().to_owned()).collect(),
        prefix: value(FilterRuleName::Prefix).filter(|p| !p.is_empty()),
        suffix: value(FilterRuleName::Suffix).filter(|s| !s.is_empty()),
    }
}

/// A 200 answer the SDK could not read. S3 answers an unset versioning or notification
/// configuration with an empty `<VersioningConfiguration/>` or `<NotificationConfiguration/>`;
/// moto names the empty element differently (`<GetBucketVersioningResponse/>`), which the SDK
/// refuses, for its versioning answers with a status too. A success with nothing readable in it
/// means nothing is configured.
fn empty_success<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 200)
}

fn filter(rule: &NotificationRule) -> Option<NotificationConfigurationFilter> {
    let mut rules = Vec::new();
    if let Some(prefix) = &rule.prefix {
        rules.push(FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build());
    }
    if let Some(suffix) = &rule.suffix {
        rules.push(FilterRule::builder().name(FilterRuleName::Suffix).value(suffix).build());
    }
    (!rules.is_empty()).then(|| {
        NotificationConfigurationFilter::builder()
            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
            .build()
    })
}

/// Percent-encodes a key for a URL path, keeping `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
