//! Judging a page's records, one judge per mode (docs/design.md#change-detection): which
//! records are events, and what a baseline poll remembers. The decisions themselves are
//! `detect`'s (pure); a judge applies them to a page and gathers what the commit needs.

use super::pages::PageRead;
use super::{PollError, PollReport, nanos, note_problem};
use crate::detect::{self, EventType, Observed, Verdict};
use crate::http::records;
use crate::instance::{DatesConfig, FieldPath};
use crate::state::{PollId, ResourceKey, StagedEvent, StagedKind, Store};
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Mutex;

/// Turns a page's records into the events (or baseline rows) to stage. The stager hands a
/// large page's records over in parts (`records` is a part of `page.records`), so the events
/// of one part are in memory at a time.
pub(super) trait Judge: Send {
    fn judge(
        &mut self,
        page: &PageRead<'_>,
        records: &[&RawValue],
        report: &mut PollReport,
    ) -> Result<Vec<StagedEvent>, PollError>;
}

/// `record` decoded; one that cannot be is a problem noted in `report` (and skipped).
fn decode_or_note(record: &RawValue, report: &mut PollReport) -> Option<Value> {
    detect::decode(record)
        .map_err(|problem| note_problem(report, problem.to_string()))
        .ok()
}

/// Watermark mode: a record is an event when its updated date is past the watermark, or at it
/// and not yet seen.
pub(super) struct WatermarkJudge<'a> {
    pub id_field: &'a FieldPath,
    pub dates: &'a DatesConfig,
    pub lookback: std::time::Duration,
    /// `None` on the first poll: a baseline, every record only remembered as seen.
    pub previous: Option<DateTime<Utc>>,
    /// (id, updated nanos) pairs already sent at or after the watermark's floor.
    pub seen: HashSet<(String, i64)>,
    pub path_params_json: Option<String>,
    /// The newest updated date among the records read.
    pub newest: Option<DateTime<Utc>>,
    /// The provider's clock at its first answer that had one.
    pub provider_date: Option<DateTime<Utc>>,
    /// How far past the provider's clock a record may be dated and still move the watermark.
    pub future_tolerance: std::time::Duration,
    pub now: DateTime<Utc>,
}

impl Judge for WatermarkJudge<'_> {
    fn judge(
        &mut self,
        page: &PageRead<'_>,
        records: &[&RawValue],
        report: &mut PollReport,
    ) -> Result<Vec<StagedEvent>, PollError> {
        self.provider_date = self.provider_date.or(page.page.date);
        let fraction_digits = self.dates.updated.format.fraction_digits();
        let mut staged = Vec::new();
        for raw in records {
            let Some(record) = decode_or_note(raw, report) else {
                continue;
            };
            let observed = match detect::observe(&record, self.id_field, self.dates) {
                Ok(observed) => observed,
                Err(problem) => {
                    note_problem(report, problem.to_string());
                    continue;
                }
            };
            let provider_time = self.provider_date.unwrap_or(self.now);
            match detect::future_dated(&observed, provider_time, self.future_tolerance) {
                Some(problem) => {
                    report.future_dated += 1;
                    note_problem(report, problem.to_string());
                }
                None => self.newest = self.newest.max(Some(observed.updated)),
            }
            let kind = match self.previous {
                None => StagedKind::Baseline,
                Some(watermark) => {
                    let seen =
                        |id: &str, updated| self.seen.contains(&(id.to_owned(), nanos(updated)));
                    match detect::judge(&observed, watermark, self.lookback, seen) {
                        Verdict::New(event_type) => StagedKind::Event(event_type),
                        Verdict::AlreadySeen | Verdict::BeforeWindow => continue,
                    }
                }
            };
            staged.push(self.staged_event(&observed, kind, fraction_digits, &record));
        }
        Ok(staged)
    }
}

impl WatermarkJudge<'_> {
    fn staged_event(
        &self,
        observed: &Observed,
        kind: StagedKind,
        fraction_digits: u8,
        record: &Value,
    ) -> StagedEvent {
        // A baseline row only marks (id, updated) as seen; its record is never sent.
        let raw = match kind {
            StagedKind::Baseline => Vec::new(),
            StagedKind::Event(_) => records::raw_json(record).into_bytes(),
        };
        StagedEvent {
            record_id: observed.id.clone(),
            updated: Some(nanos(observed.updated)),
            kind,
            date: detect::event_date(observed.updated, fraction_digits),
            path_params_json: self.path_params_json.clone(),
            raw,
            hash: None,
        }
    }
}

