//! `ocpoll tick`, `ocpoll status` and `ocpoll state reset` end to end: the real binary against
//! the loopback mock provider, which runs in this test process on its own tokio runtime while
//! the binary is a child process.
//!
//! Every test works in a fresh temporary folder (`instances.d/`, `state.db`, `config.toml`) and
//! inspects the results three ways: the binary's exit code and output, `status --json`, and the
//! outbox of the state file itself (opened with `ocpoll::state::Store`). Records live within the
//! last hour, because a resource's first poll (the baseline) looks one hour back.

mod support;
mod util;

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use ocpoll::config::Synchronous;
use ocpoll::dates::{DateFormat, Zone};
use ocpoll::state::{OutboxFilter, StateLock, Store};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use support::mock_provider::{
    Failure, MockAuth, MockBuilder, MockProvider, Paging, RetryAfter, SinceFilter,
};
use tokio::runtime::Runtime;
use util::{Dir, Run};

/// The mock's default date format (seconds, `Z`), used by most tests.
const SECONDS: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";
/// Six fraction digits: events must carry exactly six, trailing zeros kept.
const MICROS: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'";

// -------------------------------------------------------------------------------------------
// The harness
// -------------------------------------------------------------------------------------------

/// A temporary folder with an instances folder, a config that keeps retries short, and the
/// runtime the mock providers serve on while the binary runs.
struct Env {
    dir: Dir,
    rt: Runtime,
    callback: String,
}

impl Env {
    fn new() -> Env {
        // One retry without backoff: a failing poll ends at once.
        let dir = Dir::with_layout(
            "[poll]\nretries = 1\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
        );
        Env {
            dir,
            rt: util::runtime(),
            callback: format!("http://127.0.0.1:{}/callback", closed_port()),
        }
    }

    fn start(&self, builder: MockBuilder) -> MockProvider {
        self.rt.block_on(builder.start())
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.db")
    }

    fn instance_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("instances.d/{name}.json"))
    }

    /// Writes `instances.d/<name>.json`.
    fn write_instance(&self, instance: &Value) -> PathBuf {
        let name = instance["name"].as_str().expect("instance name");
        let text = serde_json::to_string_pretty(instance).expect("instance JSON");
        self.dir.create(format!("instances.d/{name}.json"), &text)
    }

    /// `ocpoll ARGS...` with the layout's config, instances and state (`util::LAYOUT_ENV`).
    fn ocpoll(&self, args: &[&str]) -> Run {
        self.dir.command().layout().args(args).run()
    }

    /// `tick --all`: every resource now, whatever its due time.
    fn tick(&self) -> Run {
        self.ocpoll(&["tick", "--all"])
    }

    fn tick_ok(&self) -> Run {
        let run = self.tick();
        run.assert_code(0);
        run
    }

    /// `status --json`, parsed.
    fn status(&self) -> Vec<Value> {
        let run = self.ocpoll(&["status", "--json"]);
        run.assert_code(0);
        serde_json::from_slice(&run.output.stdout)
            .unwrap_or_else(|error| panic!("status --json is not JSON: {error}\n{}", run.show()))
    }

    /// The status line of one resource (without pathParams).
    fn line(&self, instance: &str, resource: &str) -> Value {
        self.status()
            .into_iter()
            .find(|line| line["instance"] == instance && line["resource"] == resource)
            .unwrap_or_else(|| panic!("no status line for {instance}/{resource}"))
    }

    fn watermark(&self, instance: &str, resource: &str) -> Option<DateTime<Utc>> {
        time_field(&self.line(instance, resource)["watermark"])
    }

    /// Every notification in the outbox, in delivery order, with its body parsed.
    fn outbox(&self) -> Vec<Notification> {
        let store = Store::open_existing(&self.state_path(), Synchronous::Full)
            .expect("open the state file");
        let rows = store
            .outbox_list(&OutboxFilter::default())
            .expect("list the outbox");
        rows.into_iter()
            .map(|row| {
                let bytes = store
                    .outbox_body(&row.id)
                    .expect("read a body")
                    .expect("the listed notification has a body");
                let body = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                    panic!("body of {} is not JSON: {error}", row.id);
                });
                Notification {
                    seq: row.seq,
                    id: row.id,
                    events: row.events,
                    body,
                    bytes,
                }
            })
            .collect()
    }

    /// The notifications added to the outbox since it had `before` of them.
    fn new_notifications(&self, before: usize) -> Vec<Notification> {
        self.outbox().into_iter().skip(before).collect()
    }
}

/// A loopback port nothing listens on: connections are refused at once. Not a port bound and
/// released (another test's server may take it meanwhile and answer 404): port 1, below the
/// ephemeral range every test server binds in, which nothing on these machines serves.
fn closed_port() -> u16 {
    1
}

struct Notification {
    seq: i64,
    id: String,
    events: u32,
    body: Value,
    bytes: Vec<u8>,
}

impl Notification {
    fn message(&self) -> &Value {
        &self.body["message"]
    }

    fn event_list(&self) -> &Vec<Value> {
        self.message()["events"]
            .as_array()
            .unwrap_or_else(|| panic!("message.events is not an array: {}", self.body))
    }

    /// (eventType, objectId) of each event, in order.
    fn kinds(&self) -> Vec<(String, String)> {
        self.event_list()
            .iter()
            .map(|event| {
                (
                    event["eventType"].as_str().unwrap_or("?").to_owned(),
                    event["objectId"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect()
    }

    /// `raw.<object_type>`, the records of the events.
    fn raw(&self, object_type: &str) -> &Vec<Value> {
        self.message()["raw"][object_type]
            .as_array()
            .unwrap_or_else(|| panic!("raw.{object_type} is not an array: {}", self.body))
    }
}

/// Every (eventType, objectId) of these notifications, in order.
fn all_kinds(notifications: &[Notification]) -> Vec<(String, String)> {
    notifications.iter().flat_map(Notification::kinds).collect()
}

fn kind(event_type: &str, id: &str) -> (String, String) {
    (event_type.to_owned(), id.to_owned())
}

fn time_field(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|error| panic!("{text:?} is not RFC 3339: {error}"))
                .to_utc(),
        ),
        other => panic!("not a time: {other}"),
    }
}

/// Whole seconds, half an hour ago: inside the baseline's one-hour window.
fn base_time() -> DateTime<Utc> {
    let now = Utc::now() - TimeDelta::minutes(30);
    now.with_nanosecond(0).expect("zero nanoseconds")
}

fn plus(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    time + TimeDelta::seconds(seconds)
}

fn format(pattern: &str, time: DateTime<Utc>) -> String {
    DateFormat::new(pattern)
        .expect("date format")
        .format(time, &Zone::utc())
}

/// The resource URL with Open Connectors' `where` filter on the watermark, as seeds write it.
fn where_url(mock: &MockProvider, pattern: &str) -> String {
    format!(
        "{}?where=updated_at>='${{gmtDate:{pattern}}}'",
        mock.resource_url()
    )
}

/// An instance polling `contacts` at `url` in watermark mode (updated and created dates in
/// `pattern`), with a closed callback port and a one-second interval.
fn instance(env: &Env, name: &str, url: &str, pattern: &str) -> Value {
    json!({
        "element": {"key": "examplecrm"},
        "name": name,
        "tags": ["crm", "tick-test"],
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": env.callback,
            "event.poller.refresh_seconds": 1,
            "event.poller.configuration": {
                "contacts": {
                    "url": url,
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated_at",
                        "updatedDateFormat": pattern,
                        "updatedDateTimezone": "GMT",
                        "createdDateField": "created_at",
                        "createdDateFormat": pattern,
                        "createdDateTimezone": "GMT"
                    }
                }
            }
        }
    })
}

/// The usual setup: a mock with the default format and one instance `name` polling it.
fn simple_instance(env: &Env, mock: &MockProvider, name: &str) -> Value {
    let instance = instance(env, name, &where_url(mock, SECONDS), SECONDS);
    env.write_instance(&instance);
    instance
}

fn contacts(instance: &mut Value) -> &mut Value {
    &mut instance["configuration"]["event.poller.configuration"]["contacts"]
}

/// What the mock renders for a record: id, updated date, then the fields.
fn rendered(id: &str, updated: &str, fields: &Value) -> Value {
    let mut record = serde_json::Map::new();
    record.insert("id".into(), json!(id));
    record.insert("updated_at".into(), json!(updated));
    if let Value::Object(fields) = fields {
        record.extend(fields.clone());
    }
    Value::Object(record)
}

// -------------------------------------------------------------------------------------------
// 1. Baseline, then changes
// -------------------------------------------------------------------------------------------

