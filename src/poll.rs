//! One poll: one resource of one instance (one `pathParams` value), from its watermark to the
//! last page, ending in one state transaction.
//!
//! This is where a watermark moves and where an event is born. The order is what makes a crash
//! harmless:
//! 1. read the resource's state (watermark, seen pairs) and expand the URL once;
//! 2. for each page: fetch, find the records, judge each one (`detect`), and stage the new
//!    ones in a short transaction, so memory holds one page, never the result set (a poll whose
//!    first page is its last keeps that page's events in memory instead: nothing to stage);
//! 3. after the last page, one transaction turns the staged events into notifications in the
//!    outbox (EVENTS.md bodies, batched) and moves the watermark.
//!
//! A crash before step 3 repeats the poll from the same watermark (its staging is discarded);
//! a crash after it loses nothing, the notifications being in the outbox. A failed request or
//! an unreadable page fails the poll without moving the watermark.

use crate::detect::{self, EventType, Observed, Verdict};
use crate::http::{AuthSession, HttpClient, Paginator, RetryPolicy, TokenStore, records};
use crate::instance::{DatesConfig, Instance, Resource};
use crate::outbox::payload::{
    BatchLimits, Batcher, EventEntry, EventIds, InstanceMeta, RawRecord, build_body,
};
use crate::state::{
    CommitTxn, NewNotification, PollId, PollOutcome, ResourceKey, StagedEvent, StateError, Store,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use url::Url;

/// Staged rows of a baseline poll: remembered as seen, never sent.
const BASELINE: &str = "BASELINE";

/// At most this many record problems are kept in a poll's report (the count is always exact).
const MAX_PROBLEMS_KEPT: usize = 20;

/// What every poll shares: the HTTP client, the state and the retry policy.
pub struct PollContext {
    pub client: HttpClient,
    pub store: Arc<Mutex<Store>>,
    pub tokens: Arc<dyn TokenStore>,
    pub retry: RetryPolicy,
    pub limits: crate::http::RecordLimits,
}

/// One thing to poll: a resource of an instance, with one value per `{placeholder}`.
#[derive(Clone, Debug)]
pub struct PollTarget {
    pub instance: Arc<Instance>,
    pub resource: usize,
    pub path_params: BTreeMap<String, String>,
    pub key: ResourceKey,
}

impl PollTarget {
    pub fn resource(&self) -> &Resource {
        &self.instance.resources[self.resource]
    }
}

/// Every target of an instance: each resource, fanned out over every combination of its
/// `pathParams` values (usually one placeholder with a list).
pub fn targets(instance: &Arc<Instance>) -> Vec<PollTarget> {
    let mut targets = Vec::new();
    for (index, resource) in instance.resources.iter().enumerate() {
        for path_params in combinations(&resource.path_params) {
            targets.push(PollTarget {
                key: ResourceKey::new(&instance.name, &resource.key, &path_params),
                instance: Arc::clone(instance),
                resource: index,
                path_params,
            });
        }
    }
    targets
}

/// The host a poll's requests go to, for the per-host limit.
pub fn provider_host(target: &PollTarget) -> String {
    let raw = target.resource().url.raw();
    url::Url::parse(raw)
        .ok()
        .or_else(|| target.instance.base_url.clone())
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
}

fn combinations(params: &BTreeMap<String, Vec<String>>) -> Vec<BTreeMap<String, String>> {
    let mut all = vec![BTreeMap::new()];
    for (name, values) in params {
        all = all
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |value| {
                    let mut next = partial.clone();
                    next.insert(name.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    all
}

/// How a poll went, for the summary table and the exit code.
#[derive(Clone, Debug, Default)]
pub struct PollReport {
    pub records_read: u64,
    pub pages: u64,
    pub events: u64,
    /// Committed events of each type (for metrics).
    pub events_by_type: BTreeMap<EventType, u64>,
    pub notifications: u64,
    /// The first poll of a resource emits nothing: it only sets the watermark.
    pub baseline: bool,
    pub watermark: Option<DateTime<Utc>>,
    /// Records that could not be read (bad date, no id); the poll still committed.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Why the poll failed; the watermark did not move.
    pub error: Option<String>,
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
        "the watermark was changed while the poll ran (ocpoll state reset?); nothing of this poll \
         was kept, the next poll starts from the new watermark"
    )]
    WatermarkMoved,
}

/// Called after each page with the pages and records read so far (progress bars).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Polls `target` once and commits the result; errors are recorded in the state and returned
/// in the report, never propagated: one failing poll does not stop the others.
pub async fn run(
    ctx: &PollContext,
    target: &PollTarget,
    interval: Duration,
    progress: Progress<'_>,
) -> PollReport {
    let started = Utc::now();
    let next_due = started + interval;
    let mut report = PollReport::default();
    let outcome = match &target.resource().dates {
        Some(dates) => poll_changes(ctx, target, dates, started, &mut report, progress).await,
        None => poll_snapshot(ctx, target, started, &mut report, progress).await,
    };
    let result = outcome.and_then(|poll| commit(ctx, target, poll, started, next_due, &mut report));
    if let Err(error) = result {
        let message = error.to_string();
        // A provider that asks for a longer pause than a poll may wait gets it (SPEC.md 5).
        let next_due = match &error {
            PollError::Fetch(crate::http::FetchError::RetryAfterTooLong { until }) => {
                next_due.max(*until)
            }
            _ => next_due,
        };
        let mut store = lock(&ctx.store);
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
    /// Snapshot mode: the previous snapshot's missing records become DELETED events.
    deletions: bool,
    /// The watermark the poll started from: if the state holds another one at the commit,
    /// someone moved it meanwhile (`ocpoll state reset`) and this poll's result is stale.
    started_from: Option<DateTime<Utc>>,
}

/// Watermark mode (SPEC.md section 6).
async fn poll_changes(
    ctx: &PollContext,
    target: &PollTarget,
    dates: &DatesConfig,
    now: DateTime<Utc>,
    report: &mut PollReport,
    progress: Progress<'_>,
) -> Result<FinishedPoll, PollError> {
    let resource = target.resource();
    let (previous, seen) = {
        let store = lock(&ctx.store);
        let previous = store.resource_state(&target.key)?.and_then(|s| s.watermark);
        let seen = match previous {
            Some(_) => store.seen_pairs(&target.key)?,
            None => HashSet::new(),
        };
        (previous, seen)
    };
    report.baseline = previous.is_none();
    // Shown as is when the poll fails: a failed poll leaves the watermark where it was.
    report.watermark = previous;
    let since = detect::query_since(previous, resource.lookback, now);
    let url = expand_url(target, since, &dates.updated.zone)?;
    let fraction_digits = dates.updated.format.fraction_digits();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut provider_date = None;
    let path_params_json = path_params_json(&target.path_params);
    let pages = read_pages(
        ctx,
        target,
        url,
        report,
        progress,
        |report, page_date, records| {
            provider_date = provider_date.or(page_date);
            let mut staged = Vec::new();
            for record in records {
                let observed = match detect::observe(record, &resource.id_field, dates) {
                    Ok(observed) => observed,
                    Err(problem) => {
                        note_problem(report, problem.to_string());
                        continue;
                    }
                };
                newest = newest.max(Some(observed.updated));
                let event_type = match previous {
                    None => BASELINE,
                    Some(watermark) => {
                        match detect::judge(
                            &observed,
                            watermark,
                            resource.lookback,
                            |id, updated| seen.contains(&(id.to_owned(), nanos(updated))),
                        ) {
                            Verdict::New(kind) => kind.as_str(),
                            Verdict::AlreadySeen | Verdict::BeforeWindow => continue,
                        }
                    }
                };
                staged.push(staged_event(
                    &observed,
                    event_type,
                    fraction_digits,
                    &path_params_json,
                    record,
                ));
            }
            staged
        },
    );
    let read = pages.run(Staging::NotYet(&target.key)).await?;
    let watermark = match previous {
        None => detect::baseline_watermark(newest, provider_date, now),
        Some(previous) => detect::next_watermark(previous, newest),
    };
    Ok(FinishedPoll {
        id: read.poll,
        held: read.held,
        watermark: Some(watermark),
        seen_floor: Some(nanos(detect::seen_floor(watermark, resource.lookback))),
        deletions: false,
        started_from: previous,
    })
}

fn staged_event(
    observed: &Observed,
    event_type: &str,
    fraction_digits: u8,
    path_params_json: &Option<String>,
    record: &Value,
) -> StagedEvent {
    // A baseline row only marks (id, updated) as seen; its record is never sent.
    let raw = if event_type == BASELINE {
        Vec::new()
    } else {
        records::raw_json(record).into_bytes()
    };
    StagedEvent {
        record_id: observed.id.clone(),
        updated: Some(nanos(observed.updated)),
        event_type: event_type.to_owned(),
        date: detect::event_date(observed.updated, fraction_digits),
        path_params_json: path_params_json.clone(),
        raw,
    }
}

/// Snapshot mode: no dates, so every poll reads everything and compares it with the last.
async fn poll_snapshot(
    ctx: &PollContext,
    target: &PollTarget,
    now: DateTime<Utc>,
    report: &mut PollReport,
    progress: Progress<'_>,
) -> Result<FinishedPoll, PollError> {
    let resource = target.resource();
    let (previous, poll) = {
        let mut store = lock(&ctx.store);
        // A snapshot poll stores its time as the watermark: "there is a snapshot to compare".
        let previous = store.resource_state(&target.key)?.and_then(|s| s.watermark);
        (previous, store.begin_snapshot_poll(&target.key)?)
    };
    report.baseline = previous.is_none();
    let url = expand_url(target, now, &crate::dates::Zone::utc())?;
    let path_params_json = path_params_json(&target.path_params);
    let date = detect::event_date(now, 3);
    let store = &ctx.store;
    let mut staging_error = None;
    let pages = read_pages(ctx, target, url, report, progress, |report, _, records| {
        let mut items = Vec::new();
        for record in records {
            match detect::record_id(record, &resource.id_field) {
                Ok(id) => items.push((id, detect::content_hash(record), records::raw_json(record))),
                Err(problem) => note_problem(report, problem.to_string()),
            }
        }
        let ids: Vec<&str> = items.iter().map(|(id, _, _)| id.as_str()).collect();
        let mut store = lock(store);
        let previous_hashes = match store.snapshot_hashes(&target.key, &ids) {
            Ok(hashes) => hashes,
            Err(error) => {
                staging_error = Some(error);
                return Vec::new();
            }
        };
        let mut staged = Vec::new();
        for (id, hash, raw) in &items {
            let verdict =
                detect::snapshot_verdict(previous_hashes.get(id).map(String::as_str), hash);
            if let (Some(kind), Some(_)) = (verdict, previous) {
                staged.push(StagedEvent {
                    record_id: id.clone(),
                    updated: None,
                    event_type: kind.as_str().to_owned(),
                    date: date.clone(),
                    path_params_json: path_params_json.clone(),
                    raw: raw.clone().into_bytes(),
                });
            }
        }
        if let Err(error) = store.stage_snapshot(poll, &items) {
            staging_error = Some(error);
        }
        staged
    });
    let read = pages.run(Staging::Poll(poll)).await?;
    if let Some(error) = staging_error {
        return Err(error.into());
    }
    Ok(FinishedPoll {
        id: read.poll,
        held: read.held,
        watermark: Some(now),
        seen_floor: None,
        deletions: previous.is_some(),
        started_from: previous,
    })
}

/// Where a poll's events wait for its commit.
enum Staging<'k> {
    /// Nothing staged yet (watermark mode): the poll begins in the state only when a second
    /// page comes; a poll whose first page is its last keeps that page in memory.
    NotYet(&'k ResourceKey),
    /// Begun (snapshot mode begins at once: it stages its whole set).
    Poll(PollId),
}

/// What the page loop leaves for the commit.
struct PagesRead {
    poll: Option<PollId>,
    held: Vec<StagedEvent>,
}

/// The page loop shared by both modes: fetch, parse, find the records, let `judge_page` turn
/// them into staged events, stage them, follow the pagination.
struct PageReader<'a, F> {
    ctx: &'a PollContext,
    target: &'a PollTarget,
    first_url: Url,
    report: &'a mut PollReport,
    progress: Progress<'a>,
    judge_page: F,
}

fn read_pages<'a, F>(
    ctx: &'a PollContext,
    target: &'a PollTarget,
    first_url: Url,
    report: &'a mut PollReport,
    progress: Progress<'a>,
    judge_page: F,
) -> PageReader<'a, F>
where
    F: FnMut(&mut PollReport, Option<DateTime<Utc>>, &[Value]) -> Vec<StagedEvent>,
{
    PageReader {
        ctx,
        target,
        first_url,
        report,
        progress,
        judge_page,
    }
}

impl<F> PageReader<'_, F>
where
    F: FnMut(&mut PollReport, Option<DateTime<Utc>>, &[Value]) -> Vec<StagedEvent>,
{
    async fn run(mut self, mut staging: Staging<'_>) -> Result<PagesRead, PollError> {
        let instance = &self.target.instance;
        let resource = self.target.resource();
        let session =
            AuthSession::new(&instance.name, &instance.auth, Arc::clone(&self.ctx.tokens))?;
        let mut paginator = Paginator::new(&resource.pagination, self.first_url.clone());
        let mut next = Some(paginator.first_url());
        while let Some(url) = next {
            let page = self
                .ctx
                .client
                .get(&url, &session, &instance.http, &self.ctx.retry)
                .await?;
            let body = records::parse_body(&page)?;
            let found = records::locate_records(&body, resource.records_path.as_ref())?;
            let count = found.len();
            let (found, too_large) = detect::within_size_limit(
                found,
                page.body.len(),
                self.ctx.limits.max_record_bytes,
                &resource.id_field,
            );
            for problem in too_large {
                note_problem(self.report, problem.to_string());
            }
            let staged = (self.judge_page)(self.report, page.date, &found);
            next = paginator.next_url(&page, &body, count)?;
            self.report.pages += 1;
            self.report.records_read += count as u64;
            (self.progress)(self.report.pages, self.report.records_read);
            match (&staging, &next) {
                (Staging::NotYet(_), None) => {
                    return Ok(PagesRead {
                        poll: None,
                        held: first_of_each(staged),
                    });
                }
                (Staging::NotYet(key), Some(_)) => {
                    let poll = lock(&self.ctx.store).begin_poll(key)?;
                    lock(&self.ctx.store).stage_events(poll, &staged)?;
                    staging = Staging::Poll(poll);
                }
                (Staging::Poll(poll), _) => {
                    lock(&self.ctx.store).stage_events(*poll, &staged)?;
                }
            }
        }
        Ok(PagesRead {
            poll: match staging {
                Staging::Poll(poll) => Some(poll),
                Staging::NotYet(_) => None,
            },
            held: Vec::new(),
        })
    }
}

/// The same (id, updated) twice in a page keeps the first, as staging's unique index does.
fn first_of_each(events: Vec<StagedEvent>) -> Vec<StagedEvent> {
    let mut seen = HashSet::new();
    events
        .into_iter()
        .filter(|event| seen.insert((event.record_id.clone(), event.updated)))
        .collect()
}

/// The poll's one transaction: staged events into notifications, the watermark moved.
fn commit(
    ctx: &PollContext,
    target: &PollTarget,
    poll: FinishedPoll,
    now: DateTime<Utc>,
    next_due: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<(), PollError> {
    let mut store = lock(&ctx.store);
    // Group commit: not synced here; delivery syncs once (`Store::sync`) before it sends.
    store.relaxed(|store| write_commit(store, target, poll, (now, next_due), report))
}

/// The body of [`commit`], inside its relaxed-durability window.
fn write_commit(
    store: &mut Store,
    target: &PollTarget,
    poll: FinishedPoll,
    (now, next_due): (DateTime<Utc>, DateTime<Utc>),
    report: &mut PollReport,
) -> Result<(), PollError> {
    let instance = &target.instance;
    let resource = target.resource();
    let meta = InstanceMeta {
        instance_id: &instance.name,
        element_key: instance.element_key.as_deref().unwrap_or_default(),
        tags: &instance.tags,
    };
    let limits = BatchLimits {
        max_events: instance.notification.batch_size,
        max_bytes: instance.notification.batch_bytes,
    };
    let txn = match poll.id {
        Some(id) => store.begin_commit(id)?,
        None => store.begin_direct_commit(&target.key)?,
    };
    // Dropping the transaction rolls it back: the reset stands, the poll counts as failed.
    if txn.watermark()? != poll.started_from {
        return Err(PollError::WatermarkMoved);
    }
    let mut writer = NotificationWriter {
        txn: &txn,
        batcher: Some(Batcher::new(limits, meta, &resource.key)),
        meta,
        object_type: &resource.key,
        ids: EventIds::default(),
        now,
        events: 0,
        by_type: BTreeMap::new(),
        notifications: 0,
    };
    txn.for_each_staged(|staged| writer.add_staged(staged))?;
    for event in poll.held {
        if let Some(updated) = event.updated {
            txn.remember_seen(&event.record_id, updated)?;
        }
        writer.add_staged(event)?;
    }
    if poll.deletions {
        let date = detect::event_date(now, 3);
        let path_params = non_empty(&target.path_params);
        txn.snapshot_deletions(|id, last_raw| {
            writer.add(deleted_event(id, last_raw, &date, path_params.clone())?)
        })?;
    }
    let by_type = std::mem::take(&mut writer.by_type);
    let (events, notifications) = writer.finish()?;
    let problems = (report.problem_count > 0).then(|| problem_summary(report));
    txn.finish(PollOutcome {
        watermark: poll.watermark,
        seen_floor: poll.seen_floor,
        next_due_at: Some(next_due),
        records_read: report.records_read,
        events,
        polled_at: now,
        problems,
    })?;
    report.events = events;
    report.events_by_type = by_type;
    report.notifications = notifications;
    report.watermark = poll.watermark;
    Ok(())
}

/// Batches events and writes each full batch to the outbox as one notification.
struct NotificationWriter<'a, 't> {
    txn: &'a CommitTxn<'t>,
    /// `None` once finished.
    batcher: Option<Batcher<'a>>,
    meta: InstanceMeta<'a>,
    object_type: &'a str,
    ids: EventIds,
    now: DateTime<Utc>,
    events: u64,
    by_type: BTreeMap<EventType, u64>,
    notifications: u64,
}

impl NotificationWriter<'_, '_> {
    fn add_staged(&mut self, staged: StagedEvent) -> Result<(), PollError> {
        if staged.event_type == BASELINE {
            return Ok(());
        }
        let event_type = EventType::parse(&staged.event_type).ok_or_else(|| {
            PollError::Staged(format!("unknown event type {}", staged.event_type))
        })?;
        let raw = std::str::from_utf8(&staged.raw)
            .map_err(|error| PollError::Staged(error.to_string()))
            .and_then(|text| {
                RawRecord::from_json_text(text)
                    .map_err(|error| PollError::Staged(error.to_string()))
            })?;
        let path_params = match staged.path_params_json {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|error| PollError::Staged(error.to_string()))?,
            ),
            None => None,
        };
        self.add(EventEntry {
            event_type,
            object_id: staged.record_id,
            date: staged.date,
            path_params,
            raw,
        })
    }

    fn add(&mut self, event: EventEntry) -> Result<(), PollError> {
        self.events += 1;
        *self.by_type.entry(event.event_type).or_default() += 1;
        match self
            .batcher
            .as_mut()
            .and_then(|batcher| batcher.push(event))
        {
            Some(batch) => self.write(&batch),
            None => Ok(()),
        }
    }

    fn write(&mut self, batch: &[EventEntry]) -> Result<(), PollError> {
        let id = self.ids.next(self.now, rand::random());
        let body = build_body(&id, self.now, &self.meta, self.object_type, batch);
        self.txn.insert_notification(NewNotification {
            id,
            instance: self.meta.instance_id.to_owned(),
            body,
            events: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            created_at: self.now,
        })?;
        self.notifications += 1;
        Ok(())
    }

    /// Writes the last batch; returns (events, notifications).
    fn finish(mut self) -> Result<(u64, u64), PollError> {
        if let Some(batch) = self.batcher.take().and_then(Batcher::finish) {
            self.write(&batch)?;
        }
        Ok((self.events, self.notifications))
    }
}

