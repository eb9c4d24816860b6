//! The daemon's scheduler: when each resource is polled. How many polls run at once, and the
//! polls themselves, are the runner's (`crate::runner`), the same one `tick` drives.
//!
//! A target the scheduler takes on (at start, or added by a reload) is first polled when its
//! state says it is due (`next_due_at`, the time `tick` goes by too), so a restart does not
//! poll every resource at once: one whose next poll is ahead waits for it; one that is overdue
//! or was never polled is due now. Either way a random jitter of up to `[poll]
//! jitter_seconds` is added, which spreads the overdue ones of a restart over that window.
//! After that, a target is polled again `refresh_interval` after its previous poll *started*,
//! plus the same jitter, so a thousand instances loaded together drift apart. A target is
//! never polled twice at once: its next poll is scheduled only when the previous one has
//! finished, so an overrunning poll delays its next run instead of overlapping it. The loop
//! sleeps on one timer set to the earliest due time; a reload, a finished poll or the shutdown
//! signal wakes it earlier. No fixed tick, no busy loop.
//!
//! Watermarks are never cached here: each `poll::run` reads them from the state, so a
//! `state reset` made while the daemon runs takes effect at the next poll.

use super::catalog::Catalog;
use super::shutdown::Shutdown;
use super::systemd::Notifier;
use crate::config::PollConfig;
use crate::fleet::Skipped;
use crate::metrics::{Metrics, PollCounts};
use crate::poll::{self, PollReport, PollTarget};
use crate::runner::{Finished, Panicked, PollRunner};
use crate::state::{PollResult, ResourceKey, ResourceState};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// One polled target and when it is next due.
struct Slot {
    target: PollTarget,
    next_due: Instant,
    last_started: Option<Instant>,
}

pub struct Scheduler {
    /// Runs the polls: limits, context, delivery's wake-up.
    runner: PollRunner,
    slots: HashMap<ResourceKey, Slot>,
    jitter: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl Scheduler {
    pub fn new(runner: PollRunner, config: &PollConfig) -> Self {
        Scheduler {
            runner,
            slots: HashMap::new(),
            jitter: Duration::from_secs(config.jitter_seconds),
            metrics: None,
        }
    }

    /// Counts polls, their records, events and provider statuses in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until `shutdown`, then lets the polls in flight finish within `grace` and abandons
    /// the rest (uncommitted, so they simply run again next time).
    pub async fn run(
        mut self,
        mut catalog: watch::Receiver<Arc<Catalog>>,
        mut shutdown: Shutdown,
        grace: Duration,
        notifier: Arc<Notifier>,
    ) {
        let current = Arc::clone(&catalog.borrow_and_update());
        self.apply(&current);
        // The first pet comes one period after the start, never before READY=1 (which the
        // daemon sends once this task is spawned).
        let mut watchdog = super::systemd::watchdog_interval()
            .map(|period| tokio::time::interval_at(Instant::now() + period, period));
        loop {
            let next_due = self.earliest_due();
            tokio::select! {
                _ = shutdown.wait() => break,
                changed = catalog.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let current = Arc::clone(&catalog.borrow_and_update());
                    self.apply(&current);
                }
                Some(done) = self.runner.next_finished() => self.finished(done),
                _ = sleep_until(next_due) => self.start_due(),
                // Petted from this loop, not a task of its own, so a wedged scheduler is
                // restarted by systemd rather than kept alive by a healthy timer.
                _ = tick(&mut watchdog) => notifier.watchdog(),
            }
        }
        for done in self.runner.drain(grace).await {
            self.finished(done);
        }
    }

