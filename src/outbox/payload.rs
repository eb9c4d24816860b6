//! The notification body of docs/events.md, built once when a notification enters the outbox and
//! then sent byte for byte on every retry. Pure: the caller supplies the event id, the dates
//! and the randomness.
//!
//! Every string goes through serde_json (escaping included); provider records travel as
//! [`RawRecord`]s, the provider's own JSON text with only insignificant whitespace removed, so
//! key order and number spelling survive. [`Batcher`] splits a poll's events into
//! notifications within the count and byte limits, computing body sizes exactly.

use crate::detect::EventType;
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Crockford's base32 alphabet, as ULIDs use it.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of every id [`EventIds`] makes; [`Batcher`] sizes bodies with it.
pub const EVENT_ID_LEN: usize = 26;

const ULID_RANDOM_BITS: u32 = 80;
const ULID_MAX_MILLIS: i64 = (1 << 48) - 1;

/// What a notification says about its instance.
#[derive(Clone, Copy, Debug)]
pub struct InstanceMeta<'a> {
    /// The instance's name (`instanceId`).
    pub instance_id: &'a str,
    /// `element.key` (`elementKey`).
    pub element_key: &'a str,
    /// `instanceTags`; empty gives `[]`.
    pub tags: &'a [String],
}

/// A provider record as JSON text: what the provider sent, minus insignificant whitespace
/// (docs/events.md wants a compact body and `raw` equal to the provider's record in its key order).
#[derive(Clone, Debug)]
pub struct RawRecord(Box<RawValue>);

impl RawRecord {
    /// A record stored as text (the staging table, a DELETED record's last version). Fails
    /// when the text is not JSON.
    pub fn from_json_text(text: &str) -> Result<RawRecord, serde_json::Error> {
        RawRecord::from_json_string(text.to_owned())
    }

    /// [`RawRecord::from_json_text`] taking the text: compact text (what a poll stages,
    /// serde_json's own output) is checked and kept as it is, not copied again (a bulk poll's
    /// commit reads 200,000 staged records back).
    pub fn from_json_string(text: String) -> Result<RawRecord, serde_json::Error> {
        let raw = RawValue::from_string(text)?;
        if needs_compacting(raw.get()) {
            return Ok(RawRecord(compact(&raw)));
        }
        Ok(RawRecord(raw))
    }

    /// A record ocpoll made itself (a DELETED record's `{"id": ...}` when no version was kept).
    pub fn from_value(value: &serde_json::Value) -> RawRecord {
        // serde_json writes a Value compactly, so no second pass is needed.
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => RawRecord(raw),
            // Only maps with non-string keys fail, and a Value has none.
            Err(_) => RawRecord(Box::<RawValue>::default()),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

/// Drops whitespace outside strings. The input is valid JSON, so the result is too.
fn compact(raw: &RawValue) -> Box<RawValue> {
    let text = raw.get();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for character in text.chars() {
        if in_string {
            out.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
        } else if character == '"' {
            in_string = true;
            out.push(character);
        } else if !matches!(character, ' ' | '\t' | '\n' | '\r') {
            out.push(character);
        }
    }
    RawValue::from_string(out).unwrap_or_else(|_| raw.to_owned())
}

/// True when valid JSON `text` has whitespace outside its strings. A scan of bytes: UTF-8
/// continuation bytes are never ASCII, so they cannot be taken for a quote or a space.
fn needs_compacting(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            return true;
        }
    }
    false
}

/// One event of a notification: docs/events.md's `events[]` entry plus its record for `raw`.
#[derive(Clone, Debug)]
pub struct EventEntry {
    pub event_type: EventType,
    /// `objectId` ([`crate::detect::record_id`]).
    pub object_id: String,
    /// `date` ([`crate::detect::event_date`]).
    pub date: String,
    /// `pathParams` of a fanned-out resource; `None` leaves the member out.
    pub path_params: Option<BTreeMap<String, String>>,
    pub raw: RawRecord,
}

