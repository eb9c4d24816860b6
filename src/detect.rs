//! Change detection: which records of a poll become events, and how the watermark moves
//! (docs/design.md#change-detection). Pure: no I/O and no clock reads; "now" is always a parameter.
//!
//! The poller calls these functions per record and per poll:
//!
//! 1. [`query_since`] gives the instant the poll asks the provider for (`${date:...}`).
//! 2. For each record, [`observe`] reads its id and dates; a [`RecordProblem`] is reported for
//!    that record and the poll goes on (a bad record never moves the watermark).
//! 3. [`judge`] decides whether the record is a new change, using the committed seen set of
//!    (id, updated) pairs. The poller dedupes new changes within one poll itself (its staging
//!    table is unique on (id, updated)), because a provider may send a record twice across pages.
//! 4. [`event_type`] tells CREATED from UPDATED; [`event_date`] writes docs/events.md's `date`.
//! 5. At the end of the poll, [`next_watermark`] (or [`baseline_watermark`] on the first poll)
//!    gives the new watermark, the poll's new pairs join the seen set, and seen pairs older
//!    than [`seen_floor`] of the new watermark are dropped.
//!
//! The first poll of a resource (no watermark yet) is a baseline: it judges nothing, puts every
//! (id, updated) pair it reads into the seen set and emits no events.
//!
//! Snapshot mode (no `datesConfiguration`) compares content hashes instead:
//! [`content_hash`] and [`snapshot_verdict`].
//!
//! Before any of that, [`within_size_limit`] sets aside records whose JSON is larger than
//! `[http] max_record_bytes`: each is a [`RecordProblem::TooLarge`], reported like a bad date.

use crate::dates::DateParseError;
use crate::instance::{DateField, DatesConfig, FieldPath};
use crate::json;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::Duration;

/// How far back a resource's first poll (the baseline) looks, from ocpoll's clock.
const BASELINE_QUERY_WINDOW: TimeDelta = TimeDelta::hours(1);

/// How far before the provider's clock the watermark starts when the baseline saw no record:
/// a margin for records committed while the baseline ran.
const EMPTY_BASELINE_MARGIN: TimeDelta = TimeDelta::minutes(1);

/// Above this magnitude an f64 no longer holds every whole number, so an id read as one may
/// have been rounded (serde_json reads integers beyond 64 bits as f64).
const MAX_EXACT_F64_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53

/// What happened to a record. The strings are docs/events.md's `eventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    Created,
    Updated,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "CREATED",
            EventType::Updated => "UPDATED",
            EventType::Deleted => "DELETED",
        }
    }

    /// The inverse of [`EventType::as_str`], for reading event types back from the state.
    pub fn parse(text: &str) -> Option<EventType> {
        match text {
            "CREATED" => Some(EventType::Created),
            "UPDATED" => Some(EventType::Updated),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// How many events of each type a poll committed: three counters in place, where a map
/// allocated a tree node per report (a 10,000-instance tick keeps every poll's report until
/// its summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts([u64; 3]);

impl EventCounts {
    const TYPES: [EventType; 3] = [EventType::Created, EventType::Updated, EventType::Deleted];

    pub fn add(&mut self, event_type: EventType, count: u64) {
        self.0[event_type as usize] += count;
    }

    pub fn get(&self, event_type: EventType) -> u64 {
        self.0[event_type as usize]
    }

    /// The types with at least one event, in the order CREATED, UPDATED, DELETED.
    pub fn iter(&self) -> impl Iterator<Item = (EventType, u64)> + '_ {
        Self::TYPES
            .into_iter()
            .map(|event_type| (event_type, self.get(event_type)))
            .filter(|(_, count)| *count > 0)
    }
}

impl FromIterator<(EventType, u64)> for EventCounts {
    fn from_iter<I: IntoIterator<Item = (EventType, u64)>>(pairs: I) -> Self {
        let mut counts = EventCounts::default();
        for (event_type, count) in pairs {
            counts.add(event_type, count);
        }
        counts
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What change detection needs from one record (watermark mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// docs/events.md `objectId`.
    pub id: String,
    pub updated: DateTime<Utc>,
    /// `None` when no created field is configured or the record has none (null or absent).
    pub created: Option<DateTime<Utc>>,
}

/// Why one record cannot take part in change detection. The poller reports it with the
/// resource and goes on with the next record. Messages name the configured field and quote
/// only the offending value (date texts are truncated by [`DateParseError`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("record has no `{field}` (idField)")]
    MissingId { field: String },
    #[error("record's `{field}` (idField) is an empty string")]
    EmptyId { field: String },
    #[error("record's `{field}` (idField) is a JSON {found}, not a string or a number")]
    IdNotScalar { field: String, found: &'static str },
    #[error(
        "record's `{field}` (idField) is {shown}, too large to be read exactly; quote it as a string"
    )]
    IdImprecise { field: String, shown: String },
    #[error("record {id}: no `{field}` date")]
    MissingDate { id: String, field: String },
    #[error("record {id}: `{field}`: {source}")]
    BadDate {
        id: String,
        field: String,
        // Boxed: the problem travels in every `Result` of `observe`, most of which are `Ok`.
        source: Box<DateParseError>,
    },
    #[error("record could not be decoded: {reason}")]
    Undecodable { reason: String },
    #[error(
        "record {}: its JSON is larger than {limit} bytes ([http] max_record_bytes)",
        .id.as_deref().unwrap_or("(id unreadable)")
    )]
    TooLarge { id: Option<String>, limit: usize },
    #[error(
        "record {id}: dated in the future ({updated}, the provider's clock said {provider_time}; \
         [poll] future_tolerance_seconds {tolerance_seconds}): sent, but the watermark does not \
         move past it"
    )]
    FutureDated {
        id: String,
        updated: String,
        provider_time: String,
        tolerance_seconds: u64,
    },
}

