//! Window mode (docs/design.md#window-mode): a resource with a `${date:}` macro in its URL and
//! no `datesConfiguration`, as Open Connectors' own connector guides configure them. The mock
//! provider filters by the macro's date, so a poll that filled it with its own time (what
//! ocpoll did before window mode, treating the resource as a snapshot) saw nothing new and lost
//! every change. Here every change must reach the receiver exactly once (after deduplication by
//! eventId), as UPDATED, and nothing is ever DELETED: with creates and updates in the same
//! second as a poll, late commits inside the lookback overlap, several pages, and `kill -9` at
//! random points of the ticks.

mod support;
mod util;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::mock_provider::{Failure, MockProvider, Paging};
use support::mock_receiver::MockReceiver;
use util::Dir;

const KEY: &str = "window-test-key";
const FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";

/// One change as the receiver tells it apart: the record id and the version it carried.
type Change = (String, u64);

fn ocpoll(dir: &Dir, args: &[&str]) -> Command {
    let mut command = util::daemon::layout_command(dir, args);
    command.stderr(Stdio::null());
    command
}

/// A layout with one window-mode instance polling `provider` and delivering to `receiver`.
fn layout(provider: &MockProvider, receiver: &MockReceiver, lookback: Option<u64>) -> Dir {
    let dir = Dir::new();
    dir.create(
        "config.toml",
        "[poll]\nretries = 0\n[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
    );
    let mut resource = json!({
        "url": format!("/hubs/crm/contacts?where=updated_at>='${{gmtDate:{FORMAT}}}'"),
        "idField": "id",
        // Pages of 2 (ocpoll asks for 200 a page otherwise): polls stage page by page.
        "pagination": {"type": "auto", "pageSize": 2}
    });
    if let Some(seconds) = lookback {
        resource["lookbackSeconds"] = json!(seconds);
    }
    let instance = json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
        "base.url": provider.base_url().as_str(),
        "event.notification.enabled": true,
        "event.notification.callback.url": receiver.url(),
        "event.notification.signature.key": KEY,
        "event.notification.batch.size": 3,
        "event.poller.refresh_interval": 1,
        "event.poller.configuration": {"contacts": resource}
    }});
    dir.create("instances.d/crm.json", &instance.to_string());
    dir
}

fn tick(dir: &Dir) -> std::process::Output {
    ocpoll(dir, &["tick", "--all"])
        .stdout(Stdio::piped())
        .output()
        .expect("ocpoll tick runs")
}

