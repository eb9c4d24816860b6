use super::*;
use crate::dates::{DateFormat, Zone};
use chrono::TimeZone;
use serde_json::json;

mod model;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|date| date.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("bad test date {text}: {error}"))
}

fn field(path: &str, format: &str) -> DateField {
    DateField {
        path: FieldPath::parse(path),
        format: DateFormat::new(format).expect("test format compiles"),
        zone: Zone::utc(),
    }
}

fn salesloft_dates() -> DatesConfig {
    DatesConfig {
        updated: field("updated_at", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"),
        created: Some(field("created_at", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")),
    }
}

fn id_path() -> FieldPath {
    FieldPath::parse("id")
}

fn observed(id: &str, updated: &str, created: Option<&str>) -> Observed {
    Observed {
        id: id.into(),
        updated: at(updated),
        created: created.map(at),
    }
}

// --- event types -------------------------------------------------------------------------

#[test]
fn event_types_print_as_events_md_says_and_read_back() {
    for (event_type, text) in [
        (EventType::Created, "CREATED"),
        (EventType::Updated, "UPDATED"),
        (EventType::Deleted, "DELETED"),
    ] {
        assert_eq!(event_type.as_str(), text);
        assert_eq!(event_type.to_string(), text);
        assert_eq!(EventType::parse(text), Some(event_type));
    }
    assert_eq!(EventType::parse("created"), None);
}

// --- record ids --------------------------------------------------------------------------

#[test]
fn string_ids_are_taken_as_they_are() {
    let record = json!({"id": " 00A-7 "});
    assert_eq!(record_id(&record, &id_path()).unwrap(), " 00A-7 ");
}

#[test]
fn numeric_ids_print_without_fraction_or_exponent() {
    let cases = [
        ("4711", "4711"),
        ("4711.0", "4711"),
        ("-12", "-12"),
        ("1e3", "1000"),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("12.5", "12.5"),
        ("1.5e-7", "0.00000015"),
    ];
    for (text, expected) in cases {
        let record: Value = serde_json::from_str(&format!("{{\"id\": {text}}}")).unwrap();
        assert_eq!(record_id(&record, &id_path()).unwrap(), expected, "{text}");
    }
}

#[test]
fn ids_too_large_for_exact_reading_are_a_problem_not_a_silent_rounding() {
    let record: Value = serde_json::from_str(r#"{"id": 123456789012345678901234567890}"#).unwrap();
    let problem = record_id(&record, &id_path()).unwrap_err();
    assert!(
        matches!(problem, RecordProblem::IdImprecise { .. }),
        "{problem:?}"
    );
    assert!(problem.to_string().contains("`id` (idField)"), "{problem}");
}

#[test]
fn ids_that_are_not_strings_or_numbers_are_problems_naming_the_field() {
    let path = FieldPath::parse("meta.key");
    let cases = [
        (json!({"meta": {"key": true}}), "boolean"),
        (json!({"meta": {"key": {"a": 1}}}), "object"),
        (json!({"meta": {"key": [1]}}), "array"),
    ];
    for (record, found) in cases {
        let problem = record_id(&record, &path).unwrap_err();
        assert_eq!(
            problem,
            RecordProblem::IdNotScalar {
                field: "meta.key".into(),
                found
            }
        );
        assert!(problem.to_string().contains("`meta.key`"), "{problem}");
    }
    for record in [
        json!({"meta": {}}),
        json!({"meta": {"key": null}}),
        json!([1]),
    ] {
        assert_eq!(
            record_id(&record, &path),
            Err(RecordProblem::MissingId {
                field: "meta.key".into()
            })
        );
    }
    assert_eq!(
        record_id(&json!({"meta": {"key": ""}}), &path),
        Err(RecordProblem::EmptyId {
            field: "meta.key".into()
        })
    );
}

#[test]
fn nested_id_fields_are_followed() {
    let record = json!({"metadata": {"uid": 9}});
    assert_eq!(
        record_id(&record, &FieldPath::parse("metadata.uid")).unwrap(),
        "9"
    );
}

#[test]
fn empty_id_field_identifies_a_record_by_its_canonical_json_hash() {
    let empty = FieldPath::parse("");
    let a: Value = serde_json::from_str(r#"{"b": 1, "a": [true, null]}"#).unwrap();
    let same_reordered: Value =
        serde_json::from_str("{ \"a\" : [ true , null ] ,\n \"b\":1 }").unwrap();
    let different = json!({"a": [true, null], "b": 2});
    let id = record_id(&a, &empty).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(id.len(), "sha256:".len() + 64);
    assert!(
        id["sha256:".len()..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(id, format!("sha256:{}", content_hash(&a)));
    assert_eq!(record_id(&same_reordered, &empty).unwrap(), id);
    assert_ne!(record_id(&different, &empty).unwrap(), id);
}

// --- canonical JSON and content hashes -----------------------------------------------------

#[test]
fn canonical_json_sorts_keys_at_every_level_and_drops_whitespace() {
    let value: Value = serde_json::from_str(
        r#"{ "z": {"y": 1, "x": [ {"b": 2, "a": 1}, "s" ]}, "a": null, "m": 1.5, "é": false }"#,
    )
    .unwrap();
    assert_eq!(
        canonical_json(&value),
        r#"{"a":null,"m":1.5,"z":{"x":[{"a":1,"b":2},"s"],"y":1},"é":false}"#
    );
}

#[test]
fn canonical_json_escapes_keys_and_strings() {
    let value = json!({"quo\"te": "line\nbreak\u{1}", "back\\slash": "tab\t"});
    let text = canonical_json(&value);
    assert_eq!(
        text,
        r#"{"back\\slash":"tab\t","quo\"te":"line\nbreak\u0001"}"#
    );
    // And it is still the same JSON.
    let reparsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reparsed, value);
}

#[test]
fn content_hash_is_hex_sha256_of_the_canonical_text() {
    // sha256("{}"), a published constant.
    assert_eq!(
        content_hash(&json!({})),
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    // sha256("{\"a\":1,\"b\":2}")
    assert_eq!(
        content_hash(&json!({"b": 2, "a": 1})),
        content_hash(&json!({"a": 1, "b": 2}))
    );
    assert_ne!(
        content_hash(&json!({"a": 1})),
        content_hash(&json!({"a": 2}))
    );
}

// --- observe ------------------------------------------------------------------------------

#[test]
fn observe_reads_id_updated_and_created() {
    let record = json!({"id": 4711, "updated_at": "2026-11-25T12:59:58.123456+00:00",
                        "created_at": "2026-01-02T03:04:05.000000+01:00"});
    let seen = observe(&record, &id_path(), &salesloft_dates()).unwrap();
    assert_eq!(
        seen,
        observed(
            "4711",
            "2026-11-25T12:59:58.123456Z",
            Some("2026-01-02T02:04:05Z")
        )
    );
}

#[test]
fn observe_treats_a_missing_or_null_created_date_as_unknown() {
    for record in [
        json!({"id": "a", "updated_at": "2026-11-25T12:59:58.000001Z"}),
        json!({"id": "a", "updated_at": "2026-11-25T12:59:58.000001Z", "created_at": null}),
    ] {
        let seen = observe(&record, &id_path(), &salesloft_dates()).unwrap();
        assert_eq!(seen.created, None);
    }
    let no_created_field = DatesConfig {
        created: None,
        ..salesloft_dates()
    };
    let record =
        json!({"id": "a", "updated_at": "2026-11-25T12:59:58.000001Z", "created_at": "garbage"});
    assert_eq!(
        observe(&record, &id_path(), &no_created_field)
            .unwrap()
            .created,
        None
    );
}

#[test]
fn observe_reports_a_missing_updated_date_with_the_record_id() {
    let record = json!({"id": 7, "updated_at": null});
    let problem = observe(&record, &id_path(), &salesloft_dates()).unwrap_err();
    assert_eq!(
        problem,
        RecordProblem::MissingDate {
            id: "7".into(),
            field: "updated_at".into()
        }
    );
    assert_eq!(problem.record_id(), Some("7"));
    assert_eq!(problem.to_string(), "record 7: no `updated_at` date");
}

#[test]
fn observe_reports_unparsable_dates_with_id_field_text_and_pattern() {
    let record = json!({"id": 7, "updated_at": "25/11/2026"});
    let problem = observe(&record, &id_path(), &salesloft_dates()).unwrap_err();
    let message = problem.to_string();
    assert!(
        matches!(problem, RecordProblem::BadDate { .. }),
        "{problem:?}"
    );
    assert_eq!(problem.record_id(), Some("7"));
    for part in [
        "record 7",
        "`updated_at`",
        "25/11/2026",
        "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    ] {
        assert!(message.contains(part), "{part} missing in: {message}");
    }

    let bad_created =
        json!({"id": 8, "updated_at": "2026-11-25T12:59:58.000001Z", "created_at": 5});
    let problem = observe(&bad_created, &id_path(), &salesloft_dates()).unwrap_err();
    assert!(problem.to_string().contains("`created_at`"), "{problem}");
}

#[test]
fn observe_reports_id_problems_before_date_problems() {
    let record = json!({"updated_at": "nonsense"});
    assert_eq!(
        observe(&record, &id_path(), &salesloft_dates()),
        Err(RecordProblem::MissingId { field: "id".into() })
    );
}

#[test]
fn observe_reads_epoch_dates() {
    let dates = DatesConfig {
        updated: field("updated", "milliseconds"),
        created: None,
    };
    let record = json!({"id": "x", "updated": 1_795_957_205_123_i64});
    let seen = observe(&record, &id_path(), &dates).unwrap();
    assert_eq!(seen.updated, at("2026-11-29T13:00:05.123Z"));
}

// --- judge --------------------------------------------------------------------------------

const NO_LOOKBACK: Duration = Duration::ZERO;

fn nothing_seen(_: &str, _: DateTime<Utc>) -> bool {
    false
}

#[test]
fn a_record_after_the_watermark_is_new() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed("a", "2026-11-25T12:00:00.000001Z", None);
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, nothing_seen),
        Verdict::New(EventType::Updated)
    );
    // A pair above the watermark in the seen set was sent dated in the future, without moving
    // the watermark: not again. (A `state reset` that rewinds the watermark clears the seen
    // set, so it re-emits; before future-dated records, this asserted New here.)
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, |_, _| true),
        Verdict::AlreadySeen
    );
}

#[test]
fn a_record_at_the_watermark_instant_is_new_only_when_its_pair_was_not_seen() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed("b", "2026-11-25T12:00:00Z", None);
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, nothing_seen),
        Verdict::New(EventType::Updated)
    );
    let seen_a_only = |id: &str, updated: DateTime<Utc>| id == "a" && updated == watermark;
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, seen_a_only),
        Verdict::New(EventType::Updated)
    );
    let seen_b = |id: &str, updated: DateTime<Utc>| id == "b" && updated == watermark;
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, seen_b),
        Verdict::AlreadySeen
    );
}