    /// Makes the slots match the catalog: new targets are due when their state says
    /// ([`first_wait`]), removed ones go (a poll in flight finishes and is forgotten), kept
    /// ones take the new instance at their next poll.
    fn apply(&mut self, catalog: &Catalog) {
        if let Some(fleet) = self.runner.fleet() {
            fleet.refresh_versions(catalog.files());
        }
        let now = Instant::now();
        let mut wanted: HashMap<ResourceKey, PollTarget> = HashMap::new();
        for instance in catalog.instances().filter(|instance| instance.is_polled()) {
            for target in poll::targets(instance) {
                wanted.insert(target.key.clone(), target);
            }
        }
        self.slots.retain(|key, _| wanted.contains_key(key));
        let saved = if wanted.keys().any(|key| !self.slots.contains_key(key)) {
            self.saved_states()
        } else {
            HashMap::new()
        };
        let wall_now = Utc::now();
        let (mut waiting, mut overdue) = (0usize, 0usize);
        for (key, target) in wanted {
            match self.slots.get_mut(&key) {
                Some(slot) => {
                    // A shorter interval should not wait out the old, longer one (only then:
                    // a provider's long Retry-After stays honoured across reloads).
                    if let Some(started) = slot.last_started
                        && target.instance.poll_interval() < slot.target.instance.poll_interval()
                    {
                        slot.next_due =
                            slot.next_due.min(started + target.instance.poll_interval());
                    }
                    slot.target = target;
                }
                None => {
                    let wait =
                        first_wait(saved.get(&key), target.instance.poll_interval(), wall_now);
                    if wait.is_zero() {
                        overdue += 1;
                    } else {
                        waiting += 1;
                    }
                    self.slots.insert(
                        key,
                        Slot {
                            target,
                            next_due: now + wait + random_jitter(self.jitter),
                            last_started: None,
                        },
                    );
                }
            }
        }
        tracing::info!(
            instances = catalog.len(),
            resources = self.slots.len(),
            "instances loaded"
        );
        if waiting + overdue > 0 {
            tracing::info!(
                due_now = overdue,
                waiting,
                jitter_seconds = self.jitter.as_secs(),
                "first polls scheduled from the state: those due now spread over the jitter, \
                 the others at their next due time"
            );
        }
    }