/// Every event the receiver got, once per eventId (a notification sent twice counts once),
/// as (eventType, change); panics if one eventId came with two different bodies.
fn delivered(receiver: &MockReceiver) -> Vec<(String, Change)> {
    let mut by_id: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for request in receiver.received() {
        assert_eq!(request.elements_valid, Some(true), "signature");
        let body = request.body.to_vec();
        let previous = by_id.insert(request.event_id(), body.clone());
        assert!(previous.is_none_or(|p| p == body), "same id, other bytes");
    }
    let mut events = Vec::new();
    for body in by_id.values() {
        let value: Value = serde_json::from_slice(body).unwrap();
        let raw = value["message"]["raw"]["contacts"].as_array().unwrap();
        for (event, record) in value["message"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .zip(raw)
        {
            let id = event["objectId"].as_str().unwrap().to_owned();
            assert_eq!(record["id"], id.as_str(), "raw follows events");
            let version = record["v"].as_u64().expect("the record's version");
            events.push((
                event["eventType"].as_str().unwrap().to_owned(),
                (id, version),
            ));
        }
    }
    events
}

/// Checks every change arrived exactly once, as UPDATED; returns how many events arrived.
fn assert_exactly_once(receiver: &MockReceiver, changes: &BTreeSet<Change>) -> usize {
    let events = delivered(receiver);
    let types: BTreeSet<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(
        types.iter().all(|kind| *kind == "UPDATED"),
        "window mode sends UPDATED only, got {types:?}"
    );
    let got: Vec<&Change> = events.iter().map(|(_, change)| change).collect();
    let unique: BTreeSet<Change> = got.iter().map(|change| (*change).clone()).collect();
    assert_eq!(unique.len(), got.len(), "a change in two notifications");
    let missing: Vec<&Change> = changes.difference(&unique).collect();
    let extra: Vec<&Change> = unique.difference(changes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, not changes {extra:?}"
    );
    got.len()
}

/// Makes a change the provider will serve: record `id` at version `version`, updated `at`.
fn change(provider: &MockProvider, id: &str, version: u64, at: DateTime<Utc>) -> Change {
    provider.upsert(id, at, json!({"v": version}));
    (id.to_owned(), version)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_of_a_date_filtered_url_arrives_once_as_updated_and_nothing_is_deleted() {
    let provider = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 2 })
        .start()
        .await;
    let receiver = MockReceiver::start(&[KEY]).await;
    // A short lookback: the overlap between windows is seconds, so the filter's edge matters.
    let dir = layout(&provider, &receiver, Some(2));
    // Records that exist before the baseline are not changes.
    let before = Utc::now() - TimeDelta::minutes(5);
    for n in 0..5 {
        provider.upsert(&format!("old{n}"), before, json!({"v": 0}));
    }
    let baseline = tick(&dir);
    assert_eq!(baseline.status.code(), Some(0), "{baseline:?}");
    assert_eq!(receiver.request_count(), 0, "a baseline sends nothing");

    let mut changes = BTreeSet::new();
    let mut version = 0;
    for round in 0..8u64 {
        // Creates and updates stamped now: the same second as the poll that follows.
        for n in 0..5 {
            version += 1;
            let id = format!("c{}", (round * 3 + n) % 11);
            changes.insert(change(&provider, &id, version, Utc::now()));
        }
        // An update of an old record, and one committed late: its date is a second in the
        // past, inside the overlap the lookback re-reads.
        version += 1;
        changes.insert(change(
            &provider,
            &format!("old{}", round % 5),
            version,
            Utc::now(),
        ));
        version += 1;
        let late = Utc::now() - TimeDelta::seconds(1);
        changes.insert(change(&provider, "late", version, late));
        let run = tick(&dir);
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        // A second tick right away: the same window again, nothing new.
        let again = tick(&dir);
        assert_eq!(again.status.code(), Some(0), "{again:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Records untouched for longer than the window are not DELETED either (the provider's
    // filter leaves them out; only snapshot mode may read absence as deletion).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let run = tick(&dir);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let events = assert_exactly_once(&receiver, &changes);
    println!(
        "window mode: {} changes made, {events} delivered, 0 duplicates, 0 DELETED",
        changes.len()
    );
}

/// A page that fails (config: no retries) fails the window poll: nothing is sent, the window
/// does not move, and the next poll, asking from the same place, sends the changes once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_page_keeps_the_window_and_the_next_poll_sends_its_changes_once() {
    let provider = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 2 })
        .start()
        .await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let dir = layout(&provider, &receiver, Some(2));
    assert_eq!(tick(&dir).status.code(), Some(0), "baseline");
    let asked = |number: usize| provider.requests()[number].param("where");
    let baseline_window = asked(0);

    let mut changes = BTreeSet::new();
    for version in 1..=5 {
        changes.insert(change(
            &provider,
            &format!("f{version}"),
            version,
            Utc::now(),
        ));
    }
    // The second page of the next poll fails.
    provider.fail_on(provider.request_count() + 2, Failure::Status(500));
    let failed = tick(&dir);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(String::from_utf8_lossy(&failed.stdout).contains("failed: HTTP 500"));
    assert_eq!(receiver.request_count(), 0, "a failed poll sends nothing");

    let first_retry = provider.request_count() as usize;
    let run = tick(&dir);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    // The poll after the failure asks from where the failed one did.
    assert_eq!(asked(first_retry), asked(1));
    assert_ne!(asked(1), baseline_window);
    assert_exactly_once(&receiver, &changes);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_starts_at_the_previous_polls_provider_time_minus_a_minute() {
    // The provider's clock runs an hour ahead: the window must follow its clock, not ocpoll's.
    let provider = MockProvider::builder()
        .date_skew(TimeDelta::hours(1))
        .start()
        .await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let dir = layout(&provider, &receiver, None);
    let before = Utc::now();
    let baseline = tick(&dir);
    let after = Utc::now();
    assert_eq!(baseline.status.code(), Some(0), "{baseline:?}");
    let run = tick(&dir);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let asked = provider.requests()[1]
        .param("where")
        .expect("a where filter");
    let since = asked
        .strip_prefix("updated_at>='")
        .and_then(|rest| rest.strip_suffix('\''))
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("a date in {asked:?}"))
        .with_timezone(&Utc);
    // The baseline's first answer carried the provider's Date (an hour ahead, whole seconds):
    // the next window starts a minute before it.
    let earliest = before + TimeDelta::hours(1) - TimeDelta::seconds(61);
    let latest = after + TimeDelta::hours(1) - TimeDelta::seconds(60);
    assert!(
        earliest <= since && since <= latest,
        "the window starts at {since}, not between {earliest} and {latest}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_window_polls_loses_and_duplicates_no_change() {
    let provider = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 2 })
        .start()
        .await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let dir = layout(&provider, &receiver, Some(5));
    let baseline = tick(&dir);
    assert_eq!(baseline.status.code(), Some(0), "{baseline:?}");

    let mut changes = BTreeSet::new();
    let mut version = 0;
    let mut killed = 0;
    // Each tick is killed at a random point of its run (`KillTimer`).
    let mut kills = util::daemon::KillTimer::new(150.0);
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        for _ in 0..rand::random_range(0..4u64) {
            version += 1;
            // A new record each time: a record changed twice before a committed poll read it
            // would be one change to the provider's reader, not two (updates of one record
            // are the test above).
            let id = format!("k{version}");
            changes.insert(change(&provider, &id, version, Utc::now()));
        }
        let mut child = ocpoll(&dir, &["tick", "--all"]).spawn().unwrap();
        if kills.kill(&mut child).await {
            killed += 1;
        }
        // Rounds are spread over more time than the lookback, so windows move on.
        if round % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    // Let it finish: ticks until the outbox is empty.
    util::daemon::tick_until_drained(&dir);
    assert!(
        killed > ROUNDS / 3,
        "most ticks were killed mid-run ({killed})"
    );
    let events = assert_exactly_once(&receiver, &changes);
    println!(
        "window mode under kill -9: {ROUNDS} ticks, {killed} killed; {} changes, {events} delivered once each",
        changes.len()
    );
}

