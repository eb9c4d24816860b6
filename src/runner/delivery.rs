//! Delivery beside polling: notifications go out while polls still run, not after the last
//! one. A pass ([`pass`]) sends what is due to every instance that can be sent to; the
//! runner's `committed` signal starts the next pass as soon as a poll has written
//! notifications. `tick` runs passes until its polls have ended ([`beside_polls`]); the
//! daemon's worker (`daemon/worker.rs`) runs them until shutdown, also waking for retries.

use crate::outbox::deliver::{DeliverError, Delivery, DeliverySummary, Recipient, deliver_due};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where each instance's notifications go now (`None`: not this run's business, e.g. left
/// out by `tick --instance`).
pub trait Recipients: Send + Sync {
    fn recipient(&self, instance: &str) -> Option<Recipient>;
}

/// One delivery pass of at most `limit`: what is due, to every instance that can be sent to.
pub async fn pass(
    delivery: &Arc<Delivery>,
    recipients: &impl Recipients,
    limit: Duration,
) -> Result<DeliverySummary, DeliverError> {
    deliver_due(
        delivery,
        |name| recipients.recipient(name),
        Instant::now() + limit,
    )
    .await
}

/// Whether the polls that delivery runs beside have all ended.
#[derive(Default)]
pub struct PollsEnded(AtomicBool);

impl PollsEnded {
    /// Marks the polls ended and wakes delivery for its last pass.
    pub fn set(&self, committed: &Notify) {
        self.0.store(true, Ordering::SeqCst);
        committed.notify_one();
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Delivery passes while polls run, each woken by a poll's commit, then one last pass after
/// the last poll; each pass gets up to `pass_limit` (tick's `--deliver-timeout`).
pub async fn beside_polls(
    delivery: &Arc<Delivery>,
    recipients: &impl Recipients,
    committed: &Notify,
    ended: &PollsEnded,
    pass_limit: Duration,
) -> Result<DeliverySummary, DeliverError> {
    let mut total = DeliverySummary::default();
    loop {
        let last = ended.get();
        total.absorb(pass(delivery, recipients, pass_limit).await?);
        if last {
            return Ok(total);
        }
        committed.notified().await;
    }
}
