//! The daemon's delivery worker: beside the scheduler, it sends the outbox's due notifications
//! continuously (one `runner::delivery::pass` at a time, as `tick` does beside its polls),
//! then sleeps until whichever comes first:
//! a poll or the webhooks listener committed notifications (`Notify`, then a short wait so a
//! burst of commits shares one pass), the earliest retry of an instance it can send to
//! is due, or a periodic re-read of the state (so `ocpoll outbox retry`, run from another
//! process, takes effect without a signal).
//!
//! Recipients come from the current catalog at each pass, so a reload that fixes a callback
//! URL repairs delivery. Instances that cannot be sent to (invalid, removed, no callback) are
//! left out of the wake-up time; otherwise their due heads would wake the worker in a loop.

use super::catalog::Catalog;
use super::shutdown::Shutdown;
use crate::outbox::deliver::{DeliverError, Delivery, Recipient};
use crate::runner::delivery;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// How long one pass may run before the worker looks at the state afresh.
const PASS_LIMIT: Duration = Duration::from_secs(60);
/// The longest sleep: the state is re-read at least this often.
const RECHECK: Duration = Duration::from_secs(30);
/// The longest sleep in a fleet: notifications another node committed (or left behind when it
/// died) are not announced to this one, so it looks for them this often (an index walk).
const FLEET_RECHECK: Duration = Duration::from_secs(1);

pub struct Worker {
    pub delivery: Arc<Delivery>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Runs until `shutdown`; a pass in flight then gets until `grace` to finish. A send cut
    /// short stays pending in the outbox, unchanged, and goes out after the next start.
    pub async fn run(self, mut shutdown: Shutdown, grace: Duration) {
        loop {
            let started = Instant::now();
            let pass = self.pass();
            tokio::pin!(pass);
            let result = tokio::select! {
                result = &mut pass => result,
                _ = shutdown.wait() => {
                    if tokio::time::timeout(grace, pass).await.is_err() {
                        tracing::warn!("grace period over: abandoning deliveries in flight \
                                        (they stay in the outbox)");
                    }
                    // The 2xx of the pass cut short, not yet written: written now, or they
                    // would be sent again after the next start.
                    if let Err(error) = self.delivery.flush_acks() {
                        tracing::error!(%error, "cannot record delivered notifications");
                    }
                    return;
                }
            };
            let next = match result {
                Ok(()) => self.next_wake(),
                Err(error) => {
                    tracing::error!(%error, "delivery");
                    // A state that keeps failing must not spin the worker.
                    Instant::now() + Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.wait() => return,
            }
            // Commits of the next few milliseconds join this wake-up's pass (one sync for all):
            // a daemon receiving thousands of webhooks a second commits hundreds of times a
            // second, and a pass per commit would spin against the receipts' writer.
            tokio::select! {
                _ = tokio::time::sleep_until(started + delivery::PASS_GAP) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn pass(&self) -> Result<(), DeliverError> {
        let catalog = Arc::clone(&self.catalog.borrow());
        let summary = delivery::pass(&self.delivery, &*catalog, PASS_LIMIT).await?;
        // Counting what is left reads the whole outbox's index: only for the debug line.
        if (summary.delivered > 0 || summary.dead_lettered > 0)
            && tracing::enabled!(tracing::Level::DEBUG)
        {
            tracing::debug!(
                delivered = summary.delivered,
                dead_lettered = summary.dead_lettered,
                pending = self.delivery.pending()?,
                "delivery pass"
            );
        }
        Ok(())
    }

    /// The earliest retry among instances it can send to, capped at [`RECHECK`].
    fn next_wake(&self) -> Instant {
        let recheck = if self.delivery.in_fleet() {
            FLEET_RECHECK
        } else {
            RECHECK
        };
        let cap = Instant::now() + recheck;
        let heads = match self.delivery.store.lock() {
            Ok(store) => store.outbox_head_attempts(),
            Err(_) => return cap,
        };
        let heads = match heads {
            Ok(heads) => heads,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                return cap;
            }
        };
        let catalog = Arc::clone(&self.catalog.borrow());
        let now = Utc::now();
        heads
            .into_iter()
            .filter(|(instance, _)| matches!(catalog.recipient(instance), Recipient::Ready(_)))
            .map(|(_, at)| Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .map_or(cap, |earliest| earliest.min(cap))
    }
}