/// A record gone from a snapshot: its last version when stored, else `{"id": ...}` (EVENTS.md).
fn deleted_event(
    id: String,
    last_raw: Option<Vec<u8>>,
    date: &str,
    path_params: Option<BTreeMap<String, String>>,
) -> Result<EventEntry, PollError> {
    let raw = match last_raw.and_then(|bytes| String::from_utf8(bytes).ok()) {
        Some(text) => RawRecord::from_json_text(&text).ok(),
        None => None,
    };
    let raw = raw.unwrap_or_else(|| RawRecord::from_value(&serde_json::json!({ "id": id })));
    Ok(EventEntry {
        event_type: EventType::Deleted,
        object_id: id,
        date: date.to_owned(),
        path_params,
        raw,
    })
}

/// The resource URL for this poll: macros expanded with `since`, resolved against `base.url`.
fn expand_url(
    target: &PollTarget,
    since: DateTime<Utc>,
    zone: &crate::dates::Zone,
) -> Result<Url, PollError> {
    let resource = target.resource();
    let expanded = resource
        .url
        .expand(since, zone, &target.path_params)
        .map_err(|error| PollError::Url(error.to_string()))?;
    resolve_url(target.instance.base_url.as_ref(), &expanded).map_err(PollError::Url)
}

/// Joins a relative resource URL to `base.url` by concatenation: `/hubs/crm/contacts` under
/// `https://host/elements/api-v2` keeps the `/elements/api-v2` prefix (RFC 3986 resolution
/// would drop it, which is never what an Open Connectors user means).
pub fn resolve_url(base: Option<&Url>, expanded: &str) -> Result<Url, String> {
    let lower = expanded.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Url::parse(expanded).map_err(|error| format!("{error}"));
    }
    let base = base.ok_or_else(|| "a relative URL needs base.url".to_owned())?;
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        expanded.trim_start_matches('/')
    );
    Url::parse(&joined).map_err(|error| format!("{error}"))
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
        count => format!("{count} records could not be read; first: {first}"),
    }
}