#[test]
fn a_record_before_the_watermark_without_lookback_is_ignored() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed("a", "2026-11-25T11:59:59.999999Z", None);
    assert_eq!(
        judge(&record, watermark, NO_LOOKBACK, nothing_seen),
        Verdict::BeforeWindow
    );
}

#[test]
fn lookback_catches_late_commits_and_skips_what_was_delivered() {
    let watermark = at("2026-11-25T12:00:00Z");
    let lookback = Duration::from_secs(60);
    let late = observed("late", "2026-11-25T11:59:30Z", None);
    let delivered = observed("old", "2026-11-25T11:59:30Z", None);
    let seen =
        |id: &str, updated: DateTime<Utc>| id == "old" && updated == at("2026-11-25T11:59:30Z");
    assert_eq!(
        judge(&late, watermark, lookback, seen),
        Verdict::New(EventType::Updated)
    );
    assert_eq!(
        judge(&delivered, watermark, lookback, seen),
        Verdict::AlreadySeen
    );
    // The window's first instant belongs to it; one microsecond earlier does not.
    let at_floor = observed("f", "2026-11-25T11:59:00Z", None);
    let before_floor = observed("f", "2026-11-25T11:58:59.999999Z", None);
    assert_eq!(
        judge(&at_floor, watermark, lookback, nothing_seen),
        Verdict::New(EventType::Updated)
    );
    assert_eq!(
        judge(&before_floor, watermark, lookback, nothing_seen),
        Verdict::BeforeWindow
    );
}

