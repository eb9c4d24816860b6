//! `kill -9` during ticks never loses a notification (docs/design.md#the-outbox-and-delivery and docs/design.md#state): the real binary is
//! killed at random points while it polls and delivers to a flaky receiver, many times, then
//! allowed to finish. Every change of the mock provider must reach the receiver exactly once
//! after deduplication by eventId, and no eventId may carry a change another one carried.

mod support;
mod util;

use chrono::{TimeDelta, Utc};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use support::mock_provider::MockProvider;
use support::mock_receiver::{MockReceiver, Reply};
use util::Dir;

const KEY: &str = "crash-test-key";
const ROUNDS: usize = 200;

fn ocpoll(dir: &Dir, args: &[&str]) -> Command {
    let mut command = util::daemon::layout_command(dir, args);
    command.stderr(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_ticks_loses_no_change_and_duplicates_none() {
    let dir = Dir::new();
    dir.create(
        "config.toml",
        "[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
    );
    let provider = MockProvider::builder().start().await;
    let receiver = MockReceiver::start(&[KEY]).await;
    // Flaky: about a third of the first requests fail, in every way a receiver can.
    let failures = [
        Reply::Status(503),
        Reply::Status(500),
        Reply::Status(429),
        Reply::RetryAfter(0),
        Reply::Hangup,
    ];
    for number in 1..=5000u64 {
        if rand::random_range(0..3) == 0 {
            let pick = rand::random_range(0..failures.len());
            receiver.reply_on(number, failures[pick].clone());
        }
    }
    let instance = json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
        "base.url": provider.base_url().as_str(),
        "event.notification.enabled": true,
        "event.notification.callback.url": receiver.url(),
        "event.notification.signature.key": KEY,
        "event.notification.batch.size": 2,
        "event.poller.refresh_interval": 1,
        "event.poller.configuration": {"contacts": {
            "url": "/hubs/crm/contacts?where=updated_at>='${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
            "idField": "id",
            "datesConfiguration": {"updatedDateField": "updated_at",
                "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'", "updatedDateTimezone": "GMT"}
        }}
    }});
    dir.create("instances.d/crm.json", &instance.to_string());
    let baseline = ocpoll(&dir, &["tick", "--all"]).status().unwrap();
    assert_eq!(baseline.code(), Some(0));

    // Every change gets its own updated second, so (id, date) names it.
    let start = Utc::now() + TimeDelta::seconds(5);
    let mut changes: BTreeSet<(String, String)> = BTreeSet::new();
    let mut second = 0i64;
    let mut killed = 0;
    // Each tick is killed at a random point of its run (`KillTimer`).
    let mut kills = util::daemon::KillTimer::new(200.0);
    for round in 0..ROUNDS {
        for _ in 0..rand::random_range(0..4) {
            second += 1;
            // A new record each time: a record changed twice before a poll saw it would be
            // one change to the provider's reader, not two.
            let id = format!("c{second}");
            let updated = start + TimeDelta::seconds(second);
            provider.upsert(&id, updated, json!({"round": round}));
            changes.insert((id, updated.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
        let mut child = ocpoll(&dir, &["tick", "--all"]).spawn().unwrap();
        if kills.kill(&mut child).await {
            killed += 1;
        }
    }

    // Let it finish: a healthy receiver, ticks until the outbox is empty.
    receiver.reply_by_default(Reply::Status(200));
    for number in receiver.request_count() + 1..=5000 {
        receiver.reply_on(number, Reply::Status(200));
    }
    util::daemon::tick_until_drained(&dir);
    assert!(
        killed > ROUNDS / 3,
        "most ticks were killed mid-run ({killed})"
    );

    // Dedupe by eventId; the same eventId must always carry the same bytes.
    let mut by_id: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for request in receiver.received() {
        assert_eq!(request.elements_valid, Some(true));
        let body = request.body.to_vec();
        let previous = by_id.insert(request.event_id(), body.clone());
        assert!(previous.is_none_or(|p| p == body), "same id, other bytes");
    }
    let mut delivered: Vec<(String, String)> = Vec::new();
    for body in by_id.values() {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        for event in value["message"]["events"].as_array().unwrap() {
            delivered.push((
                event["objectId"].as_str().unwrap().to_owned(),
                event["date"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let unique: BTreeSet<(String, String)> = delivered.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "a change in two notifications"
    );
    assert_eq!(unique, changes, "every change exactly once");
    let requests = receiver.request_count();
    println!(
        "{ROUNDS} ticks, {killed} killed mid-run; {} changes in {} notifications; {requests} requests",
        changes.len(),
        by_id.len()
    );
    assert!(
        requests as usize > by_id.len(),
        "some were sent more than once"
    );
}