#[test]
fn baseline_then_changes_then_nothing() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().date_format(MICROS, "UTC"));
    let base = base_time() + TimeDelta::milliseconds(120);
    let long_ago = format(MICROS, base - TimeDelta::days(30));
    mock.upsert("c1", base, json!({"created_at": long_ago, "name": "Ada"}));
    mock.upsert(
        "c2",
        plus(base, 1),
        json!({"created_at": long_ago, "name": "Bob"}),
    );
    let instance = instance(&env, "crm-one", &where_url(&mock, MICROS), MICROS);
    env.write_instance(&instance);

    let first = env.tick_ok();
    first.assert_stdout_contains("baseline");
    assert!(env.outbox().is_empty(), "a baseline emits nothing");
    assert_eq!(
        env.watermark("crm-one", "contacts"),
        Some(plus(base, 1)),
        "the baseline watermark is the newest updated date seen"
    );

    // A record created after the baseline, and an old record updated after it.
    let c3_updated = plus(base, 2);
    let c3_fields = json!({"created_at": format(MICROS, c3_updated), "name": "Cy"});
    mock.upsert("c3", c3_updated, c3_fields.clone());
    let c1_updated = plus(base, 3);
    let c1_fields = json!({"created_at": long_ago, "name": "Ada Lovelace"});
    mock.upsert("c1", c1_updated, c1_fields.clone());

    let second = env.tick_ok();
    second.assert_stdout_contains("2 events in 1 notifications");
    let outbox = env.outbox();
    assert_eq!(outbox.len(), 1, "one notification for one poll");
    let notification = &outbox[0];
    assert_eq!(notification.events, 2);
    let message = notification.message();
    let event_id = message["eventId"].as_str().expect("eventId");
    assert_eq!(event_id, notification.id, "eventId is the outbox id");
    assert_eq!(event_id.len(), 26, "{event_id}");
    assert!(
        event_id
            .bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
        "eventId is a Crockford ULID: {event_id}"
    );
    assert_eq!(message["instanceId"], "crm-one");
    assert_eq!(message["elementKey"], "examplecrm");
    assert_eq!(message["instanceTags"], json!(["crm", "tick-test"]));
    let event_date = message["eventDate"].as_str().expect("eventDate");
    assert_eq!(
        event_date.len(),
        "2026-11-25T13:00:05.123Z".len(),
        "{event_date}"
    );
    assert!(event_date.ends_with('Z'), "{event_date}");

    assert_eq!(
        notification.kinds(),
        [kind("CREATED", "c3"), kind("UPDATED", "c1")],
        "in the order the provider returned them (by updated date)"
    );
    let events = notification.event_list();
    for event in events {
        assert_eq!(event["objectType"], "contacts");
        assert_eq!(event["elementKey"], "examplecrm");
        assert!(event.get("pathParams").is_none(), "no pathParams: {event}");
    }
    // Six fraction digits, as in the format, trailing zeros kept.
    assert_eq!(
        events[0]["date"],
        c3_updated.to_rfc3339_opts(SecondsFormat::Micros, true)
    );
    assert!(
        events[0]["date"].as_str().unwrap().ends_with(".120000Z"),
        "{}",
        events[0]["date"]
    );
    assert_eq!(
        events[1]["date"],
        c1_updated.to_rfc3339_opts(SecondsFormat::Micros, true)
    );
    let expected_raw = [
        rendered("c3", &format(MICROS, c3_updated), &c3_fields),
        rendered("c1", &format(MICROS, c1_updated), &c1_fields),
    ];
    let raw = notification.raw("contacts");
    assert_eq!(raw.as_slice(), expected_raw.as_slice());
    for (sent, expected) in raw.iter().zip(&expected_raw) {
        let sent_keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
        let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
        assert_eq!(
            sent_keys, expected_keys,
            "raw keeps the provider's key order"
        );
    }
    let raw_members: Vec<&String> = message["raw"].as_object().unwrap().keys().collect();
    assert_eq!(raw_members, ["contacts"]);
    assert!(
        !String::from_utf8_lossy(&notification.bytes).contains(": "),
        "the body is compact"
    );
    assert_eq!(env.watermark("crm-one", "contacts"), Some(c1_updated));

    let third = env.tick_ok();
    third.assert_stdout_contains("0 events in 0 notifications");
    assert_eq!(env.outbox().len(), 1, "no change, no notification");
    assert_eq!(env.watermark("crm-one", "contacts"), Some(c1_updated));
}

/// Seed 002's `changed-groups` names one field for both dates: an update of a record known
/// before is UPDATED (not CREATED), and `validate` says why.
#[test]
fn one_field_for_created_and_updated_is_read_as_no_created_field() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({"name": "Ada"}));
    let mut instance = instance(&env, "crm-same", &where_url(&mock, SECONDS), SECONDS);
    let dates = &mut contacts(&mut instance)["datesConfiguration"];
    dates["createdDateField"] = json!("updated_at");
    let path = env.write_instance(&instance);
    let validated = env.ocpoll(&["validate", path.to_str().unwrap()]);
    validated.assert_code(0);
    validated.assert_stdout_contains(
        "the same field as \"updatedDateField\" (updated_at): created and updated cannot be \
         told apart, so every change is sent as UPDATED",
    );

    env.tick_ok();
    mock.upsert("c1", plus(base, 1), json!({"name": "Ada Lovelace"}));
    mock.upsert("c2", plus(base, 2), json!({"name": "Bob"}));
    env.tick_ok();
    let kinds: Vec<_> = env.outbox().iter().flat_map(|n| n.kinds()).collect();
    assert_eq!(kinds, [kind("UPDATED", "c1"), kind("UPDATED", "c2")]);
}

// -------------------------------------------------------------------------------------------
// 2. Shared timestamps, late records, lookback
// -------------------------------------------------------------------------------------------

#[test]
fn records_sharing_a_timestamp_across_pages_are_each_emitted_once() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().paging(Paging::PageToken { page_size: 200 }));
    let base = base_time();
    mock.upsert("a0", base, json!({}));
    let mut instance = instance(&env, "paged", &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["pagination"] = json!({"type": "auto", "pageSize": 2});
    env.write_instance(&instance);
    env.tick_ok();
    assert_eq!(env.watermark("paged", "contacts"), Some(base));

    let shared = plus(base, 10);
    for id in ["s1", "s2", "s3", "s4", "s5"] {
        mock.upsert(id, shared, json!({"name": id}));
    }
    let requests_before = mock.request_count();
    env.tick_ok();
    let pages = mock.request_count() - requests_before;
    assert!(pages >= 3, "five records in pages of two: {pages} requests");
    assert!(
        mock.requests()
            .iter()
            .all(|request| request.param("pageSize").as_deref() == Some("2")),
        "every page asks for pageSize=2"
    );
    let outbox = env.outbox();
    let mut ids: Vec<String> = all_kinds(&outbox).into_iter().map(|(_, id)| id).collect();
    ids.sort();
    assert_eq!(ids, ["s1", "s2", "s3", "s4", "s5"]);
    assert_eq!(env.watermark("paged", "contacts"), Some(shared));

    // Committed late, with the watermark's own timestamp: new, and only it.
    mock.upsert("s6", shared, json!({"name": "late"}));
    let before = outbox.len();
    env.tick_ok();
    assert_eq!(
        all_kinds(&env.new_notifications(before)),
        [kind("UPDATED", "s6")]
    );

    let before = env.outbox().len();
    env.tick_ok();
    assert!(env.new_notifications(before).is_empty(), "nothing new");
}

#[test]
fn lookback_catches_a_late_record_without_repeating_sent_ones() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("r1", base, json!({}));
    mock.upsert("r2", plus(base, 60), json!({}));
    let mut instance = instance(&env, "late", &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["lookbackSeconds"] = json!(600);
    env.write_instance(&instance);
    env.tick_ok();
    assert_eq!(env.watermark("late", "contacts"), Some(plus(base, 60)));

    mock.upsert("r3", plus(base, 300), json!({}));
    env.tick_ok();
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "r3")]);
    let watermark = plus(base, 300);
    assert_eq!(env.watermark("late", "contacts"), Some(watermark));

    // Committed late: older than the watermark, inside the lookback window.
    mock.upsert("r4", plus(base, 120), json!({}));
    let before = env.outbox().len();
    let requests_before = mock.requests().len();
    env.tick_ok();
    let last_request = mock.requests().into_iter().nth(requests_before).unwrap();
    assert_eq!(
        last_request.param("where"),
        Some(format!(
            "updated_at>='{}'",
            format(SECONDS, watermark - TimeDelta::seconds(600))
        )),
        "the query starts lookbackSeconds before the watermark"
    );
    assert_eq!(
        all_kinds(&env.new_notifications(before)),
        [kind("UPDATED", "r4")],
        "only the late record; r2 and r3 were already sent"
    );
    assert_eq!(
        env.watermark("late", "contacts"),
        Some(watermark),
        "a late record never moves the watermark back"
    );
}

