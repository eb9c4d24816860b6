//! A received body into events (docs/instances.md#webhook-configuration): the records found by
//! `recordsPath` (default: the body if it is an array, else its single array member, else the
//! body as one record), each with its `objectId` (`idField`, or a content hash), `objectType`
//! (fixed or read from the record, else the body), `eventType` (`eventTypeField` through
//! `eventTypeMap`, default UPDATED) and `date` (`datesConfiguration`, else the receipt time).
//! Without `webhook.configuration` the whole body is one event of objectType `webhook`.
//!
//! Pure: bytes and the receipt time in, event groups (one per objectType, in order of first
//! appearance, as a notification carries one objectType) out. The result's `raw` records are
//! the provider's JSON: the whole body byte for byte (minus insignificant whitespace) when it is
//! the record, else re-serialized in the provider's key order.

use crate::detect::{self, EventType};
use crate::instance::{DateField, FieldPath, WebhookObjectType, WebhookStandardize};
use crate::outbox::payload::{EventEntry, RawRecord};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The objectType of events without a configured one.
pub const DEFAULT_OBJECT_TYPE: &str = "webhook";

/// Why a body cannot be standardized: the 400's reason (never quoting the body).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StandardizeError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body has no records at {0} (recordsPath)")]
    NoRecords(String),
    #[error("record {index}: {reason}")]
    Record { index: usize, reason: String },
}

/// The events of one objectType, in the order their records came.
#[derive(Clone, Debug)]
pub struct EventGroup {
    pub object_type: String,
    pub events: Vec<EventEntry>,
}

/// Standardizes `body` by `config` (`None`: the whole body is one event).
pub fn standardize(
    body: &[u8],
    config: Option<&WebhookStandardize>,
    received_at: DateTime<Utc>,
) -> Result<Vec<EventGroup>, StandardizeError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|error| StandardizeError::NotJson(error.to_string()))?;
    let Some(config) = config else {
        return Ok(vec![whole_body_event(body, &parsed, received_at)]);
    };
    let records = find_records(&parsed, config.records_path.as_ref())?;
    let mut groups: Vec<EventGroup> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let fail = |reason: String| StandardizeError::Record { index, reason };
        let object_type = object_type(config, record, &parsed).map_err(fail)?;
        let object_id = detect::record_id(record, &config.id_field)
            .map_err(|problem| fail(problem.to_string()))?;
        let event = EventEntry {
            event_type: event_type(config, record, &parsed),
            object_id,
            date: event_date(config, record, received_at),
            path_params: None,
            raw: raw_record(body, &parsed, record),
        };
        match groups
            .iter_mut()
            .find(|group| group.object_type == object_type)
        {
            Some(group) => group.events.push(event),
            None => groups.push(EventGroup {
                object_type,
                events: vec![event],
            }),
        }
    }
    Ok(groups)
}

/// `webhook.invalid.body: raw`: a body that could not be standardized as one event of
/// objectType `webhook`. A JSON body is the record; anything else travels as text (or base64
/// when it is not UTF-8) with its content type.
pub fn raw_event(body: &[u8], content_type: &str, received_at: DateTime<Utc>) -> EventGroup {
    if let Ok(parsed) = serde_json::from_slice::<Value>(body) {
        return whole_body_event(body, &parsed, received_at);
    }
    let record = match std::str::from_utf8(body) {
        Ok(text) => serde_json::json!({"contentType": content_type, "body": text}),
        Err(_) => serde_json::json!({
            "contentType": content_type,
            "bodyBase64": base64::engine::general_purpose::STANDARD.encode(body),
        }),
    };
    EventGroup {
        object_type: DEFAULT_OBJECT_TYPE.to_owned(),
        events: vec![EventEntry {
            event_type: EventType::Updated,
            object_id: format!("sha256:{}", detect::content_hash(&record)),
            date: detect::event_date(received_at, 3),
            path_params: None,
            raw: RawRecord::from_value(&record),
        }],
    }
}

