//! One poll: one resource of one instance (one `pathParams` value), from its watermark to the
//! last page, ending in one state transaction.
//!
//! This is where a watermark moves and where an event is born. The order is what makes a crash
//! harmless:
//! 1. read the resource's state (watermark, seen pairs) and expand the URL once;
//! 2. for each page ([`pages`]): fetch, find the records, judge each one ([`judge`], with
//!    `detect`'s pure rules), and stage the new ones ([`stage`]) in a short transaction, so
//!    memory holds one page, never the result set;
//! 3. after the last page, one transaction ([`commit`]) turns the staged events into
//!    notifications in the outbox and moves the watermark.
//!
//! [`target`] says what is polled (the `pathParams` fan-out) and which URL is requested.
//!
//! A crash before step 3 repeats the poll from the same watermark (its staging is discarded);
//! a crash after it loses nothing, the notifications being in the outbox. A failed request or
//! an unreadable page fails the poll without moving the watermark.

mod commit;
mod judge;
pub mod pages;
mod stage;
pub mod target;

pub use pages::{PageRead, PageReader, PageSink, PollCaps};
pub use target::{PollTarget, targets};

use crate::detect::{self, EventCounts};
use crate::http::{AuthSession, HttpClient, RecordLimits, RetryPolicy, TokenStore};
use crate::instance::{DatesConfig, PollMode};
use crate::state::{PollId, ResourceKey, StagedEvent, StateError, Store};
use chrono::{DateTime, Utc};
use judge::{SnapshotJudge, WatermarkJudge, WindowJudge};
use stage::{Stager, Staging};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// At most this many record problems are kept in a poll's report (the count is always exact).
const MAX_PROBLEMS_KEPT: usize = 20;

/// What every poll shares: the HTTP client, the state and the retry policy.
pub struct PollContext {
    pub client: HttpClient,
    pub store: Arc<Mutex<Store>>,
    pub tokens: Arc<dyn TokenStore>,
    pub retry: RetryPolicy,
    pub limits: RecordLimits,
    /// `[poll] future_tolerance_seconds`.
    pub future_tolerance: std::time::Duration,
    /// `[poll] max_pages` and `max_poll_seconds`.
    pub caps: PollCaps,
    /// With a shared (PostgreSQL) state: each poll is claimed first and released after.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// How a poll went, for the summary table and the exit code.
#[derive(Clone, Debug, Default)]
pub struct PollReport {
    pub records_read: u64,
    pub pages: u64,
    pub events: u64,
    /// Committed events of each type (for metrics).
    pub events_by_type: EventCounts,
    /// How many provider responses of each HTTP status the poll got, retries included: a
    /// short list (usually one status), kept in every report of a 10,000-instance tick.
    pub provider_statuses: Vec<(u16, u64)>,
    pub notifications: u64,
    /// The first poll of a resource emits nothing: it only sets the watermark.
    pub baseline: bool,
    pub watermark: Option<DateTime<Utc>>,
    /// Records that could not be read (bad date, no id), and records dated in the future
    /// (sent, but the watermark did not move past them); the poll still committed.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Of `problem_count`: records dated past the provider's clock (`[poll]
    /// future_tolerance_seconds`).
    pub future_dated: u64,
    /// Why the poll failed; the watermark did not move.
    pub error: Option<String>,
    /// In a fleet: why this node did not poll (another node did or does); nothing was read.
    pub skipped: Option<crate::fleet::Skipped>,
}

/// Why a poll failed. Never carries a credential: the HTTP errors are built without them.
#[derive(Debug, Error)]
pub enum PollError {
    #[error("{0}")]
    Fetch(#[from] crate::http::FetchError),
    #[error("{0}")]
    Auth(#[from] crate::http::AuthError),
    #[error("{0}")]
    Records(#[from] crate::http::RecordsError),
    #[error("{0}")]
    Pagination(#[from] crate::http::PaginationError),
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("cannot build the URL: {0}")]
    Url(String),
    #[error("a staged record is not valid JSON any more: {0}")]
    Staged(String),
    #[error(
        "stopped after {limit} pages ([poll] max_pages, or the resource's maxPages): the provider \
         keeps handing out next pages; nothing of this poll was kept"
    )]
    TooManyPages { limit: u64 },
    #[error(
        "stopped after {} ([poll] max_poll_seconds, or the resource's maxPollSeconds) and \
         {pages} pages; nothing of this poll was kept",
        humantime::format_duration(*.limit)
    )]
    TooLong {
        limit: std::time::Duration,
        pages: u64,
    },
    #[error(
        "the watermark was changed while the poll ran (ocpoll state reset?); nothing of this poll \
         was kept, the next poll starts from the new watermark"
    )]
    WatermarkMoved,
}