/// A record committed during a poll shifts the provider's offset pages: one record comes twice
/// in the same poll (emitted once), and the late one is skipped by this poll's pages but caught
/// by the next poll's lookback window.
#[test]
fn a_record_committed_mid_poll_is_neither_doubled_nor_lost() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("r0", base, json!({}));
    let mut instance = instance(&env, "shifty", &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["pagination"] = json!({"type": "auto", "pageSize": 2});
    contacts(&mut instance)["lookbackSeconds"] = json!(60);
    env.write_instance(&instance);
    env.tick_ok();

    for (n, id) in ["r1", "r2", "r3", "r4"].iter().enumerate() {
        mock.upsert(id, plus(base, 2 + n as i64), json!({}));
    }
    // Visible from the poll's second page on, sorted before everything that page skips.
    let second_page = mock.request_count() + 2;
    mock.upsert_late("late", plus(base, 1), json!({}), second_page);
    env.tick_ok();
    assert_eq!(
        all_kinds(&env.outbox()),
        [
            kind("UPDATED", "r1"),
            kind("UPDATED", "r2"),
            kind("UPDATED", "r3"),
            kind("UPDATED", "r4")
        ],
        "r2 came on two pages and is one event"
    );
    let before = env.outbox().len();
    env.tick_ok();
    assert_eq!(
        all_kinds(&env.new_notifications(before)),
        [kind("UPDATED", "late")],
        "the lookback window finds the record the pages skipped, and only it"
    );
}

/// The provider's clock runs two hours ahead of ocpoll's: an empty baseline takes the
/// provider's `Date` minus a minute, so a record stamped by the provider just after the
/// baseline is an event, and nothing older floods in.
#[test]
fn an_empty_baseline_uses_the_provider_clock() {
    let env = Env::new();
    let skew = TimeDelta::hours(2);
    let mock = env.start(MockProvider::builder().date_skew(skew));
    simple_instance(&env, &mock, "skewed");
    let before_tick = Utc::now();
    env.tick_ok();
    let watermark = env
        .watermark("skewed", "contacts")
        .expect("a baseline sets a watermark");
    assert!(
        watermark > before_tick + TimeDelta::hours(1),
        "the watermark {watermark} follows the provider's clock, not ocpoll's ({before_tick})"
    );
    // Provider time before the watermark (older than the baseline) and after it.
    mock.upsert("old", watermark - TimeDelta::minutes(5), json!({}));
    mock.upsert("new", watermark + TimeDelta::seconds(30), json!({}));
    env.tick_ok();
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "new")]);
}

/// Without `--all`, a tick polls only what is due: a never-polled resource at once, then not
/// again before its interval (ten minutes) has passed.
#[test]
fn tick_without_all_polls_only_due_resources() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    let mut instance = simple_instance(&env, &mock, "due");
    let configuration = instance["configuration"].as_object_mut().unwrap();
    configuration.remove("event.poller.refresh_seconds");
    configuration.insert("event.poller.refresh_interval".into(), json!(10));
    env.write_instance(&instance);

    env.ocpoll(&["tick"])
        .assert_code(0)
        .assert_stdout_contains("1 polled");
    assert_eq!(mock.request_count(), 1);
    let next_due = time_field(&env.line("due", "contacts")["next_due_at"]).unwrap();
    assert!(next_due > Utc::now() + TimeDelta::minutes(5), "{next_due}");
    env.ocpoll(&["tick"])
        .assert_code(0)
        .assert_stdout_contains("0 polled");
    assert_eq!(mock.request_count(), 1, "not due yet");
    env.tick_ok();
    assert_eq!(mock.request_count(), 2, "--all polls it anyway");
}

// -------------------------------------------------------------------------------------------
// 3. Batching
// -------------------------------------------------------------------------------------------

#[test]
fn batch_size_splits_a_poll_into_ordered_notifications() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c0", base, json!({}));
    let mut instance = instance(&env, "batched", &where_url(&mock, SECONDS), SECONDS);
    instance["configuration"]["event.notification.batch.size"] = json!(2);
    env.write_instance(&instance);
    env.tick_ok();

    for (n, id) in ["c1", "c2", "c3", "c4", "c5"].iter().enumerate() {
        mock.upsert(id, plus(base, 10 + n as i64), json!({}));
    }
    env.tick_ok()
        .assert_stdout_contains("5 events in 3 notifications");
    let outbox = env.outbox();
    let sizes: Vec<u32> = outbox.iter().map(|n| n.events).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let ids: Vec<String> = all_kinds(&outbox).into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids,
        ["c1", "c2", "c3", "c4", "c5"],
        "in order across batches"
    );
    for notification in &outbox {
        assert_eq!(
            notification.raw("contacts").len(),
            notification.event_list().len()
        );
        assert_eq!(notification.message()["eventId"], notification.id.as_str());
    }
    let event_ids: Vec<&str> = outbox.iter().map(|n| n.id.as_str()).collect();
    let mut unique = event_ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3, "each notification has its own eventId");
    let mut sorted = event_ids.clone();
    sorted.sort();
    assert_eq!(sorted, event_ids, "eventIds sort in delivery order");
    assert!(outbox.windows(2).all(|pair| pair[0].seq < pair[1].seq));
}

#[test]
fn batch_bytes_limits_each_notification() {
    const LIMIT: usize = 1500;
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c0", base, json!({}));
    let mut instance = instance(&env, "bytes", &where_url(&mock, SECONDS), SECONDS);
    instance["configuration"]["event.notification.batch.bytes"] = json!(LIMIT);
    env.write_instance(&instance);
    env.tick_ok();

    let filler = "x".repeat(400);
    for n in 1..=4 {
        mock.upsert(&format!("c{n}"), plus(base, n), json!({"notes": filler}));
    }
    // Larger than the limit on its own: it goes alone.
    mock.upsert(
        "huge",
        plus(base, 5),
        json!({"notes": "y".repeat(2 * LIMIT)}),
    );
    env.tick_ok();
    let outbox = env.outbox();
    assert!(outbox.len() >= 3, "{} notifications", outbox.len());
    for notification in &outbox {
        assert!(
            notification.bytes.len() <= LIMIT || notification.events == 1,
            "{} bytes with {} events",
            notification.bytes.len(),
            notification.events
        );
    }
    let ids: Vec<String> = all_kinds(&outbox).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, ["c1", "c2", "c3", "c4", "huge"]);
    assert_eq!(outbox.last().unwrap().events, 1);
}

// -------------------------------------------------------------------------------------------
// 4. pathParams fan-out
// -------------------------------------------------------------------------------------------

/// The mock serves one record set per server, so each calendar is its own mock and the
/// `calendarId` value picks the server by its port: two values, two record sets, two
/// watermarks.
#[test]
fn path_params_fan_out_with_a_watermark_each() {
    let env = Env::new();
    let first = env.start(MockProvider::builder());
    let second = env.start(MockProvider::builder());
    let base = base_time();
    first.upsert("a1", base, json!({}));
    second.upsert("b1", plus(base, 10), json!({}));
    let port = |mock: &MockProvider| mock.base_url().port().unwrap().to_string();
    let (first_port, second_port) = (port(&first), port(&second));
    let resource = "calendars/{calendarId}/events";
    let url = format!(
        "http://127.0.0.1:{{calendarId}}/hubs/crm/contacts?where=updated_at>='${{gmtDate:{SECONDS}}}'"
    );
    let mut instance = instance(&env, "cal", &url, SECONDS);
    let configuration = &mut instance["configuration"]["event.poller.configuration"];
    let mut definition = configuration["contacts"].take();
    definition["pathParams"] = json!({"calendarId": [first_port, second_port]});
    *configuration = json!({ resource: definition });
    env.write_instance(&instance);

    env.tick_ok();
    let lines: Vec<Value> = env
        .status()
        .into_iter()
        .filter(|line| line["instance"] == "cal")
        .collect();
    assert_eq!(lines.len(), 2, "one status line per calendarId: {lines:?}");
    let watermark_of = |port: &str| {
        let lines = env.status();
        let line = lines
            .iter()
            .find(|line| line["path_params"] == format!("calendarId={port}"))
            .unwrap_or_else(|| panic!("no line for calendarId={port}: {lines:?}"));
        assert_eq!(line["resource"], resource);
        time_field(&line["watermark"])
    };
    assert_eq!(watermark_of(&first_port), Some(base));
    assert_eq!(watermark_of(&second_port), Some(plus(base, 10)));

    first.upsert("a2", plus(base, 20), json!({}));
    env.tick_ok();
    let outbox = env.outbox();
    assert_eq!(all_kinds(&outbox), [kind("UPDATED", "a2")]);
    let event = &outbox[0].event_list()[0];
    assert_eq!(event["objectType"], resource);
    assert_eq!(event["pathParams"], json!({"calendarId": first_port}));
    assert_eq!(outbox[0].raw(resource).len(), 1);
    assert_eq!(watermark_of(&first_port), Some(plus(base, 20)));
    assert_eq!(watermark_of(&second_port), Some(plus(base, 10)));

    // INSTANCE/RESOURCE splits at the first '/': the key keeps its own slashes, and the reset
    // applies to every pathParams value.
    let target = format!("cal/{resource}");
    let to = format(SECONDS, base);
    env.ocpoll(&["state", "reset", &target, "--to", &to, "--yes"])
        .assert_code(0)
        .assert_stdout_contains("2 resource(s)");
    assert_eq!(watermark_of(&first_port), Some(base));
    assert_eq!(watermark_of(&second_port), Some(base));
}

