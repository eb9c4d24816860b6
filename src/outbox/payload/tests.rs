use super::*;
use crate::dates::{DateFormat, Zone};
use crate::detect::{event_date, observe};
use crate::instance::{DateField, DatesConfig, FieldPath};
use proptest::prelude::*;
use serde_json::{Value, json};

/// docs/events.md's test vector, 456 bytes.
const VECTOR_BODY: &str = r#"{"message":{"eventId":"01JDQ3Z8W6B0S5V8M4K2N7P9QX","instanceId":"salesloft-prod","elementKey":"salesloft","instanceTags":["crm"],"eventDate":"2026-11-25T13:00:05.123Z","events":[{"eventType":"UPDATED","objectType":"contacts","objectId":"4711","elementKey":"salesloft","date":"2026-11-25T12:59:58.123456Z"}],"raw":{"contacts":[{"id":4711,"first_name":"Ada","updated_at":"2026-11-25T12:59:58.123456+00:00","created_at":"2026-01-02T03:04:05.000000+00:00"}]}}}"#;

/// The provider's record as it might come over the wire: spaced, keys in the provider's order.
const PROVIDER_RECORD: &str = r#"{ "id": 4711,
  "first_name": "Ada",
  "updated_at": "2026-11-25T12:59:58.123456+00:00",
  "created_at": "2026-01-02T03:04:05.000000+00:00" }"#;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|date| date.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("bad test date {text}: {error}"))
}

fn raw(text: &str) -> RawRecord {
    RawRecord::from_json_text(text).unwrap_or_else(|error| panic!("bad test JSON {text}: {error}"))
}

fn entry(object_id: &str, record: RawRecord) -> EventEntry {
    EventEntry {
        event_type: EventType::Updated,
        object_id: object_id.into(),
        date: "2026-11-25T12:59:58Z".into(),
        path_params: None,
        raw: record,
    }
}

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[test]
fn the_test_vector_is_reproduced_byte_for_byte_from_its_parts() {
    // The event is derived the way the poller derives it: id and date from the record.
    let raw_record: Box<RawValue> = serde_json::from_str(PROVIDER_RECORD).unwrap();
    let record: Value = serde_json::from_str(raw_record.get()).unwrap();
    let format = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX";
    let dates = DatesConfig {
        updated: DateField {
            path: FieldPath::parse("updated_at"),
            format: DateFormat::new(format).unwrap(),
            zone: Zone::utc(),
        },
        created: None,
    };
    let observed = observe(&record, &FieldPath::parse("id"), &dates).unwrap();
    let event = EventEntry {
        event_type: EventType::Updated,
        object_id: observed.id,
        date: event_date(observed.updated, dates.updated.format.fraction_digits()),
        path_params: None,
        raw: RawRecord::from_json_text(raw_record.get()).unwrap(),
    };
    let instance_tags = tags(&["crm"]);
    let meta = InstanceMeta {
        instance_id: "salesloft-prod",
        element_key: "salesloft",
        tags: &instance_tags,
    };
    let body = build_body(
        "01JDQ3Z8W6B0S5V8M4K2N7P9QX",
        at("2026-11-25T13:00:05.123Z"),
        &meta,
        "contacts",
        std::slice::from_ref(&event),
    );
    assert_eq!(String::from_utf8_lossy(&body), VECTOR_BODY);
    assert_eq!(body.len(), 456);

    // And the batcher's size prediction is exact for it.
    let limits = BatchLimits {
        max_events: 10,
        max_bytes: 1 << 20,
    };
    let mut batcher = Batcher::new(limits, meta, "contacts");
    assert!(batcher.push(event).is_none());
    assert_eq!(batcher.pending_body_bytes(), 456);
}

