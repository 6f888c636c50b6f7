//! The bucket's event notifications: the platform's three rules on the configuration's prefix,
//! to the region's queue, merged into the customer's configuration without dropping anything;
//! and their removal when the configuration is deleted.

use byos_aws::{AwsError, BucketAccess, CredentialSecret, EventSource, QueueInfo};
use byos_catalog::{Configuration, Lease, LeaseLost, StoreError};
use byos_domain::notifications::{self, NotificationConflict, NotificationRule};
use byos_domain::{ErrorChain, ErrorCode, Problem};
use uuid::Uuid;

use std::time::Duration;

use crate::problems::{self, problem};
use crate::{Inner, LifecycleError};

/// Why the platform's rules or the region's queue could not be put in place. Its text is the
/// validation report's detail; [`ProvisionError::problem`] is what the user is told.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// Another validation holds the lease on the same bucket's notifications or the region's
    /// queue policy, and did not let go in time.
    #[error("{what} being changed by another validation: {source}")]
    Busy { what: &'static str, source: LifecycleError },
    /// The lease was lost while the work ran: it stopped where it was.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// AWS refused or failed; `problem` is the catalogue entry for it in this call's place.
    #[error("{source}")]
    Aws { source: AwsError, problem: Problem },
    /// The bucket's notifications collide with the platform's rules.
    #[error("{0}")]
    Conflict(NotificationConflict),
    /// The store failed; the log has the error under `error_id`.
    #[error("the store failed (error {error_id})")]
    Store { error_id: String, source: StoreError },
}

impl ProvisionError {
    /// What the user of `configuration` is told.
    pub(crate) fn problem(&self, configuration: Uuid) -> Problem {
        match self {
            ProvisionError::Busy { .. } | ProvisionError::LeaseLost(_) => {
                Problem::new(ErrorCode::ValidationRunning, &[("id", &configuration.to_string())])
            }
            ProvisionError::Aws { problem, .. } => problem.clone(),
            ProvisionError::Conflict(conflict) => conflict.problem(),
            ProvisionError::Store { error_id, .. } => Problem::internal(error_id),
        }
    }

    /// A store failure, logged with the id the user is shown.
    fn store(source: StoreError, doing: &str) -> ProvisionError {
        let error_id = Uuid::new_v4().simple().to_string();
        tracing::error!(error_id, error = %ErrorChain(&source), "{doing}");
        ProvisionError::Store { error_id, source }
    }
}

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

/// The region's queue, with its policy allowing exactly the buckets of the region's
/// configurations, each from its owner's account. The allowed set comes from the store, not
/// from the policy read back, so replicas writing it in turn agree; they take turns under the
/// lease `queue:{region}`, and each write is read back until SQS shows it.
async fn queue(
    inner: &Inner,
    configuration: &Configuration,
    source: Option<EventSource>,
) -> Result<QueueInfo, ProvisionError> {
    let region = configuration.spec.region.as_str();
    let lease = inner
        .wait_lease(&format!("queue:{region}"), BUCKET_PATIENCE)
        .await
        .map_err(|source| ProvisionError::Busy { what: "the region's queue policy is", source })?;
    let result = lease.hold(queue_holding_lease(inner, configuration, source)).await;
    lease.release().await;
    result?
}

async fn queue_holding_lease(
    inner: &Inner,
    configuration: &Configuration,
    source: Option<EventSource>,
) -> Result<QueueInfo, ProvisionError> {
    let (bucket, region) = (configuration.spec.bucket.as_str(), configuration.spec.region.as_str());
    let failed = |source: AwsError| ProvisionError::Aws { problem: problem(&source, bucket, region), source };
    let queues = inner.aws.queues(&configuration.spec.region);
    let known = inner.queues.lock().await.get(region).cloned();
    let info = match known {
        Some(info) => info,
        None => {
            let name = format!("{}-{region}", inner.settings.queue_name_prefix);
            let info = queues.ensure(&name).await.map_err(failed)?;
            inner.queues.lock().await.insert(region.to_owned(), info.clone());
            info
        }
    };
    let current = match queues.allowed_sources(&info).await {
        Ok(current) => current,
        Err(e) => {
            // The queue may have been deleted behind the platform's back: find it anew next time.
            inner.queues.lock().await.remove(region);
            return Err(failed(e));
        }
    };
    let wanted = wanted_sources(inner, configuration, source, &current)
        .await
        .map_err(|e| ProvisionError::store(e, "reading the configurations of the region"))?;
    if current != wanted {
        queues.set_allowed_sources(&info, &wanted).await.map_err(failed)?;
        verify_sources(&queues, &info, &wanted).await;
    }
    Ok(info)
}