// -------------------------------------------------------------------------------------------
// 5. Snapshot mode
// -------------------------------------------------------------------------------------------

#[test]
fn snapshot_mode_reports_created_updated_and_deleted() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().since(SinceFilter::None));
    let base = base_time();
    mock.upsert("c1", base, json!({"name": "Ada"}));
    mock.upsert("c2", base, json!({"name": "Bob"}));
    let mut instance = instance(&env, "snap", mock.resource_url().as_str(), SECONDS);
    contacts(&mut instance)
        .as_object_mut()
        .unwrap()
        .remove("datesConfiguration");
    env.write_instance(&instance);

    env.tick_ok();
    assert!(env.outbox().is_empty(), "the first snapshot emits nothing");

    mock.upsert("c3", base, json!({"name": "Cy"}));
    mock.upsert("c1", base, json!({"name": "Ada Lovelace"}));
    mock.delete("c2");
    env.tick_ok();
    let outbox = env.outbox();
    let mut kinds = all_kinds(&outbox);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            kind("CREATED", "c3"),
            kind("DELETED", "c2"),
            kind("UPDATED", "c1")
        ]
    );
    let raw: Vec<&Value> = outbox.iter().flat_map(|n| n.raw("contacts")).collect();
    let by_id = |id: &str| {
        raw.iter()
            .find(|record| record["id"] == id)
            .unwrap_or_else(|| panic!("no raw record {id}: {raw:?}"))
    };
    assert_eq!(by_id("c1")["name"], "Ada Lovelace");
    assert_eq!(
        by_id("c2")["name"],
        "Bob",
        "DELETED carries the last version seen"
    );
    for event in outbox.iter().flat_map(|n| n.event_list()) {
        let date = event["date"].as_str().unwrap();
        assert_eq!(date.len(), "2026-11-25T13:00:05.123Z".len(), "{date}");
    }

    let before = outbox.len();
    env.tick_ok();
    assert!(env.new_notifications(before).is_empty(), "nothing changed");
}

// -------------------------------------------------------------------------------------------
// 6. Failures leave the watermark; per-record problems do not fail the poll
// -------------------------------------------------------------------------------------------

/// Baseline with c1, then c2 and c3 change; `break_it` breaks the provider for one tick
/// (setting failures on the mock, or returning another URL to point the instance at). That
/// tick fails with `reason` and changes nothing; the next one, against the recovered provider,
/// emits c2 and c3 exactly once.
fn failed_poll_keeps_the_watermark(
    reason: &str,
    break_it: impl FnOnce(&Env, &MockProvider) -> Option<String>,
) {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    let healthy = simple_instance(&env, &mock, "flaky");
    env.tick_ok();
    let watermark = env.watermark("flaky", "contacts");
    assert_eq!(watermark, Some(base));
    mock.upsert("c2", plus(base, 10), json!({}));
    mock.upsert("c3", plus(base, 20), json!({}));

    if let Some(broken_url) = break_it(&env, &mock) {
        let mut broken = healthy.clone();
        contacts(&mut broken)["url"] = json!(broken_url);
        env.write_instance(&broken);
    }
    let failed = env.tick();
    failed.assert_code(1);
    let summary = failed.stdout();
    assert!(
        summary.contains("failed") && summary.contains(reason),
        "the summary says why the poll failed ({reason:?})\n{}",
        failed.show()
    );
    failed.assert_stdout_contains("1 failed");
    let line = env.line("flaky", "contacts");
    assert_eq!(time_field(&line["watermark"]), watermark, "{line}");
    assert_eq!(line["last_result"], "failed", "{line}");
    let last_error = line["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(reason), "{line}");
    assert!(
        env.outbox().is_empty(),
        "a failed poll writes no notification"
    );

    env.write_instance(&healthy);
    env.tick_ok();
    assert_eq!(
        all_kinds(&env.outbox()),
        [kind("UPDATED", "c2"), kind("UPDATED", "c3")]
    );
    assert_eq!(env.watermark("flaky", "contacts"), Some(plus(base, 20)));
    assert_eq!(env.line("flaky", "contacts")["last_error"], Value::Null);
    env.tick_ok();
    assert_eq!(env.outbox().len(), 1, "exactly once");
}

#[test]
fn a_503_beyond_the_retries_fails_the_poll() {
    failed_poll_keeps_the_watermark("HTTP 503", |_, mock| {
        // config.toml allows one retry: two attempts, both 503.
        let next = mock.request_count() + 1;
        mock.fail_on(next, Failure::Unavailable(None));
        mock.fail_on(next + 1, Failure::Unavailable(None));
        None
    });
}

#[test]
fn an_html_page_fails_the_poll() {
    failed_poll_keeps_the_watermark("not JSON", |_, mock| {
        mock.fail_on(mock.request_count() + 1, Failure::Html);
        None
    });
}

#[test]
fn a_body_without_records_fails_the_poll() {
    // Status(200) answers `{"message": "mock failure", "status": 200}`.
    failed_poll_keeps_the_watermark("no records array", |_, mock| {
        mock.fail_on(mock.request_count() + 1, Failure::Status(200));
        None
    });
}

#[test]
fn a_records_member_that_is_an_object_fails_the_poll() {
    failed_poll_keeps_the_watermark("is an object", |env, _| {
        Some(canned_provider(
            env,
            r#"{"data": {"id": "c2", "updated_at": "2026-01-01T00:00:00Z"}}"#,
        ))
    });
}

#[test]
fn a_looping_page_token_fails_the_poll() {
    failed_poll_keeps_the_watermark("looping", |env, _| {
        let looping = env.start(MockProvider::builder().page_token_loops());
        looping.upsert("c9", plus(base_time(), 5), json!({}));
        // The server keeps serving after its handle is dropped (until the runtime stops).
        Some(where_url(&looping, SECONDS))
    });
}

/// A provider that always hands out a new next page cannot keep a poll (and the tick holding
/// the state's lock) running forever: the poll stops at its page cap, or its time cap, and
/// fails without moving the watermark; its staged pages are dropped.
#[test]
fn endless_pages_stop_at_the_page_cap_and_the_time_cap() {
    for (cap, reason) in [
        (json!({"maxPages": 30}), "stopped after 30 pages"),
        (
            json!({"maxPollSeconds": 1, "maxPages": 1_000_000}),
            "stopped after 1s",
        ),
    ] {
        let env = Env::new();
        let endless = env.start(
            MockProvider::builder()
                .paging(Paging::PageToken { page_size: 1 })
                .endless_pages(),
        );
        endless.upsert("c1", base_time(), json!({}));
        let mut instance = simple_instance(&env, &endless, "endless");
        for (key, value) in cap.as_object().unwrap() {
            contacts(&mut instance)[key] = value.clone();
        }
        env.write_instance(&instance);
        let started = std::time::Instant::now();
        let run = env.tick();
        run.assert_code(1);
        run.assert_stdout_contains(reason);
        run.assert_stdout_contains("nothing of this poll was kept");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the tick ended ({:?})",
            started.elapsed()
        );
        let line = env.line("endless", "contacts");
        assert_eq!(line["last_result"], "failed", "{line}");
        assert!(line["watermark"].is_null(), "{line}");
        assert!(endless.request_count() >= 2, "it did follow pages");
        let conn = rusqlite::Connection::open(env.state_path()).unwrap();
        let staged: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM poll) + (SELECT count(*) FROM staged_event)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(staged, 0, "the staged pages are dropped");
    }
}

