//! The scheduler: when each resource is polled, and how many polls run at once.
//!
//! Every target (instance, resource, pathParams value) is polled at start, then again
//! `refresh_interval` after its previous poll *started*, plus a random jitter of up to
//! `[poll] jitter_seconds` so a thousand instances loaded together drift apart. A target is
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
use crate::metrics::{self, Metrics};
use crate::poll::{self, PollContext, PollReport, PollTarget};
use crate::state::ResourceKey;
use chrono::{SecondsFormat, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

/// The interval assumed for an instance without one (validate reports it missing when events
/// are enabled, so this only covers odd cases). Same as `tick`'s.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// One polled target and when it is next due.
struct Slot {
    target: PollTarget,
    next_due: Instant,
    last_started: Option<Instant>,
}

/// What a finished poll task hands back.
struct Finished {
    key: ResourceKey,
    report: PollReport,
    started: Instant,
    elapsed: Duration,
}

/// The global and per-provider-host limits on polls in flight.
struct Limits {
    global: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: HashMap<String, Arc<Semaphore>>,
}

impl Limits {
    fn new(config: &PollConfig) -> Limits {
        Limits {
            global: Arc::new(Semaphore::new(config.max_in_flight.max(1) as usize)),
            per_host_limit: config.per_host.max(1) as usize,
            per_host: HashMap::new(),
        }
    }

    fn host(&mut self, host: String) -> Arc<Semaphore> {
        let limit = self.per_host_limit;
        Arc::clone(
            self.per_host
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(limit))),
        )
    }
}

pub struct Scheduler {
    ctx: Arc<PollContext>,
    slots: HashMap<ResourceKey, Slot>,
    limits: Limits,
    jitter: Duration,
    /// Polls in flight, and which target each belongs to (a reload may drop or re-add its
    /// slot meanwhile; `busy` still keeps the target from running twice).
    running: JoinSet<Finished>,
    tasks: HashMap<Id, ResourceKey>,
    busy: HashSet<ResourceKey>,
    /// Told after each poll that wrote notifications, so delivery starts at once.
    delivery_wake: Arc<Notify>,
    metrics: Option<Arc<Metrics>>,
}

