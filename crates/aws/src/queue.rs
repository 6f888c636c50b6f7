//! The platform's own SQS queues, one per region, that S3 sends the buckets' events to.
//!
//! Why one per region: S3 can only notify a queue in the bucket's region, and one queue per
//! region is what several replicas share and consume together; per-configuration queues would
//! multiply the long polls with the number of buckets. The queue's policy lets S3 send from the
//! buckets the platform serves, listed by ARN in one statement.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use crate::error::{AwsError, AwsErrorKind, classify};

/// The statement of the queue policy that byos keeps.
const STATEMENT_ID: &str = "byos-s3-events";

/// A queue's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub url: String,
    pub arn: String,
}

/// SQS with the platform's identity in one region.
#[derive(Debug, Clone)]
pub struct Queues {
    sqs: aws_sdk_sqs::Client,
}

impl Queues {
    pub(crate) fn new(config: &SdkConfig) -> Queues {
        Queues { sqs: aws_sdk_sqs::Client::new(config) }
    }

    /// Creates the queue if it does not exist (CreateQueue is idempotent) and returns it.
    pub async fn ensure(&self, name: &str) -> Result<QueueInfo, AwsError> {
        let created = self
            .sqs
            .create_queue()
            .queue_name(name)
            // Four days: events outlive an outage of the consumers.
            .attributes(QueueAttributeName::MessageRetentionPeriod, "345600")
            .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20")
            .send()
            .await;
        let url = match created {
            Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
            // The queue exists with other attributes (set by an operator): use it as it is.
            Err(e) => {
                let error = classify("CreateQueue", e);
                if error.code.as_deref() != Some("QueueAlreadyExists")
                    && error.code.as_deref() != Some("QueueNameExists")
                {
                    return Err(error);
                }
                let out =
                    self.sqs.get_queue_url().queue_name(name).send().await.map_err(|e| classify("GetQueueUrl", e))?;
                out.queue_url().unwrap_or_default().to_owned()
            }
        };
        let arn = self
            .attribute(&url, QueueAttributeName::QueueArn)
            .await?
            .ok_or_else(|| AwsError::new(AwsErrorKind::Other, "GetQueueAttributes", "the queue has no ARN"))?;
        Ok(QueueInfo { url, arn })
    }

    async fn attribute(&self, url: &str, name: QueueAttributeName) -> Result<Option<String>, AwsError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?;
        Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
    }

    /// The buckets the queue's policy lets S3 send from.
    pub async fn allowed_buckets(&self, queue: &QueueInfo) -> Result<Vec<String>, AwsError> {
        let policy = self.attribute(&queue.url, QueueAttributeName::Policy).await?;
        Ok(buckets_in(&parse_policy(policy.as_deref())))
    }

    /// Sets the buckets S3 may send from, keeping any other statement of the policy.
    pub async fn set_allowed_buckets(&self, queue: &QueueInfo, buckets: &[String]) -> Result<(), AwsError> {
        let current = self.attribute(&queue.url, QueueAttributeName::Policy).await?;
        let policy = with_buckets(&parse_policy(current.as_deref()), &queue.arn, buckets);
        self.sqs
            .set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| classify("SetQueueAttributes", e))?;
        Ok(())
    }
}

fn parse_policy(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}))
}

fn buckets_in(policy: &Value) -> Vec<String> {
    let statement = policy["Statement"].as_array().and_then(|s| s.iter().find(|s| s["Sid"] == json!(STATEMENT_ID)));
    let arns = statement.map(|s| &s["Condition"]["ArnLike"]["aws:SourceArn"]);
    let arns: Vec<String> = match arns {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    arns.iter().filter_map(|a| a.strip_prefix("arn:aws:s3:::")).map(str::to_owned).collect()
}

/// The policy with byos's statement listing exactly `buckets` (none: the statement goes).
fn with_buckets(policy: &Value, queue_arn: &str, buckets: &[String]) -> Value {
    let mut statements: Vec<Value> = policy["Statement"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["Sid"] != json!(STATEMENT_ID)).cloned().collect())
        .unwrap_or_default();
    if !buckets.is_empty() {
        let mut arns: Vec<String> = buckets.iter().map(|b| format!("arn:aws:s3:::{b}")).collect();
        arns.sort();
        arns.dedup();
        statements.push(json!({
            "Sid": STATEMENT_ID,
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": arns}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_statement_is_merged_and_removed() {
        let other = json!({"Version": "2012-10-17", "Statement": [{"Sid": "ops", "Effect": "Allow", "Principal": "*", "Action": "sqs:GetQueueAttributes", "Resource": "q"}]});
        let added = with_buckets(
            &other,
            "arn:aws:sqs:eu-central-1:111111111111:q",
            &["b".to_owned(), "a".to_owned(), "a".to_owned()],
        );
        assert_eq!(buckets_in(&added), ["a", "b"]);
        assert_eq!(added["Statement"].as_array().map(Vec::len), Some(2), "the operator's statement stays");
        let removed = with_buckets(&added, "q", &[]);
        assert_eq!(removed["Statement"].as_array().map(Vec::len), Some(1));
        assert!(buckets_in(&removed).is_empty());
        assert!(buckets_in(&parse_policy(None)).is_empty());
        assert!(buckets_in(&parse_policy(Some("not json"))).is_empty());
    }
}
