//! The platform's own SQS queues, one per region, that S3 sends the buckets' events to.
//!
//! Why one per region: S3 can only notify a queue in the bucket's region, and one queue per
//! region is what several replicas share and consume together; per-configuration queues would
//! multiply the long polls with the number of buckets. The queue's policy lets S3 send from the
//! buckets the platform serves, listed by ARN in one statement.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use crate::boxed;
use crate::error::{AwsError, AwsErrorKind, classify};
use crate::retries;

/// The statement of the queue policy that byos keeps.
const STATEMENT_ID: &str = "byos-s3-events";

/// A queue's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub url: String,
    pub arn: String,
}

/// A message taken from a queue; it comes back after its visibility timeout unless deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times SQS has handed this message out, this time included.
    pub receive_count: u32,
}

/// SQS with the platform's identity in one region.
#[derive(Debug, Clone)]
pub struct Queues {
    sqs: aws_sdk_sqs::Client,
}

impl Queues {
    pub(crate) fn new(config: &SdkConfig) -> Queues {
        Queues { sqs: retries::sqs(config) }
    }

    /// Creates the queue if it does not exist (CreateQueue is idempotent) and returns it.
    #[boxed]
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

    /// Long-polls for up to `max` messages (at most 10), waiting up to `wait` seconds (at most
    /// 20). Received messages stay invisible to other consumers for `visibility` seconds.
    #[boxed]
    pub async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait: i32,
        visibility: i32,
    ) -> Result<Vec<ReceivedMessage>, AwsError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.clamp(0, 20))
            .visibility_timeout(visibility)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| ReceivedMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    /// Deletes messages by their receipt handles, ten per request; returns how many SQS
    /// refused (their messages come back later and are applied again, which changes nothing).
    #[boxed]
    pub async fn delete(&self, queue_url: &str, receipt_handles: &[String]) -> Result<usize, AwsError> {
        let mut failed = 0;
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .map_err(|e| {
                            AwsError::new(AwsErrorKind::Other, "DeleteMessageBatch", e.to_string()).caused_by(e)
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", e))?;
            failed += out.failed().len();
        }
        Ok(failed)
    }

    /// Sends one message (tests and tools use it to inject events).
    #[boxed]
    pub async fn send(&self, queue_url: &str, body: &str) -> Result<(), AwsError> {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify("SendMessage", e))?;
        Ok(())
    }

    /// Sends up to ten messages in one request (tools and benchmarks use it to inject events);
    /// returns how many SQS refused.
    #[boxed]
    pub async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<usize, AwsError> {
        let entries = bodies
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| AwsError::new(AwsErrorKind::Other, "SendMessageBatch", e.to_string()).caused_by(e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify("SendMessageBatch", e))?;
        Ok(out.failed().len())
    }

    /// The queue's approximate message counts: waiting to be received, and received but not
    /// yet deleted.
    #[boxed]
    pub async fn approximate_counts(&self, queue_url: &str) -> Result<(u64, u64), AwsError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?;
        let count = |name: QueueAttributeName| {
            out.attributes().and_then(|a| a.get(&name)).and_then(|c| c.parse().ok()).unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// The queue's URL and ARN, if it exists.
    #[boxed]
    pub async fn find(&self, name: &str) -> Result<Option<QueueInfo>, AwsError> {
        let url = match self.sqs.get_queue_url().queue_name(name).send().await {
            Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
            Err(e) => {
                let error = classify("GetQueueUrl", e);
                return if error.kind == AwsErrorKind::NotFound { Ok(None) } else { Err(error) };
            }
        };
        let arn = self.attribute(&url, QueueAttributeName::QueueArn).await?.unwrap_or_default();
        Ok(Some(QueueInfo { url, arn }))
    }

    /// The buckets (with their owners) the queue's policy lets S3 send from.
    #[boxed]
    pub async fn allowed_sources(&self, queue: &QueueInfo) -> Result<Vec<EventSource>, AwsError> {
        let policy = self.attribute(&queue.url, QueueAttributeName::Policy).await?;
        Ok(sources_in(&parse_policy(policy.as_deref())))
    }

    /// Sets the buckets S3 may send from, keeping any other statement of the policy.
    #[boxed]
    pub async fn set_allowed_sources(&self, queue: &QueueInfo, sources: &[EventSource]) -> Result<(), AwsError> {
        let current = self.attribute(&queue.url, QueueAttributeName::Policy).await?;
        let policy = with_sources(&parse_policy(current.as_deref()), &queue.arn, sources);
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

/// A bucket whose events the queue accepts, and the account that owns it: S3 names both in
/// `aws:SourceArn` and `aws:SourceAccount`, and requiring the account keeps out a bucket of the
/// same name that someone else created after the owner deleted theirs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventSource {
    /// `None` only for buckets allowed before owners were recorded; each goes once its
    /// configuration is validated again and its owner known.
    pub account: Option<String>,
    pub bucket: String,
}

fn parse_policy(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}))
}