#[test]
fn a_newer_version_of_a_seen_record_is_new() {
    let watermark = at("2026-11-25T12:00:00Z");
    let seen = |id: &str, updated: DateTime<Utc>| id == "a" && updated == watermark;
    let newer_but_within = observed("a", "2026-11-25T11:59:50Z", None);
    // Same id, a different updated date inside the window: a different change.
    assert_eq!(
        judge(&newer_but_within, watermark, Duration::from_secs(30), seen),
        Verdict::New(EventType::Updated)
    );
}

#[test]
fn judge_gives_the_event_type_against_the_starting_watermark() {
    let watermark = at("2026-11-25T12:00:00Z");
    let created_after = observed("a", "2026-11-25T12:00:05Z", Some("2026-11-25T12:00:01Z"));
    assert_eq!(
        judge(&created_after, watermark, NO_LOOKBACK, nothing_seen),
        Verdict::New(EventType::Created)
    );
}

// --- event types --------------------------------------------------------------------------

#[test]
fn created_after_the_previous_watermark_is_created() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed(
        "a",
        "2026-11-25T12:05:00Z",
        Some("2026-11-25T12:00:00.001Z"),
    );
    assert_eq!(event_type(&record, watermark), EventType::Created);
}

#[test]
fn created_at_or_before_the_previous_watermark_is_updated() {
    let watermark = at("2026-11-25T12:00:00Z");
    for created in ["2026-11-25T12:00:00Z", "2026-01-01T00:00:00Z"] {
        let record = observed("a", "2026-11-25T12:05:00Z", Some(created));
        assert_eq!(
            event_type(&record, watermark),
            EventType::Updated,
            "{created}"
        );
    }
}