/// The body of one notification, compact UTF-8 JSON, member order as docs/events.md shows it.
pub fn build_body(
    event_id: &str,
    event_date: DateTime<Utc>,
    meta: &InstanceMeta,
    object_type: &str,
    events: &[EventEntry],
) -> Vec<u8> {
    let body = Envelope {
        message: Message {
            event_id,
            instance_id: meta.instance_id,
            element_key: meta.element_key,
            instance_tags: meta.tags,
            event_date: notification_date(event_date),
            events: EventList {
                events,
                object_type,
                element_key: meta.element_key,
            },
            raw: RawSection {
                object_type,
                events,
            },
        },
    };
    // Every member is a string, a string list or already-valid raw JSON: serializing into
    // memory cannot fail, whatever the provider sent.
    serde_json::to_vec(&body).expect("a notification body always serializes")
}

/// `eventDate`: RFC 3339 UTC with milliseconds.
pub fn notification_date(detected: DateTime<Utc>) -> String {
    crate::detect::event_date(detected, 3)
}

#[derive(serde::Serialize)]
struct Envelope<'a> {
    message: Message<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    event_id: &'a str,
    instance_id: &'a str,
    element_key: &'a str,
    instance_tags: &'a [String],
    event_date: String,
    events: EventList<'a>,
    raw: RawSection<'a>,
}

struct EventList<'a> {
    events: &'a [EventEntry],
    object_type: &'a str,
    element_key: &'a str,
}

impl Serialize for EventList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.events.len()))?;
        for event in self.events {
            seq.serialize_element(&EventJson::new(event, self.object_type, self.element_key))?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventJson<'a> {
    event_type: &'static str,
    object_type: &'a str,
    object_id: &'a str,
    element_key: &'a str,
    date: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_params: Option<&'a BTreeMap<String, String>>,
}

impl<'a> EventJson<'a> {
    fn new(event: &'a EventEntry, object_type: &'a str, element_key: &'a str) -> Self {
        EventJson {
            event_type: event.event_type.as_str(),
            object_type,
            object_id: &event.object_id,
            element_key,
            date: &event.date,
            path_params: event.path_params.as_ref(),
        }
    }
}

/// `"raw": {"<objectType>": [records...]}`
struct RawSection<'a> {
    object_type: &'a str,
    events: &'a [EventEntry],
}

impl Serialize for RawSection<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.object_type, &RawList(self.events))?;
        map.end()
    }
}

struct RawList<'a>(&'a [EventEntry]);

impl Serialize for RawList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(&*event.raw.0)?;
        }
        seq.end()
    }
}

/// `event.notification.batch.size` and `.batch.bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// At most this many events per notification (at least 1 is used).
    pub max_events: usize,
    /// At most this many body bytes per notification, unless a single event is larger.
    pub max_bytes: usize,
}

/// Splits one poll's events, in order, into notifications within [`BatchLimits`]. Memory is
/// one batch. Body sizes are exact for ids of [`EVENT_ID_LEN`] characters and event dates in
/// years 0 to 9999 (what [`EventIds`] and [`notification_date`] produce).
pub struct Batcher<'a> {
    limits: BatchLimits,
    meta: InstanceMeta<'a>,
    object_type: &'a str,
    /// Body size with no events at all.
    empty_body_bytes: usize,
    pending: Vec<EventEntry>,
    pending_bytes: usize,
}

impl<'a> Batcher<'a> {
    pub fn new(limits: BatchLimits, meta: InstanceMeta<'a>, object_type: &'a str) -> Self {
        let placeholder_id = "0".repeat(EVENT_ID_LEN);
        let empty_body_bytes = build_body(
            &placeholder_id,
            DateTime::UNIX_EPOCH,
            &meta,
            object_type,
            &[],
        )
        .len();
        Batcher {
            limits,
            meta,
            object_type,
            empty_body_bytes,
            pending: Vec::new(),
            pending_bytes: empty_body_bytes,
        }
    }