/// Called after each page with the pages and records read so far (progress bars).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Polls `target` once and commits the result; errors are recorded in the state and returned
/// in the report, never propagated: one failing poll does not stop the others. The next poll
/// is due the instance's interval after this one started.
pub async fn run(ctx: &PollContext, target: &PollTarget, progress: Progress<'_>) -> PollReport {
    let Some(fleet) = &ctx.fleet else {
        return run_claimed(ctx, target, progress).await;
    };
    match fleet.claim_poll(&ctx.store, &target.key) {
        Ok(None) => {}
        Ok(Some(skipped)) => {
            return PollReport {
                skipped: Some(skipped),
                ..PollReport::default()
            };
        }
        Err(error) => {
            return PollReport {
                error: Some(format!("cannot claim the poll: {error}")),
                ..PollReport::default()
            };
        }
    }
    let report = run_claimed(ctx, target, progress).await;
    fleet.release_poll(&ctx.store, &target.key);
    report
}

/// [`run`] once this node may poll `target` (always, without a fleet).
async fn run_claimed(ctx: &PollContext, target: &PollTarget, progress: Progress<'_>) -> PollReport {
    let started = Utc::now();
    let next_due = started + target.instance.poll_interval();
    let mut report = PollReport::default();
    let outcome = match target.resource().mode() {
        PollMode::Watermark(dates) => {
            poll_changes(ctx, target, dates, started, &mut report, progress).await
        }
        PollMode::Window => poll_window(ctx, target, started, &mut report, progress).await,
        PollMode::Snapshot => poll_snapshot(ctx, target, started, &mut report, progress).await,
    };
    let result =
        outcome.and_then(|poll| commit::commit(ctx, target, poll, started, next_due, &mut report));
    if let Err(error) = result {
        // What is printed, logged and stored: never a secret, whatever the provider echoed.
        let message = crate::http::auth::instance_masker(&target.instance, ctx.tokens.as_ref())
            .text(&error.to_string());
        // A provider that asks for a longer pause than a poll may wait gets it (docs/design.md#polling).
        let next_due = match &error {
            PollError::Fetch(crate::http::FetchError::RetryAfterTooLong { until }) => {
                next_due.max(*until)
            }
            _ => next_due,
        };
        let mut store = Store::locked(&ctx.store);
        if let Err(state_error) =
            store.record_poll_failure(&target.key, &message, started, Some(next_due))
        {
            report.error = Some(format!(
                "{message} (and saving the failure failed: {state_error})"
            ));
            return report;
        }
        report.error = Some(message);
    }
    report
}

/// A poll whose pages are all read and staged, waiting for its commit.
struct FinishedPoll {
    /// None when nothing was staged: the events are all in `held`.
    id: Option<PollId>,
    /// The events of a one-page poll, kept in memory rather than staged.
    held: Vec<StagedEvent>,
    watermark: Option<DateTime<Utc>>,
    seen_floor: Option<i64>,
    /// Window mode: pairs last seen before this are dropped (the next window's start).
    window_floor: Option<i64>,
    /// Snapshot mode: the previous snapshot's missing records become DELETED events.
    deletions: bool,
    /// The watermark the poll started from: if the state holds another one at the commit,
    /// someone moved it meanwhile (`ocpoll state reset`) and this poll's result is stale.
    started_from: Option<DateTime<Utc>>,
}