#[test]
fn an_endless_body_fails_the_poll() {
    failed_poll_keeps_the_watermark("larger than", |_, mock| {
        mock.fail_on(mock.request_count() + 1, Failure::EndlessBody);
        None
    });
}

#[test]
fn a_failure_on_a_later_page_discards_the_earlier_pages() {
    failed_poll_keeps_the_watermark("HTTP 500", |env, mock| {
        let mut paged = simple_instance(env, mock, "flaky");
        contacts(&mut paged)["pagination"] = json!({"type": "auto", "pageSize": 1});
        env.write_instance(&paged);
        // Page 1 (c1) answers; page 2, both attempts, fails.
        let next = mock.request_count() + 1;
        mock.fail_on(next + 1, Failure::Status(500));
        mock.fail_on(next + 2, Failure::Status(500));
        None
    });
}

#[test]
fn a_short_retry_after_is_waited_for_within_the_tick() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    simple_instance(&env, &mock, "patient");
    env.tick_ok();
    mock.upsert("c2", plus(base, 10), json!({}));
    mock.fail_on(
        mock.request_count() + 1,
        Failure::TooManyRequests(Some(RetryAfter::Seconds(1))),
    );
    env.tick_ok();
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "c2")]);
}

/// docs/design.md#polling: a Retry-After longer than five minutes fails the poll and delays the next one
/// until then.
#[test]
fn a_long_retry_after_fails_the_poll_and_delays_the_next() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    simple_instance(&env, &mock, "throttled");
    env.tick_ok();
    let watermark = env.watermark("throttled", "contacts");
    mock.upsert("c2", plus(base, 10), json!({}));
    mock.fail_on(
        mock.request_count() + 1,
        Failure::Unavailable(Some(RetryAfter::Seconds(3600))),
    );
    let run = env.tick();
    run.assert_code(1).assert_stdout_contains("Retry-After");
    let line = env.line("throttled", "contacts");
    assert_eq!(time_field(&line["watermark"]), watermark);
    let next_due = time_field(&line["next_due_at"]).expect("next_due_at");
    assert!(
        next_due > Utc::now() + TimeDelta::minutes(50),
        "the next poll waits for the provider: {line}"
    );
    assert!(env.outbox().is_empty());
    let requests = mock.request_count();
    env.ocpoll(&["tick"])
        .assert_code(0)
        .assert_stdout_contains("0 polled");
    assert_eq!(
        mock.request_count(),
        requests,
        "not due before the Retry-After"
    );
}

/// A provider that answers every request `200 application/json` with `body`; its URL.
fn canned_provider(env: &Env, body: &'static str) -> String {
    let listener = env
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().fallback(move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
    });
    env.rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hubs/crm/contacts")
}

#[test]
fn unreadable_records_are_reported_and_the_rest_committed() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({"uid": "u1"}));
    let mut instance = instance(&env, "sloppy", &where_url(&mock, SECONDS), SECONDS);
    contacts(&mut instance)["idField"] = json!("uid");
    env.write_instance(&instance);
    env.tick_ok();

    mock.upsert("c2", plus(base, 10), json!({"uid": "u2"}));
    // No idField value, and a later updated date that must not move the watermark.
    mock.upsert("c3", plus(base, 20), json!({"name": "no uid"}));
    // The field replaces the mock's own rendering of the updated date.
    mock.upsert(
        "c4",
        plus(base, 30),
        json!({"uid": "u4", "updated_at": "yesterday-ish"}),
    );
    // An id that is an object.
    mock.upsert("c5", plus(base, 40), json!({"uid": {"value": 5}}));
    let run = env.tick();
    run.assert_code(0);
    run.assert_stdout_contains("3 unreadable records");
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "u2")]);
    let line = env.line("sloppy", "contacts");
    assert_eq!(line["last_result"], "problems", "{line}");
    let last_error = line["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("3 records"), "{line}");
    assert!(last_error.contains("uid"), "{line}");
    assert_eq!(
        time_field(&line["watermark"]),
        Some(plus(base, 10)),
        "only readable records move the watermark"
    );
}

/// A number serde_json cannot hold (`1e400`) is valid JSON: the page is read, that one record
/// is a problem of its own, and the others count (the page used to fail as "not JSON").
#[test]
fn a_record_serde_json_cannot_hold_is_a_problem_of_that_record_only() {
    let env = Env::new();
    let url = canned_provider(
        &env,
        r#"[{"id": "c1", "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "c2", "updated_at": "2026-01-01T00:00:05Z", "amount": 1e400}]"#,
    );
    env.write_instance(&instance(&env, "huge", &url, SECONDS));
    env.tick().assert_code(0);
    let line = env.line("huge", "contacts");
    assert_eq!(line["last_result"], "problems", "{line}");
    let last_error = line["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("record could not be decoded: number out of range"),
        "{line}"
    );
    assert_eq!(
        env.watermark("huge", "contacts"),
        Some("2026-01-01T00:00:00Z".parse().unwrap()),
        "the readable record moves the watermark"
    );
}

/// One page larger than what a one-page poll keeps in memory is judged and staged in parts
/// (issue 13: its records are decoded one at a time, never all at once): every record is one
/// event, once, in the provider's order.
#[test]
fn a_single_page_larger_than_what_is_held_is_staged_in_parts() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().paging(Paging::None));
    let base = base_time();
    mock.upsert("c0000", base, json!({}));
    simple_instance(&env, &mock, "big");
    env.tick_ok();
    const CHANGES: i64 = 9_000;
    // Six a second, all within the half hour since `base`.
    let updated = |n: i64| plus(base, 1 + n / 6);
    for n in 1..=CHANGES {
        mock.upsert(&format!("c{n:04}"), updated(n), json!({"n": n}));
    }
    let run = env.tick_ok();
    run.assert_stdout_contains("9000 events in 9 notifications");
    let ids: Vec<String> = env
        .outbox()
        .iter()
        .flat_map(|notification| notification.kinds())
        .map(|(_, id)| id)
        .collect();
    let expected: Vec<String> = (1..=CHANGES).map(|n| format!("c{n:04}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(env.watermark("big", "contacts"), Some(updated(CHANGES)));
}

#[test]
fn a_record_with_a_bad_date_is_named_in_the_last_error() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    simple_instance(&env, &mock, "dates");
    env.tick_ok();
    mock.upsert("c2", plus(base, 10), json!({}));
    mock.upsert("c9", plus(base, 20), json!({"updated_at": "31/12/2026"}));
    env.tick_ok();
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "c2")]);
    let line = env.line("dates", "contacts");
    let last_error = line["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("c9") && last_error.contains("updated_at"),
        "{line}"
    );
    assert_eq!(time_field(&line["watermark"]), Some(plus(base, 10)));
}

// -------------------------------------------------------------------------------------------
// 7. Authentication through tick
// -------------------------------------------------------------------------------------------

#[test]
fn basic_and_hub_authentication_reach_the_provider() {
    let env = Env::new();
    let basic = env.start(MockProvider::builder().auth(MockAuth::Basic {
        username: "reader".into(),
        password: "pa55:word".into(),
    }));
    let hub = env.start(MockProvider::builder().auth(MockAuth::Hub {
        user: "user-secret".into(),
        organization: "org-secret".into(),
        element: "element-token".into(),
    }));
    let base = base_time();
    basic.upsert("b1", base, json!({}));
    hub.upsert("h1", base, json!({}));
    let mut with_basic = simple_instance(&env, &basic, "with-basic");
    with_basic["configuration"]["username"] = json!("reader");
    with_basic["configuration"]["password"] = json!("pa55:word");
    env.write_instance(&with_basic);
    let mut with_hub = simple_instance(&env, &hub, "with-hub");
    with_hub["configuration"]["elements.user.secret"] = json!("user-secret");
    with_hub["configuration"]["elements.organization.secret"] = json!("org-secret");
    with_hub["configuration"]["elements.instance.token"] = json!("element-token");
    env.write_instance(&with_hub);
    env.tick_ok();

    basic.upsert("b2", plus(base, 10), json!({}));
    hub.upsert("h2", plus(base, 10), json!({}));
    env.tick_ok();
    let mut ids: Vec<String> = all_kinds(&env.outbox())
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["b2", "h2"]);
    let hub_header = hub.requests()[0]
        .headers
        .get("authorization")
        .map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(
        hub_header.as_deref(),
        Some("User user-secret, Organization org-secret, Element element-token")
    );

    // The mock really checks: a wrong password fails the poll with the provider's 401.
    with_basic["configuration"]["password"] = json!("not-the-pa55word");
    env.write_instance(&with_basic);
    let run = env.ocpoll(&["tick", "--all", "--instance", "with-basic"]);
    run.assert_code(1).assert_stdout_contains("401");
    assert!(
        !format!("{}{}", run.stdout(), run.stderr()).contains("not-the-pa55word"),
        "{}",
        run.show()
    );
}