fn is_ours(statement: &Value) -> bool {
    statement["Sid"].as_str().is_some_and(|sid| sid == STATEMENT_ID || sid.starts_with(&format!("{STATEMENT_ID}-")))
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// byos's statements: one per owning account (and one without, for buckets allowed before
/// owners were recorded).
fn sources_in(policy: &Value) -> Vec<EventSource> {
    let mut sources = Vec::new();
    for statement in policy["Statement"].as_array().into_iter().flatten().filter(|s| is_ours(s)) {
        let account = strings(&statement["Condition"]["StringEquals"]["aws:SourceAccount"]).into_iter().next();
        for arn in strings(&statement["Condition"]["ArnLike"]["aws:SourceArn"]) {
            if let Some(bucket) = arn.strip_prefix("arn:aws:s3:::") {
                sources.push(EventSource { account: account.clone(), bucket: bucket.to_owned() });
            }
        }
    }
    sources.sort();
    sources.dedup();
    sources
}

/// The policy with byos's statements allowing exactly `sources` (none: the statements go).
fn with_sources(policy: &Value, queue_arn: &str, sources: &[EventSource]) -> Value {
    let mut statements: Vec<Value> =
        policy["Statement"].as_array().map(|s| s.iter().filter(|s| !is_ours(s)).cloned().collect()).unwrap_or_default();
    let mut by_account: std::collections::BTreeMap<Option<&str>, Vec<String>> = std::collections::BTreeMap::new();
    for source in sources {
        by_account.entry(source.account.as_deref()).or_default().push(format!("arn:aws:s3:::{}", source.bucket));
    }
    for (account, mut arns) in by_account {
        arns.sort();
        arns.dedup();
        let mut statement = json!({
            "Sid": account.map_or_else(|| STATEMENT_ID.to_owned(), |a| format!("{STATEMENT_ID}-{a}")),
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": arns}},
        });
        if let Some(account) = account {
            statement["Condition"]["StringEquals"] = json!({"aws:SourceAccount": account});
        }
        statements.push(statement);
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(account: Option<&str>, bucket: &str) -> EventSource {
        EventSource { account: account.map(str::to_owned), bucket: bucket.to_owned() }
    }

    #[test]
    fn the_policy_statements_are_merged_and_removed() {
        let other = json!({"Version": "2012-10-17", "Statement": [{"Sid": "ops", "Effect": "Allow", "Principal": "*", "Action": "sqs:GetQueueAttributes", "Resource": "q"}]});
        let wanted = [
            source(Some("111111111111"), "b"),
            source(Some("111111111111"), "a"),
            source(Some("222222222222"), "c"),
            source(None, "legacy"),
            source(Some("111111111111"), "a"),
        ];
        let added = with_sources(&other, "arn:aws:sqs:eu-central-1:999999999999:q", &wanted);
        assert_eq!(
            sources_in(&added),
            [
                source(None, "legacy"),
                source(Some("111111111111"), "a"),
                source(Some("111111111111"), "b"),
                source(Some("222222222222"), "c"),
            ]
        );
        let statements = added["Statement"].as_array().cloned().unwrap_or_default();
        assert_eq!(statements.len(), 4, "the operator's, and one per account: {added}");
        // Each bucket is allowed only together with its owner's account.
        let ours = statements.iter().find(|s| s["Sid"] == "byos-s3-events-222222222222").cloned().unwrap_or_default();
        assert_eq!(ours["Condition"]["StringEquals"]["aws:SourceAccount"], "222222222222");
        assert_eq!(ours["Condition"]["ArnLike"]["aws:SourceArn"], json!(["arn:aws:s3:::c"]));
        let removed = with_sources(&added, "q", &[]);
        assert_eq!(removed["Statement"].as_array().map(Vec::len), Some(1), "the operator's statement stays");
        assert!(sources_in(&removed).is_empty());
        assert!(sources_in(&parse_policy(None)).is_empty());
        assert!(sources_in(&parse_policy(Some("not json"))).is_empty());
    }
}