impl Scheduler {
    pub fn new(ctx: Arc<PollContext>, config: &PollConfig, delivery_wake: Arc<Notify>) -> Self {
        Scheduler {
            ctx,
            slots: HashMap::new(),
            limits: Limits::new(config),
            jitter: Duration::from_secs(config.jitter_seconds),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            busy: HashSet::new(),
            delivery_wake,
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
        let mut watchdog = super::systemd::watchdog_interval().map(tokio::time::interval);
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
                Some(done) = self.running.join_next_with_id() => self.finished(done),
                _ = sleep_until(next_due) => self.start_due(),
                // Petted from this loop, not a task of its own, so a wedged scheduler is
                // restarted by systemd rather than kept alive by a healthy timer.
                _ = tick(&mut watchdog) => notifier.watchdog(),
            }
        }
        self.drain(grace).await;
    }

    /// Makes the slots match the catalog: new targets are due now, removed ones go (a poll in
    /// flight finishes and is forgotten), kept ones take the new instance at their next poll.
    fn apply(&mut self, catalog: &Catalog) {
        let now = Instant::now();
        let mut wanted: HashMap<ResourceKey, PollTarget> = HashMap::new();
        for instance in catalog.instances().filter(|instance| instance.is_polled()) {
            for target in poll::targets(instance) {
                wanted.insert(target.key.clone(), target);
            }
        }
        self.slots.retain(|key, _| wanted.contains_key(key));
        for (key, target) in wanted {
            match self.slots.get_mut(&key) {
                Some(slot) => {
                    // A shorter interval should not wait out the old, longer one (only then:
                    // a provider's long Retry-After stays honoured across reloads).
                    if let Some(started) = slot.last_started
                        && interval(&target) < interval(&slot.target)
                    {
                        slot.next_due = slot.next_due.min(started + interval(&target));
                    }
                    slot.target = target;
                }
                None => {
                    self.slots.insert(
                        key,
                        Slot {
                            target,
                            next_due: now,
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
    }

    fn earliest_due(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|(key, _)| !self.busy.contains(*key))
            .map(|(_, slot)| slot.next_due)
            .min()
    }

    /// Starts every idle target that is due. Each waits for its limits inside its own task,
    /// so a full host never holds back polls of other hosts.
    fn start_due(&mut self) {
        let now = Instant::now();
        let due: Vec<ResourceKey> = self
            .slots
            .iter()
            .filter(|(key, slot)| slot.next_due <= now && !self.busy.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            slot.last_started = Some(now);
            let target = slot.target.clone();
            let host = self.limits.host(poll::provider_host(&target));
            let global = Arc::clone(&self.limits.global);
            let ctx = Arc::clone(&self.ctx);
            let metrics = self.metrics.clone();
            let handle = self.running.spawn(async move {
                // Semaphores are never closed, so acquiring cannot fail.
                let _global = global.acquire_owned().await.ok();
                let _host = host.acquire_owned().await.ok();
                let started = Instant::now();
                let poll = poll::run(&ctx, &target, interval(&target), &|_, _| {});
                let report = metrics::observe_provider(metrics, &target.key.instance, poll).await;
                Finished {
                    key: target.key,
                    report,
                    started,
                    elapsed: started.elapsed(),
                }
            });
            self.tasks.insert(handle.id(), key.clone());
            self.busy.insert(key);
        }
    }

    fn finished(&mut self, done: Result<(Id, Finished), tokio::task::JoinError>) {
        let finished = match done {
            Ok((id, finished)) => {
                self.tasks.remove(&id);
                finished
            }
            Err(error) => {
                // A poll task panicked: its target is free again and runs at its next due time.
                if let Some(key) = self.tasks.remove(&error.id()) {
                    tracing::error!(instance = %key.instance, resource = %key.resource,
                        %error, "a poll stopped unexpectedly");
                    self.busy.remove(&key);
                    self.reschedule(&key, Instant::now());
                }
                return;
            }
        };
        log_poll(&finished);
        if let Some(metrics) = &self.metrics {
            metrics.poll_finished(&finished.key, &finished.report, finished.elapsed);
        }
        if finished.report.notifications > 0 {
            self.delivery_wake.notify_one();
        }
        self.busy.remove(&finished.key);
        self.reschedule(&finished.key, finished.started);
    }

    /// The next poll: an interval after this one started (or later, when the provider asked
    /// for a longer pause: `poll::run` saved that in the state), never before now.
    fn reschedule(&mut self, key: &ResourceKey, started: Instant) {
        let jitter = random_jitter(self.jitter);
        let saved_due = self.saved_next_due(key);
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let planned = started + interval(&slot.target);
        slot.next_due = planned
            .max(saved_due.unwrap_or(planned))
            .max(Instant::now())
            + jitter;
    }

    fn saved_next_due(&self, key: &ResourceKey) -> Option<Instant> {
        let store = self.ctx.store.lock().ok()?;
        let next_due = store.resource_state(key).ok()??.next_due_at?;
        let wait = (next_due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Some(Instant::now() + wait)
    }

    /// After shutdown: no new polls; those in flight get until `grace` to commit.
    async fn drain(&mut self, grace: Duration) {
        if self.running.is_empty() {
            return;
        }
        tracing::info!(
            polls = self.running.len(),
            grace_seconds = grace.as_secs(),
            "stopping: waiting for polls in flight"
        );
        let deadline = Instant::now() + grace;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.running.join_next_with_id()).await {
                Ok(Some(done)) => self.finished(done),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        polls = self.running.len(),
                        "grace period over: abandoning polls in flight (nothing of them was \
                         committed; they run again at the next start)"
                    );
                    // Aborting drops each poll at an await point; its commit is synchronous,
                    // so a poll is never cut in the middle of its transaction.
                    self.running.abort_all();
                    while self.running.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
}

fn interval(target: &PollTarget) -> Duration {
    target.instance.refresh_interval.unwrap_or(DEFAULT_INTERVAL)
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

/// One line per poll: what it read, what it found, where the watermark is now.
fn log_poll(finished: &Finished) {
    let report = &finished.report;
    let key = &finished.key;
    let watermark = report
        .watermark
        .map(|w| w.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "-".to_owned());
    let duration_ms = u64::try_from(finished.elapsed.as_millis()).unwrap_or(u64::MAX);
    match &report.error {
        Some(error) => tracing::warn!(
            instance = %key.instance,
            resource = %key.resource,
            path_params = %key.path_params,
            records = report.records_read,
            duration_ms,
            watermark,
            %error,
            "poll failed"
        ),
        None => tracing::info!(
            instance = %key.instance,
            resource = %key.resource,
            path_params = %key.path_params,
            records = report.records_read,
            events = report.events,
            notifications = report.notifications,
            baseline = report.baseline,
            problems = report.problem_count,
            duration_ms,
            watermark,
            "poll"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_jitter(Duration::from_secs(5)) <= Duration::from_secs(5));
        }
    }
}