    /// Adds the next event; returns the batch it closed, if adding it would have gone past a
    /// limit.
    pub fn push(&mut self, event: EventEntry) -> Option<Vec<EventEntry>> {
        let added = self.added_bytes(&event);
        let full_by_count = self.pending.len() >= self.limits.max_events.max(1);
        let full_by_bytes = self.pending_bytes.saturating_add(added) > self.limits.max_bytes;
        let closed = if !self.pending.is_empty() && (full_by_count || full_by_bytes) {
            self.pending_bytes = self.empty_body_bytes;
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        };
        // The first event of a batch has no separating commas.
        let added = if self.pending.is_empty() {
            added - 2
        } else {
            added
        };
        self.pending_bytes += added;
        self.pending.push(event);
        closed
    }

    /// The last batch, if any event is left.
    pub fn finish(self) -> Option<Vec<EventEntry>> {
        (!self.pending.is_empty()).then_some(self.pending)
    }

    /// The exact body size of the events pushed since the last closed batch.
    #[cfg(test)]
    pub fn pending_body_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// What one more event adds to a body: its `events[]` entry, its record in `raw`, and a
    /// comma before each when it is not the first.
    fn added_bytes(&self, event: &EventEntry) -> usize {
        let entry = EventJson::new(event, self.object_type, self.meta.element_key);
        let entry_bytes = serde_json::to_vec(&entry).map_or(0, |json| json.len());
        entry_bytes + event.raw.as_str().len() + 2
    }
}

/// A single `eventId` (what [`EventIds`] makes, without its ordering), for tests of the
/// encoding: a ULID (48 bits of milliseconds since 1970, then 80 random bits, in Crockford
/// base32), so ids sort by creation time. The caller supplies the randomness.
#[cfg(test)]
pub fn new_event_id(now: DateTime<Utc>, random: u128) -> String {
    let millis = now.timestamp_millis().clamp(0, ULID_MAX_MILLIS);
    encode_ulid(millis, random)
}

fn encode_ulid(millis: i64, random: u128) -> String {
    let random_mask = (1u128 << ULID_RANDOM_BITS) - 1;
    let value = (u128::from(millis.unsigned_abs()) << ULID_RANDOM_BITS) | (random & random_mask);
    // 26 characters of 5 bits hold 130 bits: the first character carries the top 3.
    (0..EVENT_ID_LEN)
        .map(|index| {
            let shift = 125 - 5 * index;
            char::from(CROCKFORD[((value >> shift) & 0x1f) as usize])
        })
        .collect()
}

/// Makes `eventId`s: ULIDs (48 bits of milliseconds since 1970, then 80 random bits, in
/// Crockford base32, so ids sort by creation time; the caller supplies the randomness) that
/// strictly increase even within one millisecond or when the clock steps
/// back (the next id then reuses the previous millisecond with the random part plus one), so
/// the notifications of one poll sort in the order they were built.
#[derive(Debug, Default)]
pub struct EventIds {
    last: Option<(i64, u128)>,
}

impl EventIds {
    pub fn next(&mut self, now: DateTime<Utc>, random: u128) -> String {
        let random_mask = (1u128 << ULID_RANDOM_BITS) - 1;
        let millis = now.timestamp_millis().clamp(0, ULID_MAX_MILLIS);
        let (millis, random) = match self.last {
            Some((last_millis, last_random)) if millis <= last_millis => {
                if last_random < random_mask {
                    (last_millis, last_random + 1)
                } else {
                    // The random part ran out within one millisecond: borrow the next one.
                    ((last_millis + 1).min(ULID_MAX_MILLIS), 0)
                }
            }
            _ => (millis, random & random_mask),
        };
        self.last = Some((millis, random));
        encode_ulid(millis, random)
    }
}

#[cfg(test)]
mod tests;
