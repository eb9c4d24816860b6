//! The poll runner: how polls run, whoever asks for them. `ocpoll tick` hands it the due
//! targets once ([`PollRunner::run_all`]); the daemon's scheduler hands it targets as they
//! come due ([`PollRunner::start`]). Either way the same code builds the poll context from the
//! configuration and the state, bounds the polls in flight (globally and per provider host,
//! docs/design.md#concurrency), and wakes delivery when a poll has written notifications.
//!
//! A target waits in the runner's queue, not in a task, until a global slot and a slot of its
//! host are free: ten thousand due targets cost ten thousand queue entries, not ten thousand
//! parked futures, and a busy host never holds global slots that other hosts could use.
//! Delivery beside polling is in [`delivery`]. Every poll that ends is logged here, one line
//! each (`poll` or `poll failed`), so `tick` and the daemon log alike.

pub mod delivery;

use crate::config::Config;
use crate::http::{HttpClient, Redirects};
use crate::instance::Instance;
use crate::poll::{self, PollContext, PollReport, PollTarget};
use crate::state::{ResourceKey, StateError, StateTokens, Store};
use chrono::{SecondsFormat, Utc};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

/// What a caller may watch of a poll while it runs (tick's progress bars).
pub trait PollWatch: Send + Sync {
    /// After each page: pages and records read so far.
    fn progress(&self, _pages: u64, _records: u64) {}
    /// The poll has ended (committed or failed).
    fn finished(&self) {}
}

/// A poll that has ended.
pub struct Finished {
    /// The order it was started in (`run_all` reports in that order).
    pub seq: u64,
    pub target: PollTarget,
    pub report: PollReport,
    /// When it got its slots and began.
    pub started: Instant,
    pub elapsed: Duration,
}

/// A poll task that panicked; its target is free again.
pub struct Panicked {
    pub seq: u64,
    pub target: PollTarget,
    pub error: tokio::task::JoinError,
}

/// The global and per-provider-host limits on polls in flight (`[poll] max_in_flight`,
/// `per_host`).
struct Limits {
    global: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: HashMap<String, Arc<Semaphore>>,
}

impl Limits {
    fn new(max_in_flight: u32, per_host: u32) -> Limits {
        Limits {
            global: Arc::new(Semaphore::new(max_in_flight.max(1) as usize)),
            per_host_limit: per_host.max(1) as usize,
            per_host: HashMap::new(),
        }
    }

    /// Both slots for a poll of `host`, or `None` when either is taken.
    fn try_take(&mut self, host: &str) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let limit = self.per_host_limit;
        let host = self
            .per_host
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)));
        // The host first: a full host must not take a global slot only to give it back.
        let host = Arc::clone(host).try_acquire_owned().ok()?;
        let global = Arc::clone(&self.global).try_acquire_owned().ok()?;
        Some((global, host))
    }
}

/// A target waiting for its slots.
struct Queued {
    seq: u64,
    target: PollTarget,
    watch: Option<Box<dyn PollWatch>>,
}

pub struct PollRunner {
    ctx: Arc<PollContext>,
    limits: Limits,
    /// Waiting targets by provider host, each host's in arrival order.
    queued: HashMap<String, VecDeque<Queued>>,
    running: JoinSet<Finished>,
    /// The poll each task runs, to name it if the task panics.
    tasks: HashMap<Id, (u64, PollTarget)>,
    /// The next [`Queued::seq`].
    next_seq: u64,
    /// Targets queued or running: never two polls of one target at once.
    busy: HashSet<ResourceKey>,
    /// Told after each poll that wrote notifications, so delivery starts at once.
    committed: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct RunnerError(String);

impl PollRunner {
    /// The runner for `config`'s limits, polling into `store`.
    pub fn new(config: &Config, store: Arc<Mutex<Store>>) -> Result<PollRunner, RunnerError> {
        let client = HttpClient::with_egress(Redirects::Follow, config.http.egress())
            .map_err(|error| RunnerError(error.to_string()))?;
        let ctx = PollContext {
            client,
            tokens: Arc::new(StateTokens(Arc::clone(&store))),
            store,
            retry: config.retry_policy(),
            limits: config.record_limits(),
            future_tolerance: Duration::from_secs(config.poll.future_tolerance_seconds),
            caps: config.poll_caps(),
            fleet: None,
        };
        Ok(PollRunner {
            ctx: Arc::new(ctx),
            limits: Limits::new(config.poll.max_in_flight, config.poll.per_host),
            queued: HashMap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            next_seq: 0,
            busy: HashSet::new(),
            committed: Arc::new(Notify::new()),
        })
    }

