//! Leases held by work: taken in the store, renewed in the background while the work runs, and
//! lost when a renewal finds another holder or cannot reach the database before the lease would
//! expire. Work that loses its lease stops ([`Lease::hold`]), so that two holders never do one
//! piece of work at once: the one that took the lease over may already be doing it.
//!
//! Expiry is by the database's clock ([`LeaseStore::try_lease`]); a holder measures its own
//! side with the monotonic clock from before each request, so it always believes its lease ends
//! earlier than the database does, never later.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use byos_domain::ErrorChain;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{LeaseStore, Result};

/// The work's lease was lost: another holder has it, or it expired while the database could not
/// be reached. The work was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lost the lease {name}: it expired or another holder took it")]
pub struct LeaseLost {
    pub name: String,
}

/// A lease taken for one piece of work, renewed every third of its time to live while held.
/// Each acquisition has a holder of its own (the owner's name and a fresh id), so that two tasks
/// of one replica exclude each other as two replicas do. Dropping it stops the renewals; the
/// lease then expires by itself, and [`Lease::release`] gives it up at once.
pub struct Lease {
    name: String,
    holder: String,
    store: Arc<dyn LeaseStore>,
    lost: watch::Receiver<bool>,
    renewals: Arc<AtomicU64>,
    renewal: JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("name", &self.name).field("holder", &self.holder).finish_non_exhaustive()
    }
}

impl Lease {
    /// Takes the lease `name` for `owner` (a replica's name) for `ttl`, or `None` when someone
    /// else holds it.
    pub async fn take(store: &Arc<dyn LeaseStore>, name: &str, owner: &str, ttl: Duration) -> Result<Option<Lease>> {
        let holder = format!("{owner}:{}", Uuid::new_v4().simple());
        let asked = Instant::now();
        if !store.try_lease(name, &holder, ttl).await? {
            return Ok(None);
        }
        let (lost_tx, lost) = watch::channel(false);
        let renewals = Arc::new(AtomicU64::new(0));
        let renewal = tokio::spawn(renew(
            Renewal { store: store.clone(), name: name.to_owned(), holder: holder.clone(), ttl },
            asked,
            renewals.clone(),
            lost_tx,
        ));
        Ok(Some(Lease { name: name.to_owned(), holder, store: store.clone(), lost, renewals, renewal }))
    }

    /// Takes the lease, waiting up to `patience` for its holder to give it up.
    pub async fn wait(
        store: &Arc<dyn LeaseStore>,
        name: &str,
        owner: &str,
        ttl: Duration,
        patience: Duration,
    ) -> Result<Option<Lease>> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(lease) = Lease::take(store, name, owner, ttl).await? {
                return Ok(Some(lease));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who holds it in the store: the owner's name and this acquisition's id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How many times it was renewed.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || self.renewal.is_finished()
    }

    /// Resolves once the lease is lost.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error means the renewals ended without saying so (a panic): the lease is no
        // longer kept, which is as good as lost.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Runs `work` while the lease is held. If the lease is lost first, `work` is dropped at its
    /// next await point and [`LeaseLost`] is returned.
    pub async fn hold<F: Future>(&self, work: F) -> Result<F::Output, LeaseLost> {
        // Work under a lease is large (AWS calls, nested leases): on the heap, not the stack.
        let work = Box::pin(work);
        tokio::select! {
            biased;
            output = work => Ok(output),
            () = self.lost() => Err(LeaseLost { name: self.name.clone() }),
        }
    }

    /// Gives the lease up, so that others need not wait for it to expire.
    pub async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = self.name, error = %ErrorChain(&e), "cannot release a lease; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

struct Renewal {
    store: Arc<dyn LeaseStore>,
    name: String,
    holder: String,
    ttl: Duration,
}

/// Renews the lease every third of its time to live until it is lost; then says so.
async fn renew(lease: Renewal, taken: Instant, renewals: Arc<AtomicU64>, lost: watch::Sender<bool>) {
    let Renewal { store, name, holder, ttl } = lease;
    let every = ttl / 3;
    // The lease is ours until then at least, by the database's clock.
    let mut valid_until = taken + ttl;
    loop {
        tokio::time::sleep(every).await;
        let asked = Instant::now();
        match store.try_lease(&name, &holder, ttl).await {
            Ok(true) => {
                valid_until = asked + ttl;
                renewals.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {
                tracing::warn!(lease = name, "lost a lease to another holder; stopping its work");
                break;
            }
            // The next attempt would come too late: stop the work while the lease still holds.
            Err(e) if Instant::now() + every >= valid_until => {
                tracing::warn!(lease = name, error = %ErrorChain(&e), "cannot renew a lease before it expires; stopping its work");
                break;
            }
            Err(e) => tracing::warn!(lease = name, error = %ErrorChain(&e), "cannot renew a lease; trying again"),
        }
    }
    let _ = lost.send(true);
}
