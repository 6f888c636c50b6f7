//! The background worker: waits for work (a wake-up or its tick; cancellable), then validates
//! the due configurations with bounded concurrency (each one not cancelled once started), each
//! under its lease.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use byos_domain::{ConfigurationStatus, ErrorChain};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{Inner, Lifecycle, LifecycleError, LifecycleSettings};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Transition {
    from: &'static str,
    to: &'static str,
}

/// Validations by outcome, and status changes by their two ends.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    validations: Family<Outcome, Counter>,
    transitions: Family<Transition, Counter>,
}

impl Metrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "configuration_validations",
            "Storage configuration validations, by outcome",
            self.validations.clone(),
        );
        registry.register(
            "configuration_status_changes",
            "Storage configuration status changes, by old and new status",
            self.transitions.clone(),
        );
    }

    pub(crate) fn observe(&self, from: ConfigurationStatus, to: ConfigurationStatus) {
        self.validations.get_or_create(&Outcome { status: to.as_str() }).inc();
        if from != to {
            self.transitions.get_or_create(&Transition { from: from.as_str(), to: to.as_str() }).inc();
        }
    }
}

/// When to validate again: the interval when ready; after a failure, the retry base doubled for
/// each failure in a row (up to the interval), with jitter so that many configurations that
/// failed together do not retry together.
pub(crate) fn next_delay(settings: &LifecycleSettings, failures: u32) -> Duration {
    if failures == 0 {
        return settings.reverify_interval;
    }
    let doubled = settings.retry_base.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let capped = doubled.min(settings.reverify_interval);
    capped.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

pub(crate) async fn run(inner: Arc<Inner>, shutdown: impl std::future::Future<Output = ()>) {
    let lifecycle = Lifecycle { inner: inner.clone() };
    let permits = Arc::new(Semaphore::new(inner.settings.concurrency.max(1)));
    // Each task yields the id it validated, so that the id can be picked up again afterwards.
    let mut running: JoinSet<Uuid> = JoinSet::new();
    let mut in_flight: HashSet<Uuid> = HashSet::new();
    tokio::pin!(shutdown);
    tracing::info!(replica = inner.settings.replica, "storage configuration worker started");
    // Look for due work at start, on a wake-up and on every tick; a finished task only frees
    // its id (looking again then would spin on work another replica holds).
    let mut look = true;
    let mut ticker = tokio::time::interval(inner.settings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if look {
            let due = match inner.store.configurations.due_configurations(OffsetDateTime::now_utc(), 256).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "cannot read the due configurations");
                    Vec::new()
                }
            };
            for id in due {
                if !in_flight.insert(id) {
                    continue;
                }
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let lifecycle = lifecycle.clone();
                running.spawn(async move {
                    let _permit = permit;
                    match lifecycle.validate_if_due(id).await {
                        Ok(()) | Err(LifecycleError::Busy | LifecycleError::NotFound) => {}
                        Err(e) => {
                            tracing::warn!(configuration = %id, error = %ErrorChain(&e), "validation did not run");
                        }
                    }
                    id
                });
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = inner.wake.notified() => look = true,
            _ = ticker.tick() => look = true,
            Some(done) = running.join_next(), if !running.is_empty() => {
                finished(&mut in_flight, done);
                look = false;
            }
        }
    }
    tracing::info!(running = running.len(), "storage configuration worker stopping; letting validations finish");
    while running.join_next().await.is_some() {}
}

fn finished(in_flight: &mut HashSet<Uuid>, done: Result<Uuid, tokio::task::JoinError>) {
    match done {
        Ok(id) => {
            in_flight.remove(&id);
        }
        // A panicked task's id cannot be known: start afresh; the lease keeps work single.
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "a validation task failed");
            in_flight.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let settings = LifecycleSettings {
            reverify_interval: Duration::from_secs(600),
            retry_base: Duration::from_secs(10),
            ..LifecycleSettings::default()
        };
        assert_eq!(next_delay(&settings, 0), Duration::from_secs(600));
        for (failures, full) in [(1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (40, 600)] {
            let delay = next_delay(&settings, failures);
            let full = Duration::from_secs(full);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?} not in [{:?}, {full:?}]", full / 2);
        }
    }
}
