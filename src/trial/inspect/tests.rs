use super::*;
use crate::dates::{DateFormat, Zone};
use crate::instance::{DatesConfig, FieldPath, OtherKeys, Pagination};
use crate::url_macros::UrlTemplate;
use serde_json::json;
use std::collections::BTreeMap;

const SECONDS: &str = "yyyy-MM-dd'T'HH:mm:ssXXX";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn field(path: &str, pattern: &str) -> DateField {
    DateField {
        path: FieldPath::parse(path),
        format: DateFormat::new(pattern).unwrap(),
        zone: Zone::utc(),
    }
}

fn resource(dates: Option<DatesConfig>, lookback_seconds: u64) -> Resource {
    Resource {
        key: "contacts".into(),
        url: UrlTemplate::parse("https://p.example/contacts").unwrap(),
        id_field: FieldPath::parse("id"),
        dates,
        records_path: None,
        pagination: Pagination::default(),
        path_params: BTreeMap::new(),
        lookback: Duration::from_secs(lookback_seconds),
        max_pages: None,
        max_poll_time: None,
        other_keys: OtherKeys::default(),
    }
}

fn with_dates(pattern: &str) -> Resource {
    resource(
        Some(DatesConfig {
            updated: field("updated_at", pattern),
            created: Some(field("created_at", pattern)),
        }),
        0,
    )
}

#[test]
fn records_after_the_watermark_are_created_or_updated() {
    let resource = with_dates(SECONDS);
    let watermark = at("2026-03-01T10:00:00Z");
    let created = inspect_record(
        &json!({"id": 1, "updated_at": "2026-03-01T10:05:00Z", "created_at": "2026-03-01T10:01:00Z"}),
        &resource,
        watermark,
    );
    assert_eq!(created.outcome, Outcome::Created);
    assert_eq!(created.id.as_deref(), Some("1"));
    let updated = created.updated.as_ref().unwrap();
    assert_eq!(updated.raw.as_deref(), Some("2026-03-01T10:05:00Z"));
    assert_eq!(updated.parsed.as_deref(), Some("2026-03-01T10:05:00Z"));
    assert!(!created.has_date_error());
    let updated = inspect_record(
        &json!({"id": "a", "updated_at": "2026-03-01T10:05:00+01:00", "created_at": "2026-01-01T00:00:00Z"}),
        &resource,
        at("2026-03-01T08:00:00Z"),
    );
    assert_eq!(updated.outcome, Outcome::Updated);
    assert_eq!(
        updated.updated.unwrap().parsed.as_deref(),
        Some("2026-03-01T09:05:00Z")
    );
}

#[test]
fn records_at_or_before_the_watermark_make_no_sure_event() {
    let resource = with_dates(SECONDS);
    let watermark = at("2026-03-01T10:00:00Z");
    let record = |updated: &str| json!({"id": 1, "updated_at": updated});
    assert_eq!(
        inspect_record(&record("2026-03-01T10:00:00Z"), &resource, watermark).outcome,
        Outcome::AtWatermark
    );
    assert_eq!(
        inspect_record(&record("2026-03-01T09:59:59Z"), &resource, watermark).outcome,
        Outcome::OlderThanWatermark
    );
    // Inside the lookback window the seen set would decide.
    let mut lookback = with_dates(SECONDS);
    lookback.lookback = Duration::from_secs(60);
    assert_eq!(
        inspect_record(&record("2026-03-01T09:59:30Z"), &lookback, watermark).outcome,
        Outcome::AtWatermark
    );
}

#[test]
fn a_date_mismatch_shows_string_pattern_and_suggestion() {
    let resource = with_dates("yyyy-MM-dd HH:mm:ss");
    let report = inspect_record(
        &json!({"id": 7, "updated_at": "2026-03-01T10:05:00.123Z"}),
        &resource,
        at("2026-03-01T10:00:00Z"),
    );
    assert_eq!(report.outcome, Outcome::Unreadable);
    assert!(report.has_date_error());
    let updated = report.updated.unwrap();
    assert_eq!(updated.raw.as_deref(), Some("2026-03-01T10:05:00.123Z"));
    assert_eq!(updated.pattern, "yyyy-MM-dd HH:mm:ss");
    assert!(updated.error.as_deref().unwrap().contains("does not match"));
    assert_eq!(
        updated.suggestion.as_deref(),
        Some("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
    );
    assert_eq!(
        updated.suggestion_reads.as_deref(),
        Some("2026-03-01T10:05:00.123Z")
    );
    assert!(report.problem.unwrap().starts_with("`updated_at`: "));
}

#[test]
fn a_created_date_mismatch_is_a_problem_too() {
    let resource = with_dates(SECONDS);
    let report = inspect_record(
        &json!({"id": 7, "updated_at": "2026-03-01T10:05:00Z", "created_at": "1709287500000"}),
        &resource,
        at("2026-03-01T10:00:00Z"),
    );
    assert_eq!(report.outcome, Outcome::Unreadable);
    assert!(report.has_date_error());
    assert_eq!(
        report.created.unwrap().suggestion.as_deref(),
        Some("milliseconds")
    );
}

#[test]
fn a_missing_id_or_date_lists_the_record_keys() {
    let resource = with_dates(SECONDS);
    let watermark = at("2026-03-01T10:00:00Z");
    let no_id = inspect_record(
        &json!({"Id": 1, "updated_at": "2026-03-01T10:05:00Z"}),
        &resource,
        watermark,
    );
    assert_eq!(no_id.outcome, Outcome::Unreadable);
    assert_eq!(no_id.keys, Some(vec!["Id".into(), "updated_at".into()]));
    assert!(no_id.problem.as_deref().unwrap().contains("no `id`"));
    assert!(!no_id.has_date_error());
    let no_date = inspect_record(&json!({"id": 1, "modified": "x"}), &resource, watermark);
    assert_eq!(no_date.keys, Some(vec!["id".into(), "modified".into()]));
    assert!(
        no_date
            .problem
            .as_deref()
            .unwrap()
            .contains("no `updated_at` date")
    );
    assert!(!no_date.has_date_error());
}

#[test]
fn snapshot_mode_shows_ids_only() {
    let resource = resource(None, 0);
    let report = inspect_record(&json!({"id": 3}), &resource, at("2026-03-01T10:00:00Z"));
    assert_eq!(report.outcome, Outcome::Snapshot);
    assert_eq!(report.id.as_deref(), Some("3"));
    assert!(report.updated.is_none());
}

#[test]
fn since_accepts_rfc3339_dates_and_durations_ago() {
    let now = at("2026-03-01T10:00:00Z");
    assert_eq!(
        parse_since("2026-02-01T12:00:00+01:00", now).unwrap(),
        at("2026-02-01T11:00:00Z")
    );
    assert_eq!(
        parse_since("2026-02-01", now).unwrap(),
        at("2026-02-01T00:00:00Z")
    );
    assert_eq!(parse_since("1h", now).unwrap(), at("2026-03-01T09:00:00Z"));
    assert_eq!(
        parse_since("2 days ago", now).unwrap(),
        at("2026-02-27T10:00:00Z")
    );
    assert_eq!(parse_since("90m", now).unwrap(), at("2026-03-01T08:30:00Z"));
    let error = parse_since("yesterday", now).unwrap_err();
    assert!(error.contains("RFC 3339"), "{error}");
}