impl RecordProblem {
    /// The record's id, when the problem came after the id was read.
    pub fn record_id(&self) -> Option<&str> {
        match self {
            RecordProblem::MissingDate { id, .. }
            | RecordProblem::BadDate { id, .. }
            | RecordProblem::FutureDated { id, .. } => Some(id),
            RecordProblem::TooLarge { id, .. } => id.as_deref(),
            _ => None,
        }
    }
}

/// The records of a page whose JSON, as the provider sent it, is at most `limit` bytes, and a
/// problem for each of the others (with its id, when it can be read). A page of at most `limit`
/// bytes cannot hold a larger record, so the common case costs nothing.
pub fn within_size_limit<'b>(
    mut records: Vec<&'b RawValue>,
    page_bytes: usize,
    limit: usize,
    id_field: &FieldPath,
) -> (Vec<&'b RawValue>, Vec<RecordProblem>) {
    let mut problems = Vec::new();
    if page_bytes > limit {
        records.retain(|record| {
            let fits = record.get().len() <= limit;
            if !fits {
                let id = decode(record)
                    .ok()
                    .and_then(|record| record_id(&record, id_field).ok());
                problems.push(RecordProblem::TooLarge { id, limit });
            }
            fits
        });
    }
    (records, problems)
}

/// One record of a page, decoded. The page reader checked its syntax; what can still fail is
/// a number serde_json cannot hold (`1e400`): a problem of that record, not of the page.
pub fn decode(record: &RawValue) -> Result<Value, RecordProblem> {
    serde_json::from_str(record.get()).map_err(|error| RecordProblem::Undecodable {
        reason: error.to_string(),
    })
}

/// docs/events.md `objectId` of a record.
///
/// Strings are taken as they are; numbers are printed without a fraction or an exponent
/// (`4711` and `4711.0` both give `"4711"`). Booleans, objects and arrays are rejected: no real
/// provider identifies records by them, and turning them into text would hide a wrong
/// `idField`. With an empty `idField` the identity is `sha256:` plus the record's
/// [`content_hash`].
pub fn record_id(record: &Value, id_field: &FieldPath) -> Result<String, RecordProblem> {
    if id_field.is_empty() {
        return Ok(format!("sha256:{}", content_hash(record)));
    }
    let field = || id_field.to_string();
    match id_field.get(record) {
        None | Some(Value::Null) => Err(RecordProblem::MissingId { field: field() }),
        Some(Value::String(text)) if text.is_empty() => {
            Err(RecordProblem::EmptyId { field: field() })
        }
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(number)) => {
            number_id(number).ok_or_else(|| RecordProblem::IdImprecise {
                field: field(),
                shown: number.to_string(),
            })
        }
        Some(other) => Err(RecordProblem::IdNotScalar {
            field: field(),
            found: json::type_name(other),
        }),
    }
}

/// Whole numbers print as integers; `None` when an f64 may already have been rounded.
fn number_id(number: &serde_json::Number) -> Option<String> {
    if let Some(integer) = number.as_i64() {
        return Some(integer.to_string());
    }
    if let Some(integer) = number.as_u64() {
        return Some(integer.to_string());
    }
    let float = number.as_f64()?;
    if float.abs() >= MAX_EXACT_F64_INTEGER {
        return None;
    }
    // Rust's `Display` for f64 never uses an exponent and drops a zero fraction ("4711").
    Some(format!("{float}"))
}