#[test]
fn created_equal_to_updated_is_created_even_inside_the_lookback_window() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed("a", "2026-11-25T11:59:00Z", Some("2026-11-25T11:59:00Z"));
    assert_eq!(event_type(&record, watermark), EventType::Created);
}

#[test]
fn without_a_created_date_every_change_is_updated() {
    let watermark = at("2026-11-25T12:00:00Z");
    let record = observed("a", "2026-11-25T12:05:00Z", None);
    assert_eq!(event_type(&record, watermark), EventType::Updated);
}

// --- query window and watermark -------------------------------------------------------------

#[test]
fn the_first_poll_looks_one_hour_back_from_ocpolls_clock() {
    let now = at("2026-11-25T12:00:00Z");
    assert_eq!(
        query_since(None, Duration::from_secs(600), now),
        at("2026-11-25T11:00:00Z")
    );
}

#[test]
fn later_polls_start_at_the_watermark_minus_lookback() {
    let now = at("2030-01-01T00:00:00Z");
    let watermark = at("2026-11-25T12:00:00.5Z");
    assert_eq!(query_since(Some(watermark), NO_LOOKBACK, now), watermark);
    assert_eq!(
        query_since(Some(watermark), Duration::from_secs(90), now),
        at("2026-11-25T11:58:30.5Z")
    );
}

#[test]
fn a_huge_lookback_means_everything_and_does_not_overflow() {
    let watermark = at("2026-11-25T12:00:00Z");
    assert_eq!(
        seen_floor(watermark, Duration::MAX),
        DateTime::<Utc>::MIN_UTC
    );
    assert_eq!(
        query_since(
            Some(watermark),
            Duration::from_secs(u64::MAX / 2),
            watermark
        ),
        DateTime::<Utc>::MIN_UTC
    );
}

#[test]
fn the_baseline_watermark_is_the_newest_record_seen() {
    let newest = at("2026-11-25T11:59:58Z");
    assert_eq!(
        baseline_watermark(
            Some(newest),
            Some(at("2026-11-25T12:00:00Z")),
            at("2020-01-01T00:00:00Z")
        ),
        newest
    );
}

#[test]
fn an_empty_baseline_uses_the_providers_clock_minus_a_minute() {
    let provider = at("2026-11-25T12:00:00Z");
    let ocpoll = at("2026-11-25T14:00:00Z"); // two hours of skew
    assert_eq!(
        baseline_watermark(None, Some(provider), ocpoll),
        at("2026-11-25T11:59:00Z")
    );
    assert_eq!(
        baseline_watermark(None, None, ocpoll),
        at("2026-11-25T13:59:00Z")
    );
}