/// The page reader of a poll: the context's client and limits, the instance's credentials.
async fn read_pages<J: judge::Judge>(
    ctx: &PollContext,
    target: &PollTarget,
    first_url: url::Url,
    stager: &mut Stager<'_, J>,
) -> Result<(), PollError> {
    let instance = &target.instance;
    let session = AuthSession::for_instance(instance, Arc::clone(&ctx.tokens))?;
    let reader = PageReader {
        client: &ctx.client,
        session: &session,
        retry: &ctx.retry,
        limits: &ctx.limits,
        caps: ctx.caps,
    };
    reader.read(target, first_url, stager).await
}

/// The watermark the poll starts from and, when there is one, the pairs `read` keeps for it
/// (a first poll is a baseline: it has none to compare with).
fn previous_and_pairs<T>(
    ctx: &PollContext,
    target: &PollTarget,
    read: impl FnOnce(&Store, &ResourceKey) -> Result<HashSet<T>, StateError>,
) -> Result<(Option<DateTime<Utc>>, HashSet<T>), PollError> {
    let store = Store::locked(&ctx.store);
    let previous = store.resource_state(&target.key)?.and_then(|s| s.watermark);
    let pairs = match previous {
        Some(_) => read(&store, &target.key)?,
        None => HashSet::new(),
    };
    Ok((previous, pairs))
}

/// Watermark mode (docs/design.md#change-detection).
async fn poll_changes(
    ctx: &PollContext,
    target: &PollTarget,
    dates: &DatesConfig,
    now: DateTime<Utc>,
    report: &mut PollReport,
    progress: Progress<'_>,
) -> Result<FinishedPoll, PollError> {
    let resource = target.resource();
    let (previous, seen) = previous_and_pairs(ctx, target, Store::seen_pairs)?;
    report.baseline = previous.is_none();
    // Shown as is when the poll fails: a failed poll leaves the watermark where it was.
    report.watermark = previous;
    let since = detect::query_since(previous, resource.lookback, now);
    let url = target.expand_url(since, &dates.updated.zone)?;
    let judge = WatermarkJudge {
        id_field: &resource.id_field,
        dates,
        lookback: resource.lookback,
        previous,
        seen,
        path_params_json: path_params_json(&target.path_params),
        newest: None,
        provider_date: None,
        future_tolerance: ctx.future_tolerance,
        now,
    };
    let mut stager = Stager::new(
        &ctx.store,
        judge,
        Staging::NotYet(&target.key),
        report,
        progress,
    );
    read_pages(ctx, target, url, &mut stager).await?;
    let staged = stager.finish();
    let (newest, provider_date) = (staged.judge.newest, staged.judge.provider_date);
    let watermark = match previous {
        None => detect::baseline_watermark(newest, provider_date, now),
        Some(previous) => detect::next_watermark(previous, newest),
    };
    Ok(FinishedPoll {
        id: staged.poll,
        held: staged.held,
        watermark: Some(watermark),
        seen_floor: Some(nanos(detect::seen_floor(watermark, resource.lookback))),
        window_floor: None,
        deletions: false,
        started_from: previous,
    })
}