#[test]
fn oauth_refresh_token_is_kept_in_the_state() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder().auth(MockAuth::OAuth {
        client_id: "client".into(),
        client_secret: "client-secret".into(),
        refresh_token: "refresh-0".into(),
        rotate: true,
        expires_in: Some(3600),
    }));
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    let mut instance = simple_instance(&env, &mock, "oauth");
    let configuration = &mut instance["configuration"];
    configuration["oauth.token.url"] = json!(mock.token_url().as_str());
    configuration["oauth.api.key"] = json!("client");
    configuration["oauth.api.secret"] = json!("client-secret");
    configuration["oauth.user.refresh_token"] = json!("refresh-0");
    let path = env.write_instance(&instance);
    let file_before = std::fs::read(&path).unwrap();

    env.tick_ok();
    assert_eq!(mock.token_request_count(), 1);
    mock.upsert("c2", plus(base, 10), json!({}));
    env.tick_ok();
    assert_eq!(
        mock.token_request_count(),
        1,
        "the second tick reuses the access token kept in the state"
    );
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "c2")]);

    // The provider forgets its access tokens: the 401 makes ocpoll refresh, and only the
    // rotated refresh token (kept in the state, not in the file) is still accepted.
    mock.expire_tokens();
    mock.upsert("c3", plus(base, 20), json!({}));
    env.tick_ok();
    assert_eq!(mock.token_request_count(), 2);
    assert_eq!(
        all_kinds(&env.outbox()),
        [kind("UPDATED", "c2"), kind("UPDATED", "c3")]
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        file_before,
        "tokens are never written back to the instance file"
    );
}

// -------------------------------------------------------------------------------------------
// 8. The lock
// -------------------------------------------------------------------------------------------

#[test]
fn a_held_lock_exits_75_naming_the_pid_and_wait_waits() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "locked");

    let lock = StateLock::acquire(&env.state_path(), false).expect("take the lock");
    let run = env.tick();
    run.assert_code(75);
    run.assert_stderr_contains(&format!("pid {}", std::process::id()));
    assert!(
        !env.state_path().exists(),
        "a locked tick does not touch the state"
    );
    env.ocpoll(&["status"]).assert_code(0);

    let mut waiting = env
        .dir
        .std_command()
        .envs(util::LAYOUT_ENV)
        .args(["tick", "--all", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocpoll tick --wait");
    // Not a timing assertion: whenever we look, a waiting tick has not finished.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        waiting.try_wait().expect("poll the child").is_none(),
        "tick --wait finished while the lock was held"
    );
    assert_eq!(mock.request_count(), 0, "nothing polled while waiting");
    drop(lock);
    let output = waiting.wait_with_output().expect("wait for tick --wait");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(mock.request_count(), 1, "it polled once it had the lock");
    assert!(env.watermark("locked", "contacts").is_some());
}

// -------------------------------------------------------------------------------------------
// 9. Unusable state files
// -------------------------------------------------------------------------------------------

/// `tick` and `status` on this state file exit 78, name it, and leave it as it was.
fn assert_state_refused(env: &Env, expected: &str) {
    let before = std::fs::read(env.state_path()).unwrap();
    for args in [&["tick", "--all"][..], &["status"][..]] {
        let run = env.ocpoll(args);
        run.assert_code(78);
        run.assert_stderr_contains("state.db");
        run.assert_stderr_contains(expected);
    }
    assert_eq!(
        std::fs::read(env.state_path()).unwrap(),
        before,
        "the state file is left untouched"
    );
}

#[test]
fn a_garbage_state_file_exits_78_and_is_kept() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    simple_instance(&env, &mock, "garbage");
    env.dir
        .create("state.db", &"this is not a database\n".repeat(100));
    assert_state_refused(&env, "not an ocpoll state file");
    assert_eq!(mock.request_count(), 0);
}

#[test]
fn a_truncated_state_file_exits_78_and_is_kept() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "truncated");
    env.tick_ok();
    let whole = std::fs::read(env.state_path()).unwrap();
    assert!(whole.len() > 8192, "state is {} bytes", whole.len());

    // Half of it, whole pages.
    let half = (whole.len() / 2) / 4096 * 4096;
    std::fs::write(env.state_path(), &whole[..half]).unwrap();
    assert_state_refused(&env, "corrupted or truncated");

    // Only the start of the header.
    std::fs::write(env.state_path(), &whole[..100]).unwrap();
    assert_state_refused(&env, "corrupted or truncated");
}

#[test]
fn a_state_file_from_a_newer_schema_exits_78() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "newer");
    env.tick_ok();
    let connection = rusqlite::Connection::open(env.state_path()).unwrap();
    connection.pragma_update(None, "user_version", 999).unwrap();
    drop(connection);
    assert_state_refused(&env, "newer ocpoll");
}

// -------------------------------------------------------------------------------------------
// 10. Invalid instances and --instance
// -------------------------------------------------------------------------------------------

#[test]
fn an_invalid_instance_does_not_stop_the_others() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "good");
    env.dir
        .create("instances.d/broken.json", "{\n  \"name\": \"broken\",\n");
    let run = env.tick();
    run.assert_code(1);
    run.assert_stderr_contains("broken.json");
    run.assert_stdout_contains("good");
    assert!(
        !run.stdout().contains("failed:"),
        "the valid instance's poll did not fail\n{}",
        run.show()
    );
    assert_eq!(env.line("good", "contacts")["last_result"], "ok");
    assert_eq!(mock.request_count(), 1);
}

#[test]
fn instance_option_limits_the_poll_and_reports_unknown_names() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "first");
    simple_instance(&env, &mock, "second");

    env.ocpoll(&["tick", "--all", "--instance", "first"])
        .assert_code(0);
    assert_eq!(env.line("first", "contacts")["last_result"], "ok");
    assert_eq!(
        env.line("second", "contacts")["last_poll_at"],
        Value::Null,
        "--instance first does not poll second"
    );
    assert_eq!(mock.request_count(), 1);

    let run = env.ocpoll(&["tick", "--all", "--instance", "nope"]);
    run.assert_code(1).assert_stderr_contains("nope");
    assert_eq!(mock.request_count(), 1, "an unknown name polls nothing");
}

// -------------------------------------------------------------------------------------------
// 11. status, orphans, and secrets
// -------------------------------------------------------------------------------------------