#[test]
fn event_date_has_milliseconds_even_when_zero() {
    let body = build_body(
        "01JDQ3Z8W6B0S5V8M4K2N7P9QX",
        at("2026-11-25T13:00:05Z"),
        &InstanceMeta {
            instance_id: "i",
            element_key: "k",
            tags: &[],
        },
        "contacts",
        &[],
    );
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text,
        r#"{"message":{"eventId":"01JDQ3Z8W6B0S5V8M4K2N7P9QX","instanceId":"i","elementKey":"k","instanceTags":[],"eventDate":"2026-11-25T13:00:05.000Z","events":[],"raw":{"contacts":[]}}}"#
    );
}

#[test]
fn odd_characters_in_names_keys_and_ids_are_escaped() {
    let odd_tags = tags(&["quote\"tag", "new\nline"]);
    let meta = InstanceMeta {
        instance_id: "back\\slash",
        element_key: "ctl\u{1}key",
        tags: &odd_tags,
    };
    let mut path_params = BTreeMap::new();
    path_params.insert("calendar\"Id".to_string(), "a/b\u{2028}c".to_string());
    let event = EventEntry {
        event_type: EventType::Created,
        object_id: "id\"with\\odd\tchars</script>".into(),
        date: "2026-11-25T12:59:58Z".into(),
        path_params: Some(path_params),
        raw: raw(r#"{"emoji":"😀","esc":"\"\u0000"}"#),
    };
    let body = build_body(
        &"0".repeat(26),
        at("2026-11-25T13:00:05Z"),
        &meta,
        "calendars/{calendar\"Id}/events",
        &[event],
    );
    let parsed: Value = serde_json::from_slice(&body).expect("body is valid JSON");
    let message = &parsed["message"];
    assert_eq!(message["instanceId"], "back\\slash");
    assert_eq!(message["elementKey"], "ctl\u{1}key");
    assert_eq!(message["instanceTags"], json!(["quote\"tag", "new\nline"]));
    let event = &message["events"][0];
    assert_eq!(event["eventType"], "CREATED");
    assert_eq!(event["objectType"], "calendars/{calendar\"Id}/events");
    assert_eq!(event["objectId"], "id\"with\\odd\tchars</script>");
    assert_eq!(event["elementKey"], "ctl\u{1}key");
    assert_eq!(event["pathParams"], json!({"calendar\"Id": "a/b\u{2028}c"}));
    assert_eq!(
        message["raw"]["calendars/{calendar\"Id}/events"],
        json!([{"emoji": "😀", "esc": "\"\u{0}"}])
    );
    // Compact: no value here holds a space or a raw newline, so none may appear at all.
    assert!(!body.contains(&b'\n') && !body.contains(&b' '));
}

#[test]
fn path_params_follow_the_date_and_are_left_out_when_absent() {
    let mut params = BTreeMap::new();
    params.insert("calendarId".to_string(), "primary".to_string());
    let mut with = entry("e1", raw(r#"{"id":"e1"}"#));
    with.path_params = Some(params);
    let without = entry("e2", raw(r#"{"id":"e2"}"#));
    let meta = InstanceMeta {
        instance_id: "g",
        element_key: "googlecalendar",
        tags: &[],
    };
    let body = build_body(
        &"0".repeat(26),
        at("2026-11-25T13:00:05Z"),
        &meta,
        "calendars/{calendarId}/events",
        &[with, without],
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#""date":"2026-11-25T12:59:58Z","pathParams":{"calendarId":"primary"}}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#""objectId":"e2","elementKey":"googlecalendar","date":"2026-11-25T12:59:58Z"}"#
        ),
        "{text}"
    );
    assert_eq!(text.matches("pathParams").count(), 1);
}

#[test]
fn raw_records_keep_the_providers_key_order_and_number_spelling() {
    let record = raw(
        "{\n  \"z\" : 1.50,\n  \"a\" : [ 1e3 , \"two words\\\" \\\\\" ],\t\"m\": {\"k\" : null} }",
    );
    assert_eq!(
        record.as_str(),
        r#"{"z":1.50,"a":[1e3,"two words\" \\"],"m":{"k":null}}"#
    );
    let already_compact = raw(r#"{"b":1,"a":"x y"}"#);
    assert_eq!(already_compact.as_str(), r#"{"b":1,"a":"x y"}"#);
    // Compact text is kept as it is: spaces and escaped quotes inside strings, multi-byte
    // characters; whitespace outside them (around the value too) goes.
    let kept = r#"{"a":"say \"hi\" ","é":["x\\", "y"]}"#;
    assert_eq!(
        RawRecord::from_json_string(kept.replace(", ", ","))
            .unwrap()
            .as_str(),
        r#"{"a":"say \"hi\" ","é":["x\\","y"]}"#
    );
    assert_eq!(
        RawRecord::from_json_string(format!(" {kept}\n"))
            .unwrap()
            .as_str(),
        r#"{"a":"say \"hi\" ","é":["x\\","y"]}"#
    );
    assert!(RawRecord::from_json_string("[1,".to_owned()).is_err());
    assert!(RawRecord::from_json_text("{not json").is_err());
    assert_eq!(
        RawRecord::from_value(&json!({"id": 5})).as_str(),
        r#"{"id":5}"#
    );
}

// --- batching -------------------------------------------------------------------------------

fn batch_all(
    limits: BatchLimits,
    meta: InstanceMeta,
    events: Vec<EventEntry>,
) -> Vec<Vec<EventEntry>> {
    let mut batcher = Batcher::new(limits, meta, "contacts");
    let mut batches = Vec::new();
    for event in events {
        batches.extend(batcher.push(event));
    }
    batches.extend(batcher.finish());
    batches
}

fn sized_event(index: usize, filler: usize) -> EventEntry {
    let record = json!({"id": index, "text": "x".repeat(filler)});
    entry(&index.to_string(), RawRecord::from_value(&record))
}

const META: InstanceMeta<'static> = InstanceMeta {
    instance_id: "inst",
    element_key: "key",
    tags: &[],
};

#[test]
fn batches_hold_at_most_the_event_count() {
    let events: Vec<EventEntry> = (0..25).map(|i| sized_event(i, 3)).collect();
    let limits = BatchLimits {
        max_events: 10,
        max_bytes: 1 << 20,
    };
    let sizes: Vec<usize> = batch_all(limits, META, events)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
}

#[test]
fn batches_stay_within_the_byte_limit_and_big_events_go_alone() {
    let events = vec![
        sized_event(0, 100),
        sized_event(1, 100),
        sized_event(2, 5000),
        sized_event(3, 100),
    ];
    let limits = BatchLimits {
        max_events: 1000,
        max_bytes: 700,
    };
    let batches = batch_all(limits, META, events);
    let ids: Vec<Vec<&str>> = batches
        .iter()
        .map(|batch| batch.iter().map(|e| e.object_id.as_str()).collect())
        .collect();
    assert_eq!(ids, [vec!["0", "1"], vec!["2"], vec!["3"]]);
}

#[test]
fn nothing_pushed_gives_no_batch_and_zero_events_is_treated_as_one() {
    let limits = BatchLimits {
        max_events: 0,
        max_bytes: 1 << 20,
    };
    assert!(batch_all(limits, META, Vec::new()).is_empty());
    let sizes: Vec<usize> = batch_all(limits, META, (0..3).map(|i| sized_event(i, 1)).collect())
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [1, 1, 1]);
}

proptest! {
    #[test]
    fn batches_keep_order_and_respect_both_limits(
        fillers in prop::collection::vec(0usize..400, 0..40),
        max_events in 1usize..12,
        max_bytes in 100usize..2000,
        with_params in any::<bool>(),
        millis in 0i64..4_000_000_000_000,
    ) {
        let events: Vec<EventEntry> = fillers
            .iter()
            .enumerate()
            .map(|(index, &filler)| {
                let mut event = sized_event(index, filler);
                if with_params {
                    event.path_params = Some(BTreeMap::from([("p".to_string(), format!("v{index}"))]));
                }
                event
            })
            .collect();
        let limits = BatchLimits { max_events, max_bytes };
        let batches = batch_all(limits, META, events.clone());

        let flattened: Vec<&str> = batches.iter().flatten().map(|e| e.object_id.as_str()).collect();
        let original: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
        prop_assert_eq!(flattened, original);

        let now = DateTime::from_timestamp_millis(millis).unwrap_or_default();
        for (index, batch) in batches.iter().enumerate() {
            prop_assert!(!batch.is_empty());
            prop_assert!(batch.len() <= max_events);
            let id = new_event_id(now, index as u128);
            let body = build_body(&id, now, &META, "contacts", batch);
            prop_assert!(
                body.len() <= max_bytes || batch.len() == 1,
                "batch of {} is {} bytes > {}", batch.len(), body.len(), max_bytes
            );
            // The batcher's size is exact, not just an upper bound.
            let mut batcher = Batcher::new(limits, META, "contacts");
            let mut closed = 0;
            for event in batch.iter().cloned() {
                closed += batcher.push(event).map_or(0, |_| 1);
            }
            prop_assert_eq!(closed, 0);
            prop_assert_eq!(batcher.pending_body_bytes(), body.len());
        }
    }

    #[test]
    fn event_ids_sort_by_time(
        a in 0i64..(1 << 48), b in 0i64..(1 << 48), ra in any::<u128>(), rb in any::<u128>()
    ) {
        let id_a = new_event_id(DateTime::from_timestamp_millis(a).unwrap_or_default(), ra);
        let id_b = new_event_id(DateTime::from_timestamp_millis(b).unwrap_or_default(), rb);
        prop_assert_eq!(id_a.len(), 26);
        prop_assert!(id_a.bytes().all(|c| CROCKFORD.contains(&c)));
        if a < b {
            prop_assert!(id_a < id_b, "{} !< {}", id_a, id_b);
        }
        prop_assert_eq!(&id_a[..10], &new_event_id(DateTime::from_timestamp_millis(a).unwrap_or_default(), 0)[..10]);
    }
}

#[test]
fn ulid_encoding_matches_the_spec_at_its_ends() {
    assert_eq!(
        new_event_id(DateTime::UNIX_EPOCH, 0),
        "00000000000000000000000000"
    );
    let max_time = DateTime::from_timestamp_millis((1 << 48) - 1).unwrap();
    assert_eq!(
        new_event_id(max_time, u128::MAX),
        "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    );
    // 1 ms and random 1 land in the last character of each part.
    let one_ms = DateTime::from_timestamp_millis(1).unwrap();
    assert_eq!(new_event_id(one_ms, 1), "00000000010000000000000001");
    // The ULID spec's example timestamp: 1469918176385 ms is "01ARYZ6S41".
    let example = DateTime::from_timestamp_millis(1_469_918_176_385).unwrap();
    assert_eq!(&new_event_id(example, 0)[..10], "01ARYZ6S41");
    // Before 1970 clamps to zero instead of wrapping.
    let before = DateTime::from_timestamp_millis(-5).unwrap();
    assert_eq!(&new_event_id(before, 0)[..10], "0000000000");
}

#[test]
fn event_ids_from_one_generator_strictly_increase_within_a_millisecond_and_across_clock_steps() {
    let mut ids = EventIds::default();
    let now = at("2026-11-25T13:00:05.123Z");
    let earlier = at("2026-11-25T13:00:04Z");
    let later = at("2026-11-25T13:00:06Z");
    let sequence = [
        ids.next(now, 500),
        ids.next(now, 7),             // smaller random, same millisecond
        ids.next(earlier, u128::MAX), // the clock stepped back
        ids.next(later, 0),
    ];
    for pair in sequence.windows(2) {
        assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
    }
    assert_eq!(&sequence[0][..10], &sequence[2][..10]);

    let mut exhausted = EventIds {
        last: Some((1000, (1u128 << 80) - 1)),
    };
    let next = exhausted.next(DateTime::from_timestamp_millis(1000).unwrap(), 0);
    assert_eq!(
        &next[..10],
        &new_event_id(DateTime::from_timestamp_millis(1001).unwrap(), 0)[..10]
    );
}