#[test]
fn try_and_validate_say_a_date_filtered_url_without_dates_is_window_mode() {
    let dir = Dir::new();
    let instance = json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
        "base.url": "http://127.0.0.1:9/api",
        "event.notification.enabled": true,
        "event.notification.callback.url": "http://127.0.0.1:9/hook",
        "event.poller.refresh_interval": 5,
        "event.poller.configuration": {
            "contacts": {
                "url": format!("/contacts?where=updated_at>='${{date:{FORMAT}}}'"),
                "idField": "id"
            },
            "accounts": {"url": "/accounts", "idField": "id"}
        }
    }});
    dir.create("crm.json", &instance.to_string());
    let trial = dir.run(["try", "crm.json", "contacts", "--json"]);
    let report: Value = serde_json::from_str(&trial.stdout()).expect("try --json");
    assert_eq!(report["mode"], "window", "{}", trial.show());
    assert_eq!(report["lookback_seconds"], 60, "{}", trial.show());
    let trial = dir.run(["try", "crm.json", "accounts", "--json"]);
    let report: Value = serde_json::from_str(&trial.stdout()).expect("try --json");
    assert_eq!(report["mode"], "snapshot", "{}", trial.show());

    let validated = dir.run(["validate", "--format", "json", "crm.json"]);
    validated.assert_code(0);
    let notes = validated.notes();
    let note = |resource: &str| {
        let path = format!("configuration.event.poller.configuration.{resource}");
        notes
            .iter()
            .find(|note| note.path == path)
            .unwrap_or_else(|| panic!("no note for {path}\n{}", validated.show()))
            .message
            .clone()
    };
    assert!(
        note("contacts").starts_with("window mode"),
        "{}",
        validated.show()
    );
    assert!(note("contacts").contains("lookbackSeconds (60)"));
    assert!(
        note("accounts").starts_with("snapshot mode"),
        "{}",
        validated.show()
    );
    let text = dir.run(["validate", "crm.json"]);
    text.assert_code(0);
    text.assert_stdout_contains(
        "crm.json: configuration.event.poller.configuration.contacts: info: window mode",
    );
    text.assert_stdout_contains("crm.json: OK");
}