/// Unix nanoseconds, as the state keeps seen pairs. Dates past 2262 saturate (they cannot be
/// represented, and no provider sends them).
pub fn nanos(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The store is used from several polls; a poisoned lock (a panic elsewhere) still holds a
/// consistent store, because every change is a transaction.
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use crate::state::StateTokens;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_keep_the_base_path() {
        let base = Url::parse("https://api.example.com/elements/api-v2").unwrap();
        let url = resolve_url(Some(&base), "/hubs/crm/contacts?where=x").unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/elements/api-v2/hubs/crm/contacts?where=x"
        );
        let base = Url::parse("https://api.example.com/v2/").unwrap();
        assert_eq!(
            resolve_url(Some(&base), "people").unwrap().as_str(),
            "https://api.example.com/v2/people"
        );
        assert_eq!(
            resolve_url(None, "https://other.example.com/x")
                .unwrap()
                .as_str(),
            "https://other.example.com/x"
        );
        assert!(resolve_url(None, "/relative").is_err());
    }

    #[test]
    fn path_params_fan_out_over_every_combination() {
        let mut params = BTreeMap::new();
        params.insert("a".to_owned(), vec!["1".to_owned(), "2".to_owned()]);
        params.insert("b".to_owned(), vec!["x".to_owned(), "y".to_owned()]);
        let all = combinations(&params);
        assert_eq!(all.len(), 4);
        assert!(all.iter().any(|c| c["a"] == "2" && c["b"] == "x"));
        assert_eq!(combinations(&BTreeMap::new()), vec![BTreeMap::new()]);
    }
}