    /// Claims every poll in `fleet` first (a shared state); call before the first poll.
    pub fn with_fleet(mut self, fleet: Option<Arc<crate::fleet::Fleet>>) -> PollRunner {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.fleet = fleet;
        }
        self
    }

    /// The fleet this runner's polls claim in, if any.
    pub fn fleet(&self) -> Option<&Arc<crate::fleet::Fleet>> {
        self.ctx.fleet.as_ref()
    }

    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.ctx.store
    }

    /// Notified after each poll that wrote notifications.
    pub fn committed(&self) -> Arc<Notify> {
        Arc::clone(&self.committed)
    }

    /// True while a poll of `key` is queued or running.
    pub fn is_busy(&self, key: &ResourceKey) -> bool {
        self.busy.contains(key)
    }

    /// Queues a poll of `target` (ignored while one is queued or running) and starts what
    /// the limits allow.
    pub fn start(&mut self, target: PollTarget, watch: Option<Box<dyn PollWatch>>) {
        if !self.busy.insert(target.key.clone()) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queued
            .entry(target.provider_host())
            .or_default()
            .push_back(Queued { seq, target, watch });
        self.launch();
    }

    /// Starts queued polls while their slots are free.
    fn launch(&mut self) {
        let hosts: Vec<String> = self.queued.keys().cloned().collect();
        for host in hosts {
            while self.limits.global.available_permits() > 0 {
                let Some(queue) = self.queued.get_mut(&host) else {
                    break;
                };
                if queue.is_empty() {
                    self.queued.remove(&host);
                    break;
                }
                let Some(permits) = self.limits.try_take(&host) else {
                    break;
                };
                let Some(queue) = self.queued.get_mut(&host) else {
                    break;
                };
                let Some(queued) = queue.pop_front() else {
                    break;
                };
                // A tick queues every target at once; the drained part of the queue is given
                // back as it goes (half of it each time it is three-quarters empty), not
                // held until the last poll starts: 1 to 2 MiB of 10,000 queued targets.
                if queue.capacity() > 64 && queue.len() < queue.capacity() / 4 {
                    queue.shrink_to(queue.len() * 2);
                }
                self.spawn(queued, permits);
            }
        }
    }

    fn spawn(&mut self, queued: Queued, permits: (OwnedSemaphorePermit, OwnedSemaphorePermit)) {
        let Queued { seq, target, watch } = queued;
        let running = (seq, target.clone());
        let ctx = Arc::clone(&self.ctx);
        let committed = Arc::clone(&self.committed);
        let handle = self.running.spawn(async move {
            let _permits = permits;
            let started = Instant::now();
            let progress = |pages: u64, records: u64| {
                if let Some(watch) = &watch {
                    watch.progress(pages, records);
                }
            };
            let report = poll::run(&ctx, &target, &progress).await;
            if report.notifications > 0 {
                committed.notify_one();
            }
            if let Some(watch) = &watch {
                watch.finished();
            }
            Finished {
                seq,
                target,
                report,
                started,
                elapsed: started.elapsed(),
            }
        });
        self.tasks.insert(handle.id(), running);
    }

    /// The next poll to end, then starts what its slots allow; `None` when no poll runs
    /// (nothing is queued then either: a queued poll starts as soon as slots are free).
    pub async fn next_finished(&mut self) -> Option<Result<Finished, Panicked>> {
        let done = self.running.join_next_with_id().await?;
        let result = match done {
            Ok((id, finished)) => {
                self.tasks.remove(&id);
                log_poll(&finished);
                Ok(finished)
            }
            Err(error) => {
                let (seq, target) = self
                    .tasks
                    .remove(&error.id())
                    .unwrap_or_else(|| unreachable!("every poll task is registered when spawned"));
                Err(Panicked { seq, target, error })
            }
        };
        let key = match &result {
            Ok(finished) => &finished.target.key,
            Err(panicked) => &panicked.target.key,
        };
        self.busy.remove(key);
        self.launch();
        Some(result)
    }

    /// Polls every target in `targets` once and returns their reports in the order given.
    /// A poll task that panicked has a report with its error.
    pub async fn run_all(
        &mut self,
        targets: Vec<PollTarget>,
        watch: impl Fn(&PollTarget) -> Option<Box<dyn PollWatch>>,
    ) -> Vec<(PollTarget, PollReport)> {
        let mut results = Vec::with_capacity(targets.len());
        for target in targets {
            let watcher = watch(&target);
            self.start(target, watcher);
        }
        while let Some(done) = self.next_finished().await {
            results.push(match done {
                Ok(finished) => (finished.seq, finished.target, finished.report),
                Err(panicked) => {
                    let report = PollReport {
                        error: Some(format!("a poll stopped: {}", panicked.error)),
                        ..PollReport::default()
                    };
                    (panicked.seq, panicked.target, report)
                }
            });
        }
        // The summary lists polls in the order they were due, not the order they ended.
        results.sort_unstable_by_key(|(seq, _, _)| *seq);
        results
            .into_iter()
            .map(|(_, target, report)| (target, report))
            .collect()
    }

    /// The targets of `instances` due now by the state's next-due times (all of them with
    /// `all`), in instance file order: what a tick polls.
    pub fn due_targets(
        &self,
        instances: &[Arc<Instance>],
        all: bool,
    ) -> Result<Vec<PollTarget>, StateError> {
        let now = Utc::now();
        let store = Store::locked(&self.ctx.store);
        let mut due = Vec::new();
        for instance in instances.iter().filter(|instance| instance.is_polled()) {
            for target in poll::targets(instance) {
                let next_due = store
                    .resource_state(&target.key)?
                    .and_then(|state| state.next_due_at);
                if all || next_due.is_none_or(|next| next <= now) {
                    due.push(target);
                }
            }
        }
        Ok(due)
    }

    /// After shutdown: nothing new starts; the polls in flight get until `grace` to commit,
    /// then are abandoned (uncommitted, so they simply run again next time). Returns the
    /// polls that ended meanwhile.
    pub async fn drain(&mut self, grace: Duration) -> Vec<Result<Finished, Panicked>> {
        self.queued.clear();
        let mut ended = Vec::new();
        if self.running.is_empty() {
            return ended;
        }
        tracing::info!(
            polls = self.running.len(),
            grace_seconds = grace.as_secs(),
            "stopping: waiting for polls in flight"
        );
        let deadline = Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.next_finished()).await {
                Ok(Some(done)) => ended.push(done),
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
        ended
    }
}

/// One line per poll: what it read, what it found, where the watermark is now.
fn log_poll(finished: &Finished) {
    let report = &finished.report;
    let key = &finished.target.key;
    let watermark = report
        .watermark
        .map(|w| w.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "-".to_owned());
    let duration_ms = u64::try_from(finished.elapsed.as_millis()).unwrap_or(u64::MAX);
    if let Some(skipped) = &report.skipped {
        // Another node's turn: routine in a fleet, so not at info.
        tracing::debug!(instance = %key.instance, resource = %key.resource,
            path_params = %key.path_params, reason = ?skipped, "poll skipped");
        return;
    }
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