#[test]
fn status_shows_every_resource_and_never_a_secret() {
    const PASSWORD: &str = "hunter2-very-secret-password";
    const API_KEY: &str = "sk-live-very-secret-api-key";
    let env = Env::new();
    let with_password = env.start(MockProvider::builder().auth(MockAuth::Basic {
        username: "reader".into(),
        password: PASSWORD.into(),
    }));
    let with_key = env.start(MockProvider::builder().auth(MockAuth::ApiKey {
        header: "X-Api-Key".into(),
        value: API_KEY.into(),
    }));
    let base = base_time();
    with_password.upsert("p1", base, json!({}));
    with_key.upsert("k1", base, json!({}));
    let mut alpha = simple_instance(&env, &with_password, "alpha");
    alpha["configuration"]["username"] = json!("reader");
    alpha["configuration"]["password"] = json!(PASSWORD);
    env.write_instance(&alpha);
    let mut beta = simple_instance(&env, &with_key, "beta");
    beta["configuration"]["api.key"] = json!(API_KEY);
    beta["configuration"]["api.key.header"] = json!("X-Api-Key");
    env.write_instance(&beta);
    simple_instance(&env, &with_password, "gamma");

    let mut outputs = Vec::new();
    let baseline = env.ocpoll(&["tick", "--all", "--instance", "alpha", "--instance", "beta"]);
    baseline.assert_code(0);
    outputs.push(baseline);
    with_password.upsert("p2", plus(base, 10), json!({}));
    with_key.upsert("k2", plus(base, 10), json!({}));
    let changes = env.ocpoll(&["tick", "--all", "--instance", "alpha", "--instance", "beta"]);
    changes.assert_code(0);
    outputs.push(changes);
    // beta's file goes away; its state and pending notification stay.
    std::fs::remove_file(env.instance_path("beta")).unwrap();

    let status = env.status();
    let alpha_line = env.line("alpha", "contacts");
    let mut keys: Vec<&String> = alpha_line.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "instance",
            "last_error",
            "last_poll_at",
            "last_result",
            "next_due_at",
            "orphaned",
            "outbox_dead",
            "outbox_pending",
            "path_params",
            "resource",
            "watermark"
        ]
    );
    assert_eq!(alpha_line["orphaned"], false);
    assert_eq!(alpha_line["last_result"], "ok");
    assert!(time_field(&alpha_line["last_poll_at"]).is_some());
    assert!(time_field(&alpha_line["next_due_at"]).is_some());
    assert_eq!(time_field(&alpha_line["watermark"]), Some(plus(base, 10)));
    assert_eq!(alpha_line["outbox_pending"], 1);
    assert_eq!(alpha_line["outbox_dead"], 0);
    assert_eq!(alpha_line["last_error"], Value::Null);
    assert_eq!(alpha_line["path_params"], "");

    let beta_line = env.line("beta", "contacts");
    assert_eq!(beta_line["orphaned"], true, "{beta_line}");
    assert_eq!(beta_line["outbox_pending"], 1, "{beta_line}");
    assert_eq!(time_field(&beta_line["watermark"]), Some(plus(base, 10)));

    let gamma_line = env.line("gamma", "contacts");
    assert_eq!(gamma_line["orphaned"], false);
    assert_eq!(gamma_line["last_poll_at"], Value::Null, "never polled");
    assert_eq!(gamma_line["last_result"], Value::Null);
    assert_eq!(gamma_line["watermark"], Value::Null);
    assert_eq!(gamma_line["outbox_pending"], 0);
    assert_eq!(status.len(), 3, "{status:?}");

    let text = env.ocpoll(&["status"]);
    text.assert_code(0);
    text.assert_stdout_contains("beta (orphaned)")
        .assert_stdout_contains("never polled")
        .assert_stdout_contains("1 pending, 0 dead");
    outputs.push(text);
    outputs.push(env.ocpoll(&["status", "--json"]));

    for run in &outputs {
        let all = format!("{}{}", run.stdout(), run.stderr());
        for secret in [PASSWORD, API_KEY] {
            assert!(!all.contains(secret), "a secret leaked\n{}", run.show());
        }
    }
    for notification in env.outbox() {
        let body = String::from_utf8_lossy(&notification.bytes);
        assert!(
            !body.contains(PASSWORD) && !body.contains(API_KEY),
            "{body}"
        );
    }
    let state = String::from_utf8_lossy(&std::fs::read(env.state_path()).unwrap()).into_owned();
    assert!(
        !state.contains(PASSWORD) && !state.contains(API_KEY),
        "the state file holds no instance secret"
    );
}

// -------------------------------------------------------------------------------------------
// 12. state reset
// -------------------------------------------------------------------------------------------

#[test]
fn state_reset_rewinds_forgets_and_asks_first() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    simple_instance(&env, &mock, "rewind");
    env.tick_ok();
    mock.upsert("c2", plus(base, 10), json!({}));
    mock.upsert("c3", plus(base, 20), json!({}));
    env.tick_ok();
    let first = env.outbox();
    assert_eq!(
        all_kinds(&first),
        [kind("UPDATED", "c2"), kind("UPDATED", "c3")]
    );

    // Without --yes and without a terminal: a usage error, nothing changed.
    let to = format(SECONDS, plus(base, 5));
    let refused = env.ocpoll(&["state", "reset", "rewind/contacts", "--to", &to]);
    refused.assert_code(2).assert_stderr_contains("--yes");
    assert_eq!(env.watermark("rewind", "contacts"), Some(plus(base, 20)));
    let refused = env.ocpoll(&["state", "reset", "rewind"]);
    refused.assert_code(2);
    assert_eq!(env.watermark("rewind", "contacts"), Some(plus(base, 20)));

    // Rewind: the records after TIME come again, in a new notification.
    env.ocpoll(&["state", "reset", "rewind/contacts", "--to", &to, "--yes"])
        .assert_code(0);
    assert_eq!(env.watermark("rewind", "contacts"), Some(plus(base, 5)));
    env.tick_ok();
    let again = env.new_notifications(first.len());
    assert_eq!(
        all_kinds(&again),
        [kind("UPDATED", "c2"), kind("UPDATED", "c3")]
    );
    assert_ne!(again[0].id, first[0].id, "a new eventId");
    assert_eq!(env.watermark("rewind", "contacts"), Some(plus(base, 20)));

    // Forget: the next poll is a baseline again.
    env.ocpoll(&["state", "reset", "rewind", "--yes"])
        .assert_code(0);
    assert_eq!(env.watermark("rewind", "contacts"), None);
    mock.upsert("c4", plus(base, 30), json!({}));
    let before = env.outbox().len();
    env.tick_ok().assert_stdout_contains("baseline");
    assert!(
        env.new_notifications(before).is_empty(),
        "a baseline emits nothing"
    );
    assert_eq!(env.watermark("rewind", "contacts"), Some(plus(base, 30)));
}

/// A reset that lands while a poll of the resource is reading its pages wins: the poll's
/// commit sees another watermark than it started from and keeps nothing (docs/operations.md#commands: a reset
/// takes effect while ocpoll runs). Without the check, the poll would overwrite the reset.
#[test]
fn a_reset_during_a_poll_wins_over_the_polls_commit() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    simple_instance(&env, &mock, "racer");
    env.tick_ok();
    mock.upsert("c2", plus(base, 10), json!({}));
    // The next page request (the second the mock serves) takes 3 s: time for the reset.
    mock.fail_on(2, Failure::Slow(std::time::Duration::from_secs(3)));
    let to = format(SECONDS, plus(base, 5));
    let tick = std::thread::scope(|scope| {
        let tick = scope.spawn(|| env.tick());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while mock.request_count() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the poll never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        env.ocpoll(&["state", "reset", "racer/contacts", "--to", &to, "--yes"])
            .assert_code(0);
        tick.join().expect("the tick thread")
    });
    tick.assert_code(1)
        .assert_stdout_contains("the watermark was changed while the poll ran");
    assert_eq!(env.watermark("racer", "contacts"), Some(plus(base, 5)));
    assert!(env.outbox().is_empty(), "nothing of the stale poll");

    // The next poll starts from the reset watermark: c2 (after it) comes, c1 (before) does not.
    env.tick_ok();
    assert_eq!(all_kinds(&env.outbox()), [kind("UPDATED", "c2")]);
    assert_eq!(env.watermark("racer", "contacts"), Some(plus(base, 10)));
}

#[test]
fn state_reset_of_an_unknown_instance_changes_nothing_and_says_so() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "known");
    env.tick_ok();
    let watermark = env.watermark("known", "contacts");
    let run = env.ocpoll(&["state", "reset", "unknown", "--yes"]);
    run.assert_code(1).assert_stderr_contains("unknown");
    assert_eq!(env.watermark("known", "contacts"), watermark);
}

/// `orphaned` means the instance file is gone (StatusLine's doc, docs/design.md#the-outbox-and-delivery); an instance whose
/// file is still there with events switched off is paused, not orphaned.
#[test]
fn a_disabled_instance_is_not_orphaned() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    let mut instance = simple_instance(&env, &mock, "paused");
    env.tick_ok();
    instance["configuration"]["event.notification.enabled"] = json!(false);
    env.write_instance(&instance);
    let run = env.tick();
    run.assert_code(0).assert_stdout_contains("0 polled");
    let line = env.line("paused", "contacts");
    assert_eq!(line["orphaned"], false, "{line}");
}

#[test]
fn the_state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    simple_instance(&env, &mock, "private");
    env.tick_ok();
    let mode = std::fs::metadata(env.state_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn status_without_a_state_lists_configured_resources_and_creates_nothing() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    simple_instance(&env, &mock, "fresh");
    let run = env.ocpoll(&["status"]);
    run.assert_code(0)
        .assert_stdout_contains("fresh")
        .assert_stdout_contains("never polled")
        .assert_stdout_contains("No state yet");
    let line = env.line("fresh", "contacts");
    assert_eq!(line["last_poll_at"], Value::Null);
    assert_eq!(line["orphaned"], false);
    assert!(
        !env.state_path().exists(),
        "status does not create a state file"
    );
}

/// Issue 14: a state whose instances are gone says why the table has nothing configured: the
/// folder holds no instance files, and how many resources of the state are orphaned.
#[test]
fn status_with_state_but_no_instances_says_why() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "gone");
    env.tick().assert_code(0);
    std::fs::remove_file(env.instance_path("gone")).unwrap();

    let run = env.ocpoll(&["status"]);
    run.assert_code(0)
        .assert_stdout_contains("gone (orphaned)")
        .assert_stdout_contains("No instance files (*.json) in instances.d.")
        .assert_stdout_contains(
            "The state file state.db has 1 resource of 1 instance no longer present (orphaned)",
        );

    // A folder that does not exist says so.
    std::fs::remove_dir(env.dir.join("instances.d")).unwrap();
    env.ocpoll(&["status"])
        .assert_code(0)
        .assert_stdout_contains("The instances folder instances.d does not exist");

    // With an instance polled again, there is nothing to explain.
    env.dir.create_dir("instances.d");
    simple_instance(&env, &mock, "back");
    let run = env.ocpoll(&["status"]);
    assert!(
        !run.stdout().contains("No instance files"),
        "{}",
        run.show()
    );
    assert!(!run.stdout().contains("does not exist"), "{}", run.show());
}