    /// What the state remembers of every resource (one query, not one per target: a start
    /// takes on every target at once). Empty when the state cannot be read; the targets are
    /// then due now, as before the state knew them.
    fn saved_states(&self) -> HashMap<ResourceKey, ResourceState> {
        let rows = match self.runner.store().lock() {
            Ok(store) => store.statuses(),
            Err(_) => return HashMap::new(),
        };
        match rows {
            Ok(rows) => rows.into_iter().map(|row| (row.key, row.state)).collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the next due times; polling now");
                HashMap::new()
            }
        }
    }

    fn earliest_due(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|(key, _)| !self.runner.is_busy(key))
            .map(|(_, slot)| slot.next_due)
            .min()
    }

    /// Hands every idle target that is due to the runner, which starts it when its limits
    /// allow (a full host never holds back polls of other hosts).
    fn start_due(&mut self) {
        let now = Instant::now();
        let due: Vec<ResourceKey> = self
            .slots
            .iter()
            .filter(|(key, slot)| slot.next_due <= now && !self.runner.is_busy(key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            slot.last_started = Some(now);
            self.runner.start(slot.target.clone(), None);
        }
    }

    fn finished(&mut self, done: Result<Finished, Panicked>) {
        let finished = match done {
            Ok(finished) => finished,
            Err(Panicked { target, error, .. }) => {
                let key = target.key;
                // A poll task panicked: its target is free again and runs at its next due time.
                tracing::error!(instance = %key.instance, resource = %key.resource,
                    %error, "a poll stopped unexpectedly");
                self.reschedule(&key, Instant::now());
                return;
            }
        };
        if let Some(skipped) = &finished.report.skipped {
            self.reschedule_skipped(&finished.target.key, skipped);
            return;
        }
        if let Some(metrics) = &self.metrics {
            let counts = poll_counts(&finished.report);
            metrics.poll_finished(&finished.target.key, &counts, finished.elapsed);
        }
        self.reschedule(&finished.target.key, finished.started);
    }

    /// The next poll: an interval after this one started (or later, when the provider asked
    /// for a longer pause: `poll::run` saved that in the state), never before now.
    fn reschedule(&mut self, key: &ResourceKey, started: Instant) {
        let jitter = random_jitter(self.jitter);
        let saved_due = self.saved_next_due(key);
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let planned = started + slot.target.instance.poll_interval();
        slot.next_due = planned
            .max(saved_due.unwrap_or(planned))
            .max(Instant::now())
            + jitter;
    }

    /// In a fleet, a poll another node ran or runs: try again when the state says it is due
    /// (or when the other node's lease ends); a stale instance file waits an interval.
    fn reschedule_skipped(&mut self, key: &ResourceKey, skipped: &Skipped) {
        let jitter = random_jitter(self.jitter);
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let at = |time: DateTime<Utc>| {
            Instant::now() + (time - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        };
        slot.next_due = match skipped {
            Skipped::NotDue(next_due) => at(*next_due),
            // Released at its commit, usually well before; then the claim says NotDue.
            Skipped::Held { until, .. } => at(*until).min(Instant::now() + Duration::from_secs(5)),
            Skipped::StaleConfig => Instant::now() + slot.target.instance.poll_interval(),
        } + jitter;
    }

    fn saved_next_due(&self, key: &ResourceKey) -> Option<Instant> {
        let store = self.runner.store().lock().ok()?;
        let next_due = store.resource_state(key).ok()??.next_due_at?;
        let wait = (next_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Some(Instant::now() + wait)
    }
}

/// How long a target the scheduler has just taken on waits for its first poll, by its saved
/// state at `now` (before the jitter): until its saved next-due time when that is ahead, zero
/// when it is overdue or was never polled. A poll that did not fail is due no later than its
/// start plus the current `interval`, so a shortened interval takes effect across a restart;
/// after a failure the saved time stands (it may be a provider's long Retry-After).
fn first_wait(saved: Option<&ResourceState>, interval: Duration, now: DateTime<Utc>) -> Duration {
    let Some(state) = saved else {
        return Duration::ZERO;
    };
    let Some(mut due) = state.next_due_at else {
        return Duration::ZERO;
    };
    if state.last_result != Some(PollResult::Failed)
        && let Some(last) = state.last_poll_at
        && let Ok(interval) = chrono::TimeDelta::from_std(interval)
    {
        due = due.min(last + interval);
    }
    (due - now).to_std().unwrap_or(Duration::ZERO)
}

/// What metrics count of a poll.
fn poll_counts(report: &PollReport) -> PollCounts {
    PollCounts {
        failed: report.error.is_some(),
        baseline: report.baseline,
        records_read: report.records_read,
        records_unreadable: report.problem_count.saturating_sub(report.future_dated),
        records_future_dated: report.future_dated,
        events_by_type: report.events_by_type,
        provider_statuses: report.provider_statuses.iter().copied().collect(),
    }
}

fn random_jitter(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=max_ms))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn polled(at_: i64, result: PollResult, next_due: i64) -> ResourceState {
        ResourceState {
            last_poll_at: Some(at(at_)),
            last_result: Some(result),
            next_due_at: Some(at(next_due)),
            ..ResourceState::default()
        }
    }

    #[test]
    fn a_target_waits_for_its_saved_due_time_and_an_overdue_one_does_not() {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        // Never polled, or no due time saved: now.
        assert_eq!(first_wait(None, hour, at(0)), Duration::ZERO);
        let unknown = ResourceState::default();
        assert_eq!(first_wait(Some(&unknown), hour, at(0)), Duration::ZERO);
        // Due in 50 minutes: waits for it.
        let ahead = polled(-600, PollResult::Ok, 3000);
        assert_eq!(first_wait(Some(&ahead), hour, at(0)), 50 * minute);
        // Overdue: now.
        let overdue = polled(-7200, PollResult::Problems, -3600);
        assert_eq!(first_wait(Some(&overdue), hour, at(0)), Duration::ZERO);
        // The interval was shortened to a minute since: due a minute after the last start.
        let shortened = polled(-30, PollResult::Ok, 3570);
        assert_eq!(
            first_wait(Some(&shortened), minute, at(0)),
            Duration::from_secs(30)
        );
        // A failed poll's saved time stands (a provider's Retry-After).
        let retry_after = polled(-30, PollResult::Failed, 3570);
        assert_eq!(
            first_wait(Some(&retry_after), minute, at(0)),
            Duration::from_secs(3570)
        );
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_jitter(Duration::from_secs(5)) <= Duration::from_secs(5));
        }
    }
}