/// The record as canonical JSON: object keys sorted (by Unicode code point), no whitespace,
/// strings escaped and numbers printed as serde_json prints them. Two records that are equal
/// as JSON, whatever the provider's key order or spacing, give the same text.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::String(text) => write_json_string(text, out),
        // Scalars print the same whatever the map order, so serde_json's own text is canonical.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_json_string(text: &str, out: &mut String) {
    // Serializing a str cannot fail; the empty fallback only avoids a panic path.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// Hex SHA-256 of the record's [`canonical_json`]: snapshot mode's "did it change" and the
/// identity of records under an empty `idField`.
pub fn content_hash(record: &Value) -> String {
    let digest = Sha256::digest(canonical_json(record).as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        // Writing into a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Reads a record's id and dates (watermark mode). A created field that is configured but
/// absent or null in the record is `None` (the event is UPDATED): many providers leave it
/// empty. A created date that is present but unparsable is a problem like a bad updated date.
pub fn observe(
    record: &Value,
    id_field: &FieldPath,
    dates: &DatesConfig,
) -> Result<Observed, RecordProblem> {
    let id = record_id(record, id_field)?;
    let updated = match read_date(record, &dates.updated, &id)? {
        Some(updated) => updated,
        None => {
            return Err(RecordProblem::MissingDate {
                id,
                field: dates.updated.path.to_string(),
            });
        }
    };
    let created = match &dates.created {
        Some(field) => read_date(record, field, &id)?,
        None => None,
    };
    Ok(Observed {
        id,
        updated,
        created,
    })
}

fn read_date(
    record: &Value,
    field: &DateField,
    id: &str,
) -> Result<Option<DateTime<Utc>>, RecordProblem> {
    match field.path.get(record) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => field
            .format
            .parse_json(value, &field.zone)
            .map(Some)
            .map_err(|source| RecordProblem::BadDate {
                id: id.to_owned(),
                field: field.path.to_string(),
                source: Box::new(source),
            }),
    }
}

/// What [`judge`] decided about one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A change not yet turned into an event.
    New(EventType),
    /// Inside the lookback window and already turned into an event.
    AlreadySeen,
    /// Older than the lookback window: the seen set no longer remembers it, so it is ignored
    /// (the provider sent more than was asked for, or a late commit came after the window).
    BeforeWindow,
}

/// docs/design.md#change-detection: a record is new when its updated date is after the watermark, or inside
/// the lookback window (at least the watermark instant itself) and its (id, updated) pair was
/// not turned into an event yet. `seen(id, updated)` answers that from the committed state.
/// `watermark` is the one the poll started from; it is also what CREATED is measured against.
pub fn judge(
    observed: &Observed,
    watermark: DateTime<Utc>,
    lookback: Duration,
    seen: impl Fn(&str, DateTime<Utc>) -> bool,
) -> Verdict {
    // Pairs above the watermark are in the seen set only when a record dated in the future
    // was sent without moving the watermark ([`future_dated`]); a `state reset` that rewinds
    // the watermark clears the seen set, so re-emitting after a reset still happens.
    let is_new = if observed.updated >= seen_floor(watermark, lookback) {
        !seen(&observed.id, observed.updated)
    } else {
        return Verdict::BeforeWindow;
    };
    if is_new {
        Verdict::New(event_type(observed, watermark))
    } else {
        Verdict::AlreadySeen
    }
}

/// CREATED when the record was created after the previous watermark (the receiver cannot have
/// heard of it), or when its created date equals its updated date (never updated since);
/// UPDATED otherwise, and always without a created date.
pub fn event_type(observed: &Observed, previous_watermark: DateTime<Utc>) -> EventType {
    match observed.created {
        Some(created) if created > previous_watermark || created == observed.updated => {
            EventType::Created
        }
        _ => EventType::Updated,
    }
}

/// The instant a poll asks the provider for (the `${date:...}` macro): the first poll of a
/// resource (no watermark yet) looks one hour back from ocpoll's clock; later polls start at
/// the watermark minus the lookback window.
pub fn query_since(
    watermark: Option<DateTime<Utc>>,
    lookback: Duration,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match watermark {
        None => subtract(now, BASELINE_QUERY_WINDOW),
        Some(watermark) => seen_floor(watermark, lookback),
    }
}