#[test]
fn the_watermark_never_moves_back() {
    let previous = at("2026-11-25T12:00:00Z");
    assert_eq!(next_watermark(previous, None), previous);
    assert_eq!(
        next_watermark(previous, Some(at("2026-11-25T11:00:00Z"))),
        previous
    );
    assert_eq!(next_watermark(previous, Some(previous)), previous);
    let newer = at("2026-11-25T12:00:00.000001Z");
    assert_eq!(next_watermark(previous, Some(newer)), newer);
}

#[test]
fn the_seen_floor_keeps_at_least_the_watermark_instant() {
    let watermark = at("2026-11-25T12:00:00Z");
    assert_eq!(seen_floor(watermark, NO_LOOKBACK), watermark);
    assert_eq!(
        seen_floor(watermark, Duration::from_millis(1500)),
        at("2026-11-25T11:59:58.5Z")
    );
}

// --- snapshot mode ------------------------------------------------------------------------

#[test]
fn snapshot_verdicts() {
    assert_eq!(snapshot_verdict(None, "h1"), Some(EventType::Created));
    assert_eq!(snapshot_verdict(Some("h1"), "h2"), Some(EventType::Updated));
    assert_eq!(snapshot_verdict(Some("h1"), "h1"), None);
}

// --- event dates --------------------------------------------------------------------------

#[test]
fn event_dates_have_exactly_the_formats_fraction_digits() {
    let date = Utc.with_ymd_and_hms(2026, 11, 25, 12, 59, 58).unwrap()
        + TimeDelta::nanoseconds(123_400_000);
    assert_eq!(event_date(date, 0), "2026-11-25T12:59:58Z");
    assert_eq!(event_date(date, 1), "2026-11-25T12:59:58.1Z");
    assert_eq!(event_date(date, 3), "2026-11-25T12:59:58.123Z");
    assert_eq!(event_date(date, 6), "2026-11-25T12:59:58.123400Z");
    assert_eq!(event_date(date, 9), "2026-11-25T12:59:58.123400000Z");
    assert_eq!(event_date(date, 12), "2026-11-25T12:59:58.123400000Z");
    // Cut, not rounded: .1234 with two digits is .12, and .999 with one digit stays in its second.
    assert_eq!(event_date(date, 2), "2026-11-25T12:59:58.12Z");
    let late = at("2026-11-25T23:59:59.999Z");
    assert_eq!(event_date(late, 1), "2026-11-25T23:59:59.9Z");
}

#[test]
fn event_dates_are_written_as_chronos_pattern_writes_them() {
    // The pattern event_date spelled out before it wrote the digits itself.
    let by_pattern = |date: DateTime<Utc>, digits: usize| {
        let mut text = date.format("%Y-%m-%dT%H:%M:%S").to_string();
        if digits > 0 {
            let all_nine = format!("{:09}", date.nanosecond().min(999_999_999));
            text.push('.');
            text.push_str(&all_nine[..digits]);
        }
        text + "Z"
    };
    let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
        .unwrap()
        .and_utc();
    let dates = [
        at("2026-11-25T12:59:58.123456789Z"),
        at("0000-01-01T00:00:00Z"),
        at("0999-02-03T04:05:06.7Z"),
        at("9999-12-31T23:59:59.999999999Z"),
        Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).unwrap(),
        leap,
    ];
    for date in dates {
        for digits in 0..=9 {
            assert_eq!(
                event_date(date, digits as u8),
                by_pattern(date, digits),
                "{date:?}"
            );
        }
    }
}

#[test]
fn event_dates_match_events_md_test_vector() {
    let record = json!({"id": 4711, "updated_at": "2026-11-25T12:59:58.123456+00:00"});
    let dates = salesloft_dates();
    let seen = observe(&record, &id_path(), &dates).unwrap();
    assert_eq!(
        event_date(seen.updated, dates.updated.format.fraction_digits()),
        "2026-11-25T12:59:58.123456Z"
    );
}

