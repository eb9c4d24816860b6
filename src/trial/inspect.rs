//! What `ocpoll try` says about one record, and the watermark it pretends to have. Pure.
//!
//! A real poll judges a record with [`detect::judge`] against the watermark and the seen set in
//! the state. `try` has no state, so it judges against the watermark alone: a record after it
//! is the event a poll would produce; one at the watermark (or inside the lookback window)
//! would be an event only if it was not sent before, which only the state knows.

use crate::detect::{self, EventType, Observed, RecordProblem};
use crate::instance::{DateField, PollMode, Resource};
use crate::trial::suggest::suggest_pattern;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// At most this many top-level keys are listed for a record without its id or date.
const MAX_KEYS_SHOWN: usize = 30;

/// What a poll would do with a record, as far as `try` can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Created,
    Updated,
    /// At the watermark or inside the lookback window: an event only if not sent before.
    AtWatermark,
    /// Older than the watermark (and its lookback window): ignored.
    OlderThanWatermark,
    /// Snapshot mode: compared with the previous poll's snapshot, which `try` does not read.
    Snapshot,
    /// The record's id or a date could not be read: a poll reports it and skips it.
    Unreadable,
}

impl Outcome {
    /// Words for the text output.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Created => "CREATED",
            Outcome::Updated => "UPDATED",
            Outcome::AtWatermark => "no event if already seen at the watermark",
            Outcome::OlderThanWatermark => "older than the watermark: no event",
            Outcome::Snapshot => "snapshot: compared with the previous poll",
            Outcome::Unreadable => "skipped: cannot be read",
        }
    }

    fn from_event(kind: EventType) -> Outcome {
        match kind {
            EventType::Created => Outcome::Created,
            // A watermark poll never produces DELETED; it cannot reach here.
            EventType::Updated | EventType::Deleted => Outcome::Updated,
        }
    }
}

/// One date field of one record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DateReport {
    /// The configured field path (`updated_at`, `metadata.updateTime`).
    pub field: String,
    /// The value as the record has it: a string as is, anything else as JSON.
    pub raw: Option<String>,
    /// The configured format.
    pub pattern: String,
    /// What it parsed to, RFC 3339 UTC.
    pub parsed: Option<String>,
    /// Why it did not parse.
    pub error: Option<String>,
    /// A common pattern that does read it, when the configured one does not.
    pub suggestion: Option<String>,
    /// What the suggested pattern reads, RFC 3339 UTC.
    pub suggestion_reads: Option<String>,
}