/// A record whose updated date is more than `tolerance` past the provider's clock for this
/// poll (its `Date`, else ocpoll's): it is still judged and sent, but must not move the
/// watermark, or one record dated 9999 would make every later poll ask for changes since 9999.
pub fn future_dated(
    observed: &Observed,
    provider_time: DateTime<Utc>,
    tolerance: Duration,
) -> Option<RecordProblem> {
    let tolerance = TimeDelta::from_std(tolerance).unwrap_or(TimeDelta::MAX);
    let limit = provider_time.checked_add_signed(tolerance)?;
    (observed.updated > limit).then(|| RecordProblem::FutureDated {
        id: observed.id.clone(),
        updated: observed
            .updated
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        provider_time: provider_time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        tolerance_seconds: tolerance.num_seconds().max(0) as u64,
    })
}

/// The watermark after a resource's first poll: the newest updated date it saw; when it saw
/// none, the provider's clock (its `Date` header, else ocpoll's) minus a minute. Either way the
/// provider's clock, so clock skew between ocpoll and the provider cannot lose or flood events.
pub fn baseline_watermark(
    newest_seen: Option<DateTime<Utc>>,
    provider_date: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    newest_seen.unwrap_or_else(|| subtract(provider_date.unwrap_or(now), EMPTY_BASELINE_MARGIN))
}

/// The watermark after a finished poll: the newest updated date among the poll's records that
/// parsed. It never moves back, so a provider that answers with older records (or none) cannot
/// make ocpoll re-read what it already handled.
pub fn next_watermark(
    previous: DateTime<Utc>,
    newest_in_poll: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match newest_in_poll {
        Some(newest) if newest > previous => newest,
        _ => previous,
    }
}

/// The oldest updated date the seen set must remember for this watermark: seen pairs with
/// `updated >= floor` are kept, older ones can be deleted. With no lookback it is the
/// watermark instant itself (records sharing the watermark's timestamp).
///
/// Raising `lookbackSeconds` later widens the window past what the seen set remembers, so the
/// first polls after such a change may repeat events from the widened part (at least once,
/// never lost); lowering it is harmless.
pub fn seen_floor(watermark: DateTime<Utc>, lookback: Duration) -> DateTime<Utc> {
    let lookback = TimeDelta::from_std(lookback).unwrap_or(TimeDelta::MAX);
    subtract(watermark, lookback)
}

/// `instant - delta`, clamped at the earliest representable instant instead of overflowing
/// (a huge `lookbackSeconds` means "everything").
fn subtract(instant: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    instant
        .checked_sub_signed(delta)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Snapshot mode: CREATED for an id the previous snapshot did not have, UPDATED when its
/// content hash changed, `None` when unchanged. Ids of the previous snapshot that the current
/// poll did not see are DELETED; the poller finds those in its state.
pub fn snapshot_verdict(previous_hash: Option<&str>, hash: &str) -> Option<EventType> {
    match previous_hash {
        None => Some(EventType::Created),
        Some(previous) if previous != hash => Some(EventType::Updated),
        Some(_) => None,
    }
}

/// docs/events.md's `date`: RFC 3339 in UTC with `Z` and exactly `fraction_digits` fraction digits
/// (at most 9; trailing zeros kept; none for 0). Digits beyond are cut, not rounded: the
/// date was read with that precision, so nothing is lost.
pub fn event_date(updated: DateTime<Utc>, fraction_digits: u8) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(30);
    let year = updated.year();
    // A leap second (nanosecond >= 1e9 in chrono) is written as second 60 by chrono.
    if (0..=9999).contains(&year) && updated.nanosecond() < 1_000_000_000 {
        // What `%Y-%m-%dT%H:%M:%S` writes, without parsing the pattern for every event of a
        // bulk poll (chrono's pattern reading was 2% of its CPU).
        let _ = write!(
            text,
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            updated.month(),
            updated.day(),
            updated.hour(),
            updated.minute(),
            updated.second()
        );
    } else {
        // A signed year, or a leap second: chrono's own spelling.
        let _ = write!(text, "{}", updated.format("%Y-%m-%dT%H:%M:%S"));
    }
    let digits = usize::from(fraction_digits.min(9));
    if digits > 0 {
        // A leap second shows as nanosecond >= 1e9 in chrono; keep it within nine digits.
        let nanos = updated.nanosecond().min(999_999_999);
        // The first `digits` of the nine, truncated.
        let shown = nanos / 10u32.pow(9 - digits as u32);
        let _ = write!(text, ".{shown:0digits$}");
    }
    text.push('Z');
    text
}

#[cfg(test)]
mod tests;