// --- record size limit ----------------------------------------------------------------------

#[test]
fn records_larger_than_the_limit_are_problems_and_the_rest_pass() {
    let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
    let small = raw(r#"{"id":"s","note":"x"}"#);
    let large = raw(&format!(r#"{{"id": "L", "note": "{}"}}"#, "y".repeat(200)));
    let records = || vec![&*small, &*large, &*small];
    // A page no larger than the limit is never measured.
    let (kept, problems) = within_size_limit(records(), 100, 100, &id_path());
    assert_eq!(kept.len(), 3);
    assert!(problems.is_empty());

    let (kept, problems) = within_size_limit(records(), 1_000, 100, &id_path());
    let kept: Vec<&str> = kept.iter().map(|record| record.get()).collect();
    assert_eq!(kept, [small.get(), small.get()]);
    assert_eq!(
        problems,
        vec![RecordProblem::TooLarge {
            id: Some("L".into()),
            limit: 100
        }]
    );
    assert_eq!(problems[0].record_id(), Some("L"));
    assert_eq!(
        problems[0].to_string(),
        "record L: its JSON is larger than 100 bytes ([http] max_record_bytes)"
    );
    // Exactly at the limit is fine: `{"id":"s","note":"x"}` is 21 bytes.
    let (kept, problems) = within_size_limit(vec![&*small], 1_000, 21, &id_path());
    assert_eq!((kept.len(), problems.len()), (1, 0));
    let (kept, problems) = within_size_limit(vec![&*small], 1_000, 20, &id_path());
    assert_eq!((kept.len(), problems.len()), (0, 1));
    // The record is measured as the provider sent it, its spaces included.
    let spaced = raw(r#"{ "id" : "s" , "note" : "x" }"#);
    let (kept, _) = within_size_limit(vec![&*spaced], 1_000, 21, &id_path());
    assert!(kept.is_empty());
}

#[test]
fn a_record_serde_json_cannot_hold_is_a_problem_of_that_record() {
    let record = RawValue::from_string(r#"{"id": "n", "amount": 1e400}"#.to_owned()).unwrap();
    let problem = decode(&record).unwrap_err();
    assert!(
        problem
            .to_string()
            .starts_with("record could not be decoded: number out of range"),
        "{problem}"
    );
    let fine = RawValue::from_string(r#"{"id": "n"}"#.to_owned()).unwrap();
    assert_eq!(decode(&fine).unwrap(), json!({"id": "n"}));
}

#[test]
fn a_record_past_the_providers_clock_plus_tolerance_is_future_dated() {
    let provider = at("2026-03-01T10:00:00Z");
    let tolerance = Duration::from_secs(300);
    let within = observed("a", "2026-03-01T10:05:00Z", None);
    assert_eq!(future_dated(&within, provider, tolerance), None);
    let past = observed("b", "2026-03-01T10:05:01Z", None);
    let problem = future_dated(&past, provider, tolerance).expect("future-dated");
    assert_eq!(problem.record_id(), Some("b"));
    assert_eq!(
        problem.to_string(),
        "record b: dated in the future (2026-03-01T10:05:01Z, the provider's clock said \
         2026-03-01T10:00:00Z; [poll] future_tolerance_seconds 300): sent, but the watermark \
         does not move past it"
    );
    let far = observed("c", "9999-12-31T23:59:59Z", None);
    assert!(future_dated(&far, provider, tolerance).is_some());
}

#[test]
fn a_seen_pair_above_the_watermark_is_not_sent_again() {
    // A future-dated record was sent without moving the watermark: its pair is in the seen
    // set, above the watermark, and the next poll must not send it again.
    let watermark = at("2026-03-01T10:00:00Z");
    let future = observed("f", "9999-12-31T23:59:59Z", None);
    let seen = |id: &str, updated: DateTime<Utc>| id == "f" && updated == future.updated;
    assert_eq!(
        judge(&future, watermark, Duration::ZERO, seen),
        Verdict::AlreadySeen
    );
    let fresh = observed("g", "2026-03-01T10:00:01Z", None);
    assert!(matches!(
        judge(&fresh, watermark, Duration::ZERO, seen),
        Verdict::New(_)
    ));
}
