//! Delivery beside polling: notifications go out while polls still run, not after the last
//! one. A pass ([`pass`]) sends what is due to every instance that can be sent to; the
//! runner's `committed` signal starts the next pass as soon as a poll has written
//! notifications. `tick` runs passes until its polls have ended ([`beside_polls`]); the
//! daemon's worker (`daemon/worker.rs`) runs them until shutdown, also waking for retries.
//!
//! Passes start at most every [`PASS_GAP`]: each one begins with a synced commit (group
//! commit's other half) and reads the due queue heads, so a pass per poll commit cost a disk
//! sync per poll (1,346 syncs in the 10,000-instance tick). Waiting for the gap gathers the
//! commits of a few milliseconds into one pass.

use crate::outbox::deliver::{DeliverError, Delivery, DeliverySummary, Recipient, deliver_due};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The least time from one pass's start to the next one's: a notification waits at most this
/// much longer for its pass, and a burst of commits shares one sync.
pub const PASS_GAP: Duration = Duration::from_millis(20);

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
        let started = Instant::now();
        total.absorb(pass(delivery, recipients, pass_limit).await?);
        if last {
            total.pending = delivery.pending()?;
            return Ok(total);
        }
        committed.notified().await;
        tokio::time::sleep_until(started + PASS_GAP).await;
    }
}