/// What the region's queue policy should allow: every configuration of the region whose
/// bucket's owner is known, from that owner; `changed` (validated or deleted now) as given,
/// or left out when `None`. A configuration whose owner is not known yet (validated before
/// owners were recorded) keeps what the policy allowed its bucket until it is validated again.
async fn wanted_sources(
    inner: &Inner,
    changed: &Configuration,
    source: Option<EventSource>,
    current: &[EventSource],
) -> Result<Vec<EventSource>, byos_catalog::StoreError> {
    let region = changed.spec.region.as_str();
    let mut wanted: Vec<EventSource> = source.into_iter().collect();
    for other in inner.store.configurations.list_configurations().await? {
        if other.id == changed.id || other.spec.region != region {
            continue;
        }
        let bucket = other.spec.bucket.as_str();
        match &other.bucket_account {
            Some(account) => wanted.push(EventSource { account: Some(account.clone()), bucket: bucket.to_owned() }),
            None => wanted.extend(current.iter().filter(|s| s.bucket == bucket).cloned()),
        }
    }
    wanted.sort();
    wanted.dedup();
    Ok(wanted)
}

/// SQS shows a policy change after a delay (up to a minute, AWS says): reads the policy back
/// until it shows `wanted`. A write that does not show is logged; the next validation of any
/// configuration in the region writes it again.
async fn verify_sources(queues: &byos_aws::Queues, info: &QueueInfo, wanted: &[EventSource]) {
    let mut delay = Duration::from_millis(250);
    for _ in 0..8 {
        match queues.allowed_sources(info).await {
            Ok(shown) if shown == wanted => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(queue = info.url, error = %ErrorChain(&e), "cannot read the queue policy back"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(8));
    }
    tracing::warn!(queue = info.url, "the queue policy written does not show yet; the next validation writes it again");
}

/// How long provisioning waits for another configuration's read-merge-write on the same bucket.
const BUCKET_PATIENCE: Duration = Duration::from_secs(60);

/// The lease that serialises read-merge-write of one bucket's notifications, across tasks and
/// replicas: two configurations on one bucket must not write back each other's stale reads.
async fn bucket_lease(inner: &Inner, bucket: &str) -> Result<Lease, LifecycleError> {
    inner.wait_lease(&format!("bucket:{bucket}"), BUCKET_PATIENCE).await
}

/// Puts the platform's rules in place; returns what was done, or why it cannot be.
pub(crate) async fn ensure(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
    account: &str,
) -> Result<String, ProvisionError> {
    let bucket = configuration.spec.bucket.as_str();
    let lease = bucket_lease(inner, bucket)
        .await
        .map_err(|source| ProvisionError::Busy { what: "the bucket's notifications are", source })?;
    let result = lease.hold(ensure_holding_lease(inner, configuration, access, account)).await;
    lease.release().await;
    result?
}

async fn ensure_holding_lease(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
    account: &str,
) -> Result<String, ProvisionError> {
    let spec = &configuration.spec;
    let (bucket, region) = (spec.bucket.as_str(), spec.region.as_str());
    let existing = &access
        .notifications(bucket)
        .await
        .map_err(|source| ProvisionError::Aws { problem: problem(&source, bucket, region), source })?;
    let source = EventSource { account: Some(account.to_owned()), bucket: bucket.to_owned() };
    let queue = queue(inner, configuration, Some(source)).await?;
    let (others, older) = neighbours(inner, configuration)
        .await
        .map_err(|e| ProvisionError::store(e, "reading the configurations of the bucket"))?;
    let suffix = older.then(|| configuration.id.simple().to_string()[..8].to_owned());
    let desired = notifications::our_rules(&queue.arn, spec.key_prefix.as_ref(), suffix.as_deref());
    let keep = |rule: &NotificationRule| others.contains(&rule.prefix);
    let plan = notifications::plan(existing, &desired, keep).map_err(ProvisionError::Conflict)?;
    if plan.changed
        && let Err(source) = access.put_notifications(bucket, &plan.merged).await
    {
        return Err(ProvisionError::Aws { problem: problems::notifications_refused(&source, bucket, region), source });
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
    let bucket = spec.bucket.as_str();
    let access = inner.aws.bucket_access(secret, &spec.region).await;
    let prefix = spec.key_prefix.as_ref().map(|p| p.as_str().to_owned());
    let lease = match bucket_lease(inner, bucket).await {
        Ok(lease) => lease,
        Err(e) => {
            tracing::warn!(configuration = %configuration.id, error = %ErrorChain(&e), "cannot clean the bucket up");
            return;
        }
    };
    if let Err(lost) = lease.hold(remove_holding_lease(inner, configuration, &access, prefix)).await {
        tracing::warn!(configuration = %configuration.id, error = %lost, "cannot clean the bucket up");
    }
    lease.release().await;
}

async fn remove_holding_lease(
    inner: &Inner,
    configuration: &Configuration,
    access: &BucketAccess,
    prefix: Option<String>,
) {
    let bucket = configuration.spec.bucket.as_str();
    let others = match neighbours(inner, configuration).await {
        Ok((others, _)) => others,
        Err(e) => {
            tracing::warn!(configuration = %configuration.id, error = %ErrorChain(&e), "cannot clean the bucket up");
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
                tracing::warn!(configuration = %configuration.id, error = %ErrorChain(&e), "cannot remove the notification rules");
            }
        }
        Err(e) => {
            tracing::warn!(configuration = %configuration.id, error = %ErrorChain(&e), "cannot read the notification rules");
        }
    }
    if let Err(e) = queue(inner, configuration, None).await {
        tracing::warn!(configuration = %configuration.id, error = %ErrorChain(&e), "cannot update the queue policy");
    }
}