/// Window mode: the provider filtered by the previous poll's time, so every record it returns
/// is a change, unless its (id, content hash) pair was already seen by an overlapping window.
/// Every record is staged: a new one as an UPDATED event, a seen one as a row that only
/// refreshes its pair's time (so the window keeps it while a later window can return it).
pub(super) struct WindowJudge<'a> {
    pub id_field: &'a FieldPath,
    /// `false` on the first poll: a baseline, every record only remembered.
    pub has_previous: bool,
    /// The (id, hash) pairs the window remembers.
    pub seen: HashSet<(String, String)>,
    pub path_params_json: Option<String>,
    /// The poll's time on the provider's clock: its first answer's `Date`, else ocpoll's.
    pub provider_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl WindowJudge<'_> {
    /// The provider's time of the poll (fixed by its first page).
    pub fn provider_time(&self) -> DateTime<Utc> {
        self.provider_time.unwrap_or(self.now)
    }
}

impl Judge for WindowJudge<'_> {
    fn judge(
        &mut self,
        page: &PageRead<'_>,
        records: &[&RawValue],
        report: &mut PollReport,
    ) -> Result<Vec<StagedEvent>, PollError> {
        self.provider_time = self.provider_time.or(page.page.date).or(Some(self.now));
        // A record was changed before the page that returned it was served.
        let seen_at = nanos(page.page.date.unwrap_or(self.now));
        let date = detect::event_date(self.provider_time(), 3);
        let mut staged = Vec::new();
        for raw in records {
            let Some(record) = decode_or_note(raw, report) else {
                continue;
            };
            let record = &record;
            let id = match detect::record_id(record, self.id_field) {
                Ok(id) => id,
                Err(problem) => {
                    note_problem(report, problem.to_string());
                    continue;
                }
            };
            let hash = detect::content_hash(record);
            let new = self.has_previous && !self.seen.contains(&(id.clone(), hash.clone()));
            let (kind, raw) = match new {
                true => (
                    StagedKind::Event(EventType::Updated),
                    records::raw_json(record).into_bytes(),
                ),
                false => (StagedKind::Baseline, Vec::new()),
            };
            staged.push(StagedEvent {
                record_id: id,
                updated: Some(seen_at),
                kind,
                date: date.clone(),
                path_params_json: self.path_params_json.clone(),
                raw,
                hash: Some(hash),
            });
        }
        Ok(staged)
    }
}

/// Snapshot mode: every record is compared with the previous poll's snapshot (its content
/// hash), and the whole set is staged as the next snapshot.
pub(super) struct SnapshotJudge<'a> {
    pub store: &'a Mutex<Store>,
    pub key: &'a ResourceKey,
    pub id_field: &'a FieldPath,
    pub poll: PollId,
    /// `false` on the first poll: the snapshot is only recorded.
    pub has_previous: bool,
    pub path_params_json: Option<String>,
    /// The events' date: the poll's time.
    pub date: String,
}

impl Judge for SnapshotJudge<'_> {
    fn judge(
        &mut self,
        _page: &PageRead<'_>,
        records: &[&RawValue],
        report: &mut PollReport,
    ) -> Result<Vec<StagedEvent>, PollError> {
        let mut items = Vec::new();
        for raw in records {
            let Some(record) = decode_or_note(raw, report) else {
                continue;
            };
            let record = &record;
            match detect::record_id(record, self.id_field) {
                Ok(id) => items.push((id, detect::content_hash(record), records::raw_json(record))),
                Err(problem) => note_problem(report, problem.to_string()),
            }
        }
        let ids: Vec<&str> = items.iter().map(|(id, _, _)| id.as_str()).collect();
        let mut store = Store::locked(self.store);
        let previous_hashes = store.snapshot_hashes(self.key, &ids)?;
        let mut staged = Vec::new();
        for (id, hash, raw) in &items {
            let verdict =
                detect::snapshot_verdict(previous_hashes.get(id).map(String::as_str), hash);
            if let (Some(event_type), true) = (verdict, self.has_previous) {
                staged.push(StagedEvent {
                    record_id: id.clone(),
                    updated: None,
                    kind: StagedKind::Event(event_type),
                    date: self.date.clone(),
                    path_params_json: self.path_params_json.clone(),
                    raw: raw.clone().into_bytes(),
                    hash: None,
                });
            }
        }
        store.stage_snapshot(self.poll, &items)?;
        Ok(staged)
    }
}