fn whole_body_event(body: &[u8], parsed: &Value, received_at: DateTime<Utc>) -> EventGroup {
    EventGroup {
        object_type: DEFAULT_OBJECT_TYPE.to_owned(),
        events: vec![EventEntry {
            event_type: EventType::Updated,
            object_id: format!("sha256:{}", detect::content_hash(parsed)),
            date: detect::event_date(received_at, 3),
            path_params: None,
            raw: raw_record(body, parsed, parsed),
        }],
    }
}

/// The records of a body (see the module documentation).
fn find_records<'v>(
    body: &'v Value,
    path: Option<&FieldPath>,
) -> Result<Vec<&'v Value>, StandardizeError> {
    if let Some(path) = path {
        return match path.get(body) {
            Some(Value::Array(records)) => Ok(records.iter().collect()),
            Some(Value::Object(_)) => Ok(vec![path.get(body).expect("just found")]),
            _ => Err(StandardizeError::NoRecords(path.to_string())),
        };
    }
    match body {
        Value::Array(records) => Ok(records.iter().collect()),
        Value::Object(members) => {
            let mut arrays = members.values().filter_map(Value::as_array);
            match (arrays.next(), arrays.next()) {
                (Some(records), None) => Ok(records.iter().collect()),
                _ => Ok(vec![body]),
            }
        }
        _ => Err(StandardizeError::NoRecords(
            "the body (a JSON scalar, neither a record nor a list of them)".to_owned(),
        )),
    }
}

fn object_type(
    config: &WebhookStandardize,
    record: &Value,
    body: &Value,
) -> Result<String, String> {
    match &config.object_type {
        WebhookObjectType::Fixed(fixed) => Ok(fixed.clone()),
        WebhookObjectType::Field(path) => match in_record_or_body(path, record, body) {
            Some(value) => scalar_text(value)
                .filter(|text| !text.is_empty())
                .ok_or_else(|| format!("objectTypeField {path} is not a non-empty string")),
            None => Err(format!(
                "no objectTypeField {path} in the record or the body"
            )),
        },
    }
}

fn event_type(config: &WebhookStandardize, record: &Value, body: &Value) -> EventType {
    let Some(path) = &config.event_type_field else {
        return EventType::Updated;
    };
    let Some(text) = in_record_or_body(path, record, body).and_then(scalar_text) else {
        return EventType::Updated;
    };
    config
        .event_type_map
        .get(&text)
        .copied()
        .or_else(|| EventType::parse(&text.to_ascii_uppercase()))
        .unwrap_or(EventType::Updated)
}

/// The record's updated date as docs/events.md writes it; the receipt time when there is no
/// dates configuration or the record's date is missing or unreadable (the provider's event
/// happened; a date problem must not lose it).
fn event_date(config: &WebhookStandardize, record: &Value, received_at: DateTime<Utc>) -> String {
    let read = |field: &DateField| {
        let value = field.path.get(record)?;
        field.format.parse_json(value, &field.zone).ok()
    };
    match config
        .dates
        .as_ref()
        .map(|dates| (&dates.updated, read(&dates.updated)))
    {
        Some((field, Some(updated))) => detect::event_date(updated, field.format.fraction_digits()),
        _ => detect::event_date(received_at, 3),
    }
}

fn in_record_or_body<'v>(
    path: &FieldPath,
    record: &'v Value,
    body: &'v Value,
) -> Option<&'v Value> {
    path.get(record).or_else(|| path.get(body))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The record as `raw` carries it: the body's own text when the record is the whole body.
fn raw_record(body: &[u8], parsed: &Value, record: &Value) -> RawRecord {
    if std::ptr::eq(parsed, record)
        && let Ok(text) = std::str::from_utf8(body)
        && let Ok(raw) = RawRecord::from_json_text(text)
    {
        return raw;
    }
    RawRecord::from_value(record)
}

#[cfg(test)]
mod tests;