/// Window mode (docs/design.md#window-mode): the URL's date macro gets the provider's time of
/// the previous poll minus `lookbackSeconds`; the provider filters, every record it returns is
/// a change unless an overlapping window already saw it unchanged; never DELETED.
async fn poll_window(
    ctx: &PollContext,
    target: &PollTarget,
    now: DateTime<Utc>,
    report: &mut PollReport,
    progress: Progress<'_>,
) -> Result<FinishedPoll, PollError> {
    let resource = target.resource();
    let (previous, seen) = previous_and_pairs(ctx, target, Store::window_pairs)?;
    report.baseline = previous.is_none();
    report.watermark = previous;
    let since = detect::query_since(previous, resource.lookback, now);
    let url = target.expand_url(since, &crate::dates::Zone::utc())?;
    let judge = WindowJudge {
        id_field: &resource.id_field,
        has_previous: previous.is_some(),
        seen,
        path_params_json: path_params_json(&target.path_params),
        provider_time: None,
        now,
    };
    let mut stager = Stager::new(
        &ctx.store,
        judge,
        Staging::NotYet(&target.key),
        report,
        progress,
    );
    read_pages(ctx, target, url, &mut stager).await?;
    let staged = stager.finish();
    // The next window starts at this poll's provider time minus the lookback; it never moves
    // back (a provider clock that steps back cannot make the window re-read old changes).
    let provider_time = staged.judge.provider_time();
    let watermark = previous.map_or(provider_time, |previous| previous.max(provider_time));
    Ok(FinishedPoll {
        id: staged.poll,
        held: staged.held,
        watermark: Some(watermark),
        seen_floor: None,
        window_floor: Some(nanos(detect::seen_floor(watermark, resource.lookback))),
        deletions: false,
        started_from: previous,
    })
}

/// Snapshot mode: no dates, so every poll reads everything and compares it with the last.
async fn poll_snapshot(
    ctx: &PollContext,
    target: &PollTarget,
    now: DateTime<Utc>,
    report: &mut PollReport,
    progress: Progress<'_>,
) -> Result<FinishedPoll, PollError> {
    let (previous, poll) = {
        let mut store = Store::locked(&ctx.store);
        // A snapshot poll stores its time as the watermark: "there is a snapshot to compare".
        let previous = store.resource_state(&target.key)?.and_then(|s| s.watermark);
        (previous, store.begin_snapshot_poll(&target.key)?)
    };
    report.baseline = previous.is_none();
    let url = target.expand_url(now, &crate::dates::Zone::utc())?;
    let judge = SnapshotJudge {
        store: &ctx.store,
        key: &target.key,
        id_field: &target.resource().id_field,
        poll,
        has_previous: previous.is_some(),
        path_params_json: path_params_json(&target.path_params),
        date: detect::event_date(now, 3),
    };
    let mut stager = Stager::new(&ctx.store, judge, Staging::Begun(poll), report, progress);
    read_pages(ctx, target, url, &mut stager).await?;
    let staged = stager.finish();
    Ok(FinishedPoll {
        id: staged.poll,
        held: staged.held,
        watermark: Some(now),
        seen_floor: None,
        window_floor: None,
        deletions: previous.is_some(),
        started_from: previous,
    })
}

fn path_params_json(path_params: &BTreeMap<String, String>) -> Option<String> {
    non_empty(path_params).and_then(|params| serde_json::to_string(&params).ok())
}

fn non_empty(path_params: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!path_params.is_empty()).then(|| path_params.clone())
}

fn note_problem(report: &mut PollReport, problem: String) {
    report.problem_count += 1;
    if report.problems.len() < MAX_PROBLEMS_KEPT {
        report.problems.push(problem);
    }
}

fn problem_summary(report: &PollReport) -> String {
    let first = report.problems.first().cloned().unwrap_or_default();
    match report.problem_count {
        1 => first,
        count => match report.future_dated {
            0 => format!("{count} records could not be read; first: {first}"),
            _ => format!("{count} {}; first: {first}", report.problems_noun()),
        },
    }
}

impl PollReport {
    /// Counts one provider response of `status`.
    pub fn count_status(&mut self, status: u16) {
        match self
            .provider_statuses
            .iter_mut()
            .find(|(seen, _)| *seen == status)
        {
            Some((_, count)) => *count += 1,
            None => self.provider_statuses.push((status, 1)),
        }
    }

    /// What the poll's problem records were, in words for a count.
    pub fn problems_noun(&self) -> &'static str {
        match self.future_dated {
            0 => "unreadable records",
            future if future == self.problem_count => "records dated in the future",
            _ => "unreadable or future-dated records",
        }
    }
}

/// Unix nanoseconds, as the state keeps seen pairs. Dates past 2262 saturate (they cannot be
/// represented, and no provider sends them).
pub fn nanos(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_nanos_opt().unwrap_or(i64::MAX)
}