impl DateReport {
    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Everything `try` shows about one record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordReport {
    /// The docs/events.md `objectId`, when it could be read.
    pub id: Option<String>,
    pub updated: Option<DateReport>,
    pub created: Option<DateReport>,
    pub outcome: Outcome,
    /// Why the record cannot be read (no id, no date, a date that does not parse).
    pub problem: Option<String>,
    /// The record's top-level keys, when its id or updated date is missing.
    pub keys: Option<Vec<String>>,
}

impl RecordReport {
    /// True when a date was there but did not parse (the exit code's "date did not parse").
    pub fn has_date_error(&self) -> bool {
        self.updated.as_ref().is_some_and(DateReport::failed)
            || self.created.as_ref().is_some_and(DateReport::failed)
    }
}

/// Judges one record of a resource with dates against `watermark`.
pub fn inspect_record(
    record: &Value,
    resource: &Resource,
    watermark: DateTime<Utc>,
) -> RecordReport {
    let id = detect::record_id(record, &resource.id_field);
    let dates = match resource.mode() {
        PollMode::Watermark(dates) => dates,
        PollMode::Window => return window_record(record, id),
        PollMode::Snapshot => return snapshot_record(record, id),
    };
    let updated = read_date(record, &dates.updated);
    let created = dates.created.as_ref().map(|field| read_date(record, field));
    let mut report = RecordReport {
        id: id.as_ref().ok().cloned(),
        updated: Some(updated.report.clone()),
        created: created.as_ref().map(|read| read.report.clone()),
        outcome: Outcome::Unreadable,
        problem: None,
        keys: None,
    };
    let id = match id {
        Ok(id) => id,
        Err(problem) => {
            report.problem = Some(problem.to_string());
            report.keys = Some(top_level_keys(record));
            return report;
        }
    };
    let Some(updated_at) = updated.instant else {
        report.problem = Some(match &updated.report.error {
            Some(error) => format!("`{}`: {error}", updated.report.field),
            None => {
                report.keys = Some(top_level_keys(record));
                RecordProblem::MissingDate {
                    id: id.clone(),
                    field: updated.report.field.clone(),
                }
                .to_string()
            }
        });
        return report;
    };
    if let Some(read) = &created
        && let Some(error) = &read.report.error
    {
        report.problem = Some(format!("`{}`: {error}", read.report.field));
        return report;
    }
    let observed = Observed {
        id,
        updated: updated_at,
        created: created.and_then(|read| read.instant),
    };
    report.outcome = classify(&observed, watermark, resource.lookback);
    report
}

/// Window mode: the provider filtered by date, so every readable record is a change (UPDATED:
/// CREATED cannot be told); only the state knows which ones an overlapping window already sent.
fn window_record(record: &Value, id: Result<String, RecordProblem>) -> RecordReport {
    let mut report = snapshot_record(record, id);
    if report.outcome == Outcome::Snapshot {
        report.outcome = Outcome::Updated;
    }
    report
}

fn snapshot_record(record: &Value, id: Result<String, RecordProblem>) -> RecordReport {
    match id {
        Ok(id) => RecordReport {
            id: Some(id),
            updated: None,
            created: None,
            outcome: Outcome::Snapshot,
            problem: None,
            keys: None,
        },
        Err(problem) => RecordReport {
            id: None,
            updated: None,
            created: None,
            outcome: Outcome::Unreadable,
            problem: Some(problem.to_string()),
            keys: Some(top_level_keys(record)),
        },
    }
}

/// A record after the watermark is the event a poll would produce; at the watermark (or in
/// the lookback window) the seen set decides, which `try` does not have; older is ignored.
pub fn classify(observed: &Observed, watermark: DateTime<Utc>, lookback: Duration) -> Outcome {
    // Nothing counts as seen: `judge` then says New for everything inside the window, and
    // the window is told apart from "after the watermark" here.
    match detect::judge(observed, watermark, lookback, |_, _| false) {
        detect::Verdict::New(kind) if observed.updated > watermark => Outcome::from_event(kind),
        detect::Verdict::New(_) | detect::Verdict::AlreadySeen => Outcome::AtWatermark,
        detect::Verdict::BeforeWindow => Outcome::OlderThanWatermark,
    }
}

struct ReadDate {
    report: DateReport,
    instant: Option<DateTime<Utc>>,
}

fn read_date(record: &Value, field: &DateField) -> ReadDate {
    let mut report = DateReport {
        field: field.path.to_string(),
        raw: None,
        pattern: field.format.spec().to_owned(),
        parsed: None,
        error: None,
        suggestion: None,
        suggestion_reads: None,
    };
    let value = match field.path.get(record) {
        None | Some(Value::Null) => {
            return ReadDate {
                report,
                instant: None,
            };
        }
        Some(value) => value,
    };
    report.raw = Some(match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    match field.format.parse_json(value, &field.zone) {
        Ok(instant) => {
            report.parsed = Some(rfc3339(instant));
            ReadDate {
                report,
                instant: Some(instant),
            }
        }
        Err(error) => {
            report.error = Some(error.to_string());
            if let Some((pattern, reads)) = suggest_pattern(value, &field.zone) {
                report.suggestion = Some(pattern);
                report.suggestion_reads = Some(rfc3339(reads));
            }
            ReadDate {
                report,
                instant: None,
            }
        }
    }
}

/// The record's top-level keys (the first [`MAX_KEYS_SHOWN`]), or what it is instead.
pub fn top_level_keys(record: &Value) -> Vec<String> {
    match record {
        Value::Object(object) => {
            let mut keys: Vec<String> = object.keys().take(MAX_KEYS_SHOWN).cloned().collect();
            if object.len() > MAX_KEYS_SHOWN {
                keys.push("...".to_owned());
            }
            keys
        }
        _ => Vec::new(),
    }
}

/// RFC 3339 in UTC with as many fraction digits as needed.
pub fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads `--since`: RFC 3339 (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, midnight UTC),
/// or a duration before `now` (`1h`, `30m`, `2 days`, also with ` ago`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Some(midnight) = chrono::NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    let duration = trimmed.strip_suffix("ago").unwrap_or(trimmed).trim();
    humantime::parse_duration(duration)
        .ok()
        .and_then(|ago| TimeDelta::from_std(ago).ok())
        .and_then(|ago| now.checked_sub_signed(ago))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01) \
                 or a duration before now (1h, 30m, 2days)"
            )
        })
}

#[cfg(test)]
mod tests;
