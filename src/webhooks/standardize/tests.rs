use super::*;
use crate::dates::{DateFormat, Zone};
use crate::instance::DatesConfig;
use chrono::TimeZone;
use std::collections::BTreeMap;

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

fn config() -> WebhookStandardize {
    WebhookStandardize {
        records_path: None,
        id_field: FieldPath::parse("id"),
        object_type: WebhookObjectType::Fixed("contacts".to_owned()),
        event_type_field: None,
        event_type_map: BTreeMap::new(),
        dates: None,
    }
}

fn one_group(groups: &[EventGroup]) -> &EventGroup {
    assert_eq!(groups.len(), 1, "{groups:?}");
    &groups[0]
}

#[test]
fn without_configuration_the_whole_body_is_one_event() {
    let body = br#"{ "action": "opened",  "number": 7 }"#;
    let groups = standardize(body, None, received()).unwrap();
    let group = one_group(&groups);
    assert_eq!(group.object_type, "webhook");
    let event = &group.events[0];
    assert_eq!(event.event_type, EventType::Updated);
    assert!(
        event.object_id.starts_with("sha256:"),
        "{}",
        event.object_id
    );
    assert_eq!(event.date, "2026-11-29T10:00:00.000Z");
    // The provider's text, key order kept, whitespace dropped.
    assert_eq!(event.raw.as_str(), r#"{"action":"opened","number":7}"#);
}

#[test]
fn the_same_content_gets_the_same_id() {
    let a = standardize(br#"{"a":1,"b":2}"#, None, received()).unwrap();
    let b = standardize(br#"{"b":2, "a":1}"#, None, received()).unwrap();
    assert_eq!(a[0].events[0].object_id, b[0].events[0].object_id);
}

#[test]
fn default_records_body_array_single_array_member_or_body() {
    let config = config();
    let array = standardize(br#"[{"id":1},{"id":2}]"#, Some(&config), received()).unwrap();
    let ids: Vec<_> = one_group(&array)
        .events
        .iter()
        .map(|e| e.object_id.clone())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    let member = standardize(
        br#"{"meta":{},"data":[{"id":"a"}]}"#,
        Some(&config),
        received(),
    )
    .unwrap();
    assert_eq!(one_group(&member).events[0].object_id, "a");
    let body = standardize(
        br#"{"id":9,"tags":[1],"more":[2]}"#,
        Some(&config),
        received(),
    )
    .unwrap();
    assert_eq!(one_group(&body).events[0].object_id, "9");
}

#[test]
fn records_path_that_is_missing_is_a_reason() {
    let mut config = config();
    config.records_path = Some(FieldPath::parse("payload.items"));
    let error = standardize(br#"{"payload":{}}"#, Some(&config), received()).unwrap_err();
    assert_eq!(
        error,
        StandardizeError::NoRecords("payload.items".to_owned())
    );
    let found = standardize(
        br#"{"payload":{"items":[{"id":3}]}}"#,
        Some(&config),
        received(),
    )
    .unwrap();
    assert_eq!(one_group(&found).events[0].object_id, "3");
}

#[test]
fn not_json_and_bad_ids_are_reasons() {
    assert!(matches!(
        standardize(b"payload=%7B%7D", None, received()),
        Err(StandardizeError::NotJson(_))
    ));
    let error =
        standardize(br#"[{"id":1},{"name":"x"}]"#, Some(&config()), received()).unwrap_err();
    assert!(
        matches!(error, StandardizeError::Record { index: 1, .. }),
        "{error}"
    );
}

#[test]
fn event_types_from_a_field_in_the_record_or_the_body_through_the_map() {
    let mut config = config();
    config.event_type_field = Some(FieldPath::parse("action"));
    config.event_type_map = BTreeMap::from([
        ("opened".to_owned(), EventType::Created),
        ("deleted".to_owned(), EventType::Deleted),
    ]);
    // GitHub: the action is in the body, the record is one of its members.
    config.records_path = Some(FieldPath::parse("issue"));
    let groups = standardize(
        br#"{"action":"opened","issue":{"id":5}}"#,
        Some(&config),
        received(),
    )
    .unwrap();
    assert_eq!(one_group(&groups).events[0].event_type, EventType::Created);
    config.records_path = None;
    let body = br#"[{"id":1,"action":"deleted"},{"id":2,"action":"edited"},{"id":3,"action":"created"},{"id":4}]"#;
    let groups = standardize(body, Some(&config), received()).unwrap();
    let types: Vec<_> = one_group(&groups)
        .events
        .iter()
        .map(|e| e.event_type)
        .collect();
    // Mapped, unmapped, already an event type, missing.
    assert_eq!(
        types,
        [
            EventType::Deleted,
            EventType::Updated,
            EventType::Created,
            EventType::Updated
        ]
    );
}

#[test]
fn object_type_field_groups_events_in_order_of_first_appearance() {
    let mut config = config();
    config.object_type = WebhookObjectType::Field(FieldPath::parse("type"));
    let body = br#"[{"id":1,"type":"deal"},{"id":2,"type":"contact"},{"id":3,"type":"deal"}]"#;
    let groups = standardize(body, Some(&config), received()).unwrap();
    let shape: Vec<_> = groups
        .iter()
        .map(|g| {
            (
                g.object_type.clone(),
                g.events
                    .iter()
                    .map(|e| e.object_id.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("deal".to_owned(), vec!["1".to_owned(), "3".to_owned()]),
            ("contact".to_owned(), vec!["2".to_owned()])
        ]
    );
    let error = standardize(br#"[{"id":1}]"#, Some(&config), received()).unwrap_err();
    assert!(
        error.to_string().contains("objectTypeField type"),
        "{error}"
    );
}

#[test]
fn dates_come_from_the_record_else_the_receipt_time() {
    let mut config = config();
    config.dates = Some(DatesConfig {
        updated: DateField {
            path: FieldPath::parse("updated_at"),
            format: DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").unwrap(),
            zone: Zone::utc(),
        },
        created: None,
    });
    let body = br#"[{"id":1,"updated_at":"2026-11-25T12:59:58.123400+00:00"},{"id":2,"updated_at":"yesterday"}]"#;
    let groups = standardize(body, Some(&config), received()).unwrap();
    let dates: Vec<_> = one_group(&groups)
        .events
        .iter()
        .map(|e| e.date.clone())
        .collect();
    assert_eq!(
        dates,
        ["2026-11-25T12:59:58.123400Z", "2026-11-29T10:00:00.000Z"]
    );
}

#[test]
fn raw_events_keep_what_could_not_be_standardized() {
    let text = raw_event(b"a=1&b=2", "application/x-www-form-urlencoded", received());
    assert_eq!(text.object_type, "webhook");
    assert_eq!(
        text.events[0].raw.as_str(),
        r#"{"contentType":"application/x-www-form-urlencoded","body":"a=1&b=2"}"#
    );
    let binary = raw_event(&[0xff, 0xfe], "application/octet-stream", received());
    assert!(
        binary.events[0]
            .raw
            .as_str()
            .contains(r#""bodyBase64":"//4=""#)
    );
    let json = raw_event(br#"{"x": 1}"#, "application/json", received());
    assert_eq!(json.events[0].raw.as_str(), r#"{"x":1}"#);
}