/// Issue 14: a provider whose name does not resolve fails the poll once (no retries), in a few
/// words, and `status` keeps those words as the last error.
#[test]
fn a_dns_failure_is_short_in_the_log_and_in_status() {
    let env = Env::new();
    env.dir.create(
        "config.toml",
        "[poll]\nretries = 3\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
    );
    let instance = instance(
        &env,
        "nowhere",
        "https://api.acme.invalid/contacts?since=${date:yyyy-MM-dd'T'HH:mm:ss'Z'}",
        SECONDS,
    );
    env.write_instance(&instance);
    let run = env.tick();
    run.assert_code(1)
        .assert_stderr_contains("DNS lookup failed for api.acme.invalid");
    assert!(
        !run.stderr().contains("error sending request"),
        "{}",
        run.show()
    );
    assert!(!run.stderr().contains("attempts"), "{}", run.show());
    let line = env.line("nowhere", "contacts");
    let last_error = line["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("DNS lookup failed for api.acme.invalid"),
        "{line}"
    );
}

/// A `${env:NAME}` secret that is not set is an error for that instance in tick (naming the
/// key, never a value); set, it authenticates and is printed nowhere.
#[test]
fn env_secret_references_resolve_in_tick() {
    const PASSWORD: &str = "from-the-environment-5ecret";
    let env = Env::new();
    let mock = env.start(MockProvider::builder().auth(MockAuth::Basic {
        username: "reader".into(),
        password: PASSWORD.into(),
    }));
    let base = base_time();
    mock.upsert("c1", base, json!({}));
    let mut instance = simple_instance(&env, &mock, "env-secret");
    instance["configuration"]["username"] = json!("reader");
    instance["configuration"]["password"] = json!("${env:TICK_TEST_PASSWORD}");
    env.write_instance(&instance);

    let unset = env.tick();
    unset.assert_code(1);
    unset
        .assert_stderr_contains("TICK_TEST_PASSWORD")
        .assert_stderr_contains("password");
    assert_eq!(mock.request_count(), 0);

    let set = env
        .dir
        .command()
        .layout()
        .args(["tick", "--all"])
        .env("TICK_TEST_PASSWORD", PASSWORD)
        .run();
    set.assert_code(0);
    assert_eq!(env.line("env-secret", "contacts")["last_result"], "ok");
    assert!(!format!("{}{}", set.stdout(), set.stderr()).contains(PASSWORD));
}

/// An API key pasted into a resource URL's query is not printed when the request fails.
#[test]
fn a_failed_request_does_not_print_the_url_query() {
    const KEY: &str = "query-api-key-5ecret";
    let env = Env::new();
    let url = format!(
        "http://127.0.0.1:{}/hubs/crm/contacts?api_key={KEY}&where=updated_at>='${{gmtDate:{SECONDS}}}'",
        closed_port()
    );
    env.write_instance(&instance(&env, "leaky", &url, SECONDS));
    let run = env.tick();
    run.assert_code(1).assert_stdout_contains("failed");
    assert!(
        !format!("{}{}", run.stdout(), run.stderr()).contains(KEY),
        "{}",
        run.show()
    );
    let line = env.line("leaky", "contacts");
    assert!(!line.to_string().contains(KEY), "{line}");
    assert_eq!(line["last_result"], "failed");
}

#[test]
fn a_missing_instances_folder_exits_78() {
    let env = Env::new();
    std::fs::remove_dir(env.dir.join("instances.d")).unwrap();
    let run = env.tick();
    run.assert_code(78).assert_stderr_contains("instances.d");
    assert!(!env.state_path().exists());
}

/// docs/operations.md#configuration: every key of config.toml is also `OCPOLL_<SECTION>_<KEY>`; the poll backoff keys
/// (which tests set small) must be read from the environment like `OCPOLL_POLL_RETRIES`, so a
/// bad value is refused rather than silently ignored.
#[test]
fn poll_backoff_keys_are_read_from_the_environment() {
    let env = Env::new();
    for name in [
        "OCPOLL_POLL_RETRIES",
        "OCPOLL_POLL_BACKOFF_INITIAL_SECONDS",
        "OCPOLL_POLL_BACKOFF_MAX_SECONDS",
    ] {
        let run = env
            .dir
            .command()
            .layout()
            .args(["tick", "--all"])
            .env(name, "many")
            .run();
        run.assert_code(78).assert_stderr_contains(name);
    }
}

// -------------------------------------------------------------------------------------------
// 13. The log and the summary's reasons (docs/operations.md#ocpoll-tick)
// -------------------------------------------------------------------------------------------

/// stderr's lines that are JSON objects: the log of `--log-format json`.
fn json_log(run: &Run) -> Vec<Value> {
    run.stderr()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

#[test]
fn tick_logs_like_the_daemon_and_quiet_keeps_only_warnings() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "logged");

    // A poll line per poll on stderr, as JSON; the summary stays on stdout.
    let run = env.ocpoll(&["--log-format", "json", "tick", "--all"]);
    run.assert_code(0)
        .assert_stdout_contains("1 polled, 0 failed");
    let log = json_log(&run);
    let poll = log
        .iter()
        .find(|line| line["message"] == "poll" && line["instance"] == "logged")
        .unwrap_or_else(|| panic!("no JSON poll line on stderr\n{}", run.show()));
    assert_eq!(poll["resource"], "contacts", "{poll}");
    assert_eq!(poll["level"], "INFO", "{poll}");
    assert!(
        !run.stdout().contains("\"message\""),
        "the log went to stdout\n{}",
        run.show()
    );

    // Events now; the callback's port is closed, so delivery fails and is retried later: that
    // warning is what cron users read.
    mock.upsert("c2", plus(base_time(), 10), json!({}));
    let run = env.ocpoll(&["-q", "--log-format", "json", "tick", "--all"]);
    run.assert_code(0)
        .assert_stdout_contains("Delivery: 0 delivered, 1 pending");
    let log = json_log(&run);
    assert!(
        log.iter().all(|line| line["message"] != "poll"),
        "-q keeps info lines out\n{}",
        run.show()
    );
    let retry = log
        .iter()
        .find(|line| line["message"] == "delivery failed; will retry")
        .unwrap_or_else(|| panic!("no delivery warning on stderr\n{}", run.show()));
    assert_eq!(retry["instance"], "logged", "{retry}");
    assert_eq!(retry["level"], "WARN", "{retry}");

    // Text by default: the same lines, for people.
    let run = env.tick();
    run.assert_code(0).assert_stderr_contains("poll");
    assert!(json_log(&run).is_empty(), "text, not JSON\n{}", run.show());
}

#[test]
fn the_summary_counts_invalid_files_and_says_why_it_exits_1() {
    let env = Env::new();
    let mock = env.start(MockProvider::builder());
    mock.upsert("c1", base_time(), json!({}));
    simple_instance(&env, &mock, "good");
    env.dir
        .create("instances.d/broken.json", "{\n  \"name\": \"broken\",\n");
    env.dir.create("instances.d/empty.json", "");
    mock.fail_on(1, Failure::Unavailable(None));
    mock.fail_on(2, Failure::Unavailable(None));

    let run = env.tick();
    run.assert_code(1)
        .assert_stdout_contains("1 polled, 1 failed")
        .assert_stdout_contains("Skipped: 2 instance files invalid")
        .assert_stdout_contains("exit 1: 2 instance files invalid, 1 poll failed");
    run.assert_stderr_contains("broken.json")
        .assert_stderr_contains("empty.json");

    // Nothing failed: no reasons line.
    std::fs::remove_file(env.dir.join("instances.d/broken.json")).unwrap();
    std::fs::remove_file(env.dir.join("instances.d/empty.json")).unwrap();
    let run = env.tick_ok();
    assert!(!run.stdout().contains("exit 1"), "{}", run.show());
    assert!(!run.stdout().contains("Skipped"), "{}", run.show());
}

#[test]
fn an_empty_instances_folder_is_named_in_the_summary() {
    let env = Env::new();
    let run = env.tick_ok();
    run.assert_stdout_contains("No instance files: instances.d holds no *.json files.")
        .assert_stdout_contains("0 polled");
}
