//! The bucket's event notifications: the platform's three rules on the configuration's prefix,
//! to the region's queue, merged into the customer's configuration without dropping anything;
//! and their removal when the configuration is deleted.

use byos_aws::{BucketAccess, CredentialSecret, QueueInfo};
use byos_catalog::Configuration;
use byos_domain::notifications::{self, NotificationRule};
use byos_domain::{ErrorCode, Problem};

use std::time::Duration;

use crate::problems::{self, problem};
use crate::worker::Lease;
use crate::{Inner, LifecycleError};

/// The other configurations on the same bucket: their prefixes, and whether one of them is
/// older than `configuration` (then its rules have the plain `gds:` ids and ours a suffix).
async fn neighbours(
    inner: &Inner,
    configuration: &Configuration,
) -> Result<(Vec<Option<String>>, bool), byos_catalog::StoreError> {
    let all = inner.store.configurations.list_configurations().await?;
    let others: Vec<&Configuration> =
        all.iter().filter(|c| c.spec.bucket == configuration.spec.bucket && c.id != configuration.id).collect();
    let older = others.iter().any(|c| (c.created_at, c.id) < (configuration.created_at, configuration.id));
    Ok((others.iter().map(|c| c.spec.key_prefix.as_ref().map(|p| p.as_str().to_owned())).collect(), older))
}

/// The region's queue, with `bucket` allowed in its policy. Policy updates are serialised in
/// this process; another replica's concurrent update may still win, in which case the next
/// validation puts the bucket back.
async fn queue(inner: &Inner, region: &str, bucket: &str) -> Result<QueueInfo, (String, Problem)> {
    let failed = |e: byos_aws::AwsError| (e.to_string(), problem(&e, bucket, region));
    let queues = inner.aws.queues(region);
    let mut known = inner.queues.lock().await;
    let info = match known.get(region) {
        Some(info) => info.clone(),
        None => {
            let name = format!("{}-{region}", inner.settings.queue_name_prefix);
            let info = queues.ensure(&name).await.map_err(failed)?;
            known.insert(region.to_owned(), info.clone());
            info
        }
    };
    let mut allowed = match queues.allowed_buckets(&info).await {
        Ok(allowed) => allowed,
        Err(e) => {
            // The queue may have been deleted behind the platform's back: find it anew next time.
            known.remove(region);
            return Err(failed(e));
        }
    };
    if !allowed.iter().any(|b| b == bucket) {
        // SQS shows attribute changes with a delay, so a successful write is trusted; the next
        // validation checks it again.
        allowed.push(bucket.to_owned());
        queues.set_allowed_buckets(&info, &allowed).await.map_err(failed)?;
    }
    Ok(info)
}

/// How long provisioning waits for another configuration's read-merge-write on the same bucket.
const BUCKET_PATIENCE: Duration = Duration::from_secs(60);

/// The lease that serialises read-merge-write of one bucket's notifications, across tasks and
/// replicas: two configurations on one bucket must not write back each other's stale reads.
async fn bucket_lease(inner: &Inner, bucket: &str) -> Result<Lease, LifecycleError> {
    Lease::wait(inner, &format!("bucket:{bucket}"), BUCKET_PATIENCE).await
}

/// Puts the platform's rules in place; returns what was done, or why it cannot be.
pub(crate) async fn ensure(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
) -> Result<String, (String, Problem)> {
    let bucket = configuration.spec.bucket.as_str();
    let lease = bucket_lease(inner, bucket).await.map_err(|e| {
        let message = format!("the bucket's notifications are being changed by another validation: {e}");
        (message, Problem::new(ErrorCode::ValidationRunning, &[("id", &configuration.id.to_string())]))
    })?;
    let result = ensure_holding_lease(inner, configuration, access).await;
    lease.release(inner).await;
    result
}

async fn ensure_holding_lease(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
) -> Result<String, (String, Problem)> {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let existing = &access.notifications(bucket).await.map_err(|e| (e.to_string(), problem(&e, bucket, region)))?;
    let queue = queue(inner, region, bucket).await?;
    let (others, older) = neighbours(inner, configuration).await.map_err(|e| {
        let error_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id, error = %e, "reading the configurations of the bucket");
        (format!("the store failed (error {error_id})"), Problem::internal(&error_id))
    })?;
    let suffix = older.then(|| configuration.id.simple().to_string()[..8].to_owned());
    let desired = notifications::our_rules(&queue.arn, spec.key_prefix.as_ref(), suffix.as_deref());
    let keep = |rule: &NotificationRule| others.contains(&rule.prefix);
    let plan = match notifications::plan(existing, &desired, keep) {
        Ok(plan) => plan,
        Err(conflict) => return Err((conflict.to_string(), conflict.problem())),
    };
    if plan.changed
        && let Err(e) = access.put_notifications(bucket, &plan.merged).await
    {
        return Err((e.to_string(), problems::notifications_refused(&e, bucket, region)));
    }
    let ids = desired.iter().filter_map(|r| r.id.as_deref()).collect::<Vec<_>>().join(", ");
    let mut detail = format!("{ids} send to {}", queue.arn);
    if !plan.adopted.is_empty() {
        detail.push_str(&format!("; adopted {} earlier rules of the platform", plan.adopted.len()));
    }
    if !plan.changed {
        detail.push_str("; already in place");
    }
    Ok(detail)
}

/// Removes this configuration's rules (and the bucket from the queue policy when no other
/// configuration uses it). Failures are logged: the delete goes on regardless.
pub(crate) async fn remove(inner: &Inner, configuration: &Configuration, secret: &CredentialSecret) {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let access = inner.aws.bucket_access(secret, region).await;
    let prefix = spec.key_prefix.as_ref().map(|p| p.as_str().to_owned());
    let lease = match bucket_lease(inner, bucket).await {
        Ok(lease) => lease,
        Err(e) => {
            tracing::warn!(configuration = %configuration.id, error = %e, "cannot clean the bucket up");
            return;
        }
    };
    remove_holding_lease(inner, configuration, &access, prefix).await;
    lease.release(inner).await;
}

async fn remove_holding_lease(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
    prefix: Option<String>,
) {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let others = match neighbours(inner, configuration).await {
        Ok((others, _)) => others,
        Err(e) => {
            tracing::warn!(configuration = %configuration.id, error = %e, "cannot clean the bucket up");
            return;
        }
    };
    match access.notifications(bucket).await {
        Ok(existing) => {
            let mine =
                |r: &NotificationRule| notifications::is_ours(r) && r.prefix == prefix && !others.contains(&r.prefix);
            let left = notifications::without(&existing, mine);
            if left != existing
                && let Err(e) = access.put_notifications(bucket, &left).await
            {
                tracing::warn!(configuration = %configuration.id, error = %e, "cannot remove the notification rules");
            }
        }
        Err(e) => tracing::warn!(configuration = %configuration.id, error = %e, "cannot read the notification rules"),
    }
    if others.is_empty() {
        let _serialised = inner.queues.lock().await;
        let queues = inner.aws.queues(region);
        let name = format!("{}-{region}", inner.settings.queue_name_prefix);
        let result = async {
            let info = queues.ensure(&name).await?;
            let allowed: Vec<String> =
                queues.allowed_buckets(&info).await?.into_iter().filter(|b| b != bucket).collect();
            queues.set_allowed_buckets(&info, &allowed).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(configuration = %configuration.id, error = %e, "cannot update the queue policy");
        }
    }
}
