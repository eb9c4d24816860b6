//! A fleet (SPEC 13, docs/operations.md#a-fleet-of-daemons): several `ocpoll run` sharing one
//! real PostgreSQL database (started by `ocpoll::testing::postgres`; skipped, saying so, where
//! PostgreSQL is not installed, and a failure instead when `OCPOLL_REQUIRE_POSTGRES=1`).
//!
//! The kill loop is the issue's own test: three daemons against mock providers and a receiver,
//! one of them killed with SIGKILL every few seconds (mid-poll, mid-delivery, wherever it is)
//! and started again, for a minute (`OCPOLL_FLEET_TEST_SECONDS` shortens it). Afterwards every
//! change must have reached the receiver, no eventId may carry two bodies, no change may travel
//! under two eventIds, and each instance's notifications must have arrived in order.

mod support;
mod util;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::mock_provider::MockProvider;
use support::mock_receiver::{MockReceiver, Reply};
use util::Dir;
use util::daemon::Daemon;

const KEY: &str = "fleet-test-key";
const INSTANCES: usize = 4;

/// A fresh database on the test server, or `None` (the test returns) without PostgreSQL.
fn database() -> Option<String> {
    let server = ocpoll::testing::postgres::server()?;
    Some(server.fresh_database())
}

/// `[state] lease_seconds = 3`: a killed node's work is taken over within seconds.
const CONFIG: &str = "[state]\nlease_seconds = 3\n[poll]\njitter_seconds = 0\n\
                      [delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 1\n";

fn instance_file(name: &str, provider: &MockProvider, receiver: &MockReceiver) -> String {
    json!({"element": {"key": "crm"}, "name": name, "configuration": {
        "base.url": provider.base_url().as_str(),
        "event.notification.enabled": true,
        "event.notification.callback.url": receiver.url(),
        "event.notification.signature.key": KEY,
        "event.notification.batch.size": 3,
        "event.poller.refresh_interval": 1,
        "event.poller.configuration": {"contacts": {
            "url": "/hubs/crm/contacts?where=updated_at>='${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
            "idField": "id",
            "datesConfiguration": {"updatedDateField": "updated_at",
                "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'", "updatedDateTimezone": "GMT"}
        }}
    }})
    .to_string()
}

fn ocpoll_at(dir: &Dir, url: &str, args: &[&str]) -> util::Run {
    dir.command()
        .layout()
        .env("OCPOLL_STATE", url)
        .args(args)
        .run()
}

fn start_node(dir: &Dir, url: &str, number: usize, restart: usize) -> Daemon {
    Daemon::start(
        dir,
        &format!("node{number}.{restart}.log"),
        &[],
        &[("OCPOLL_STATE", url)],
    )
}

fn second(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_killed_at_random_lose_nothing_and_keep_each_instance_in_order() {
    let Some(url) = database() else { return };
    let seconds: u64 = std::env::var("OCPOLL_FLEET_TEST_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(60);
    let dir = Dir::with_layout(CONFIG);
    let receiver = MockReceiver::start(&[KEY]).await;
    // A few failures early on, so retries and backoff cross node boundaries too.
    for number in 1..=400u64 {
        if rand::random_range(0..6) == 0 {
            receiver.reply_on(number, Reply::Status(503));
        }
    }
    let mut providers = Vec::new();
    for index in 0..INSTANCES {
        let provider = MockProvider::builder().start().await;
        let name = format!("crm{index}");
        dir.create(
            format!("instances.d/{name}.json"),
            &instance_file(&name, &provider, &receiver),
        );
        providers.push(provider);
    }
    let migrated = ocpoll_at(&dir, &url, &["state", "migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.stderr());
    // The baseline of every resource (a first poll emits nothing).
    let baseline = ocpoll_at(&dir, &url, &["tick", "--all"]);
    assert_eq!(baseline.code(), Some(0), "{}", baseline.stderr());

    let mut nodes: Vec<Daemon> = (0..3).map(|n| start_node(&dir, &url, n, 0)).collect();
    let mut restarts = [0usize; 3];
    let mut changes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut serial = 0u64;
    let mut kills = 0;
    let started = Instant::now();
    let mut next_kill = Instant::now() + Duration::from_millis(rand::random_range(1000..3000));
    while started.elapsed() < Duration::from_secs(seconds) {
        // A new record each time, each at the current second: (id, date) names the change.
        let index = rand::random_range(0..INSTANCES);
        serial += 1;
        let id = format!("crm{index}-c{serial}");
        let now = Utc::now();
        providers[index].upsert(&id, now, json!({"serial": serial}));
        changes
            .entry(format!("crm{index}"))
            .or_default()
            .push((id, second(now)));
        if Instant::now() >= next_kill {
            let victim = rand::random_range(0..3);
            let _ = nodes[victim].child_mut().kill(); // SIGKILL, wherever it is
            let _ = nodes[victim].child_mut().wait();
            kills += 1;
            restarts[victim] += 1;
            nodes[victim] = start_node(&dir, &url, victim, restarts[victim]);
            next_kill = Instant::now() + Duration::from_millis(rand::random_range(1500..4000));
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..300))).await;
    }

    // Every change delivered: wait for the receiver to have them all (a bound, not a speed).
    let wanted: BTreeSet<(String, String)> = changes.values().flatten().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let delivered = delivered_changes(&receiver);
        if delivered.is_superset(&wanted) || Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for node in nodes {
        node.stop();
    }
    let missing: Vec<_> = wanted.difference(&delivered).take(10).collect();
    assert!(
        missing.is_empty(),
        "changes never delivered, e.g. {missing:?}"
    );

    // Duplicates only as repeated eventIds: an eventId always carries the same bytes, and no
    // change travels under two eventIds.
    let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut first_seen: Vec<String> = Vec::new();
    for request in receiver.received() {
        assert_eq!(request.elements_valid, Some(true), "signed with the key");
        let id = request.event_id();
        match bodies.get(&id) {
            Some(body) => assert_eq!(body, &request.body.to_vec(), "eventId {id} with two bodies"),
            None => {
                bodies.insert(id.clone(), request.body.to_vec());
                first_seen.push(id);
            }
        }
    }
    let mut by_change: BTreeMap<(String, String), String> = BTreeMap::new();
    // Each instance's notifications in order: walking first arrivals, an instance's change
    // dates never go back.
    let mut last_date: BTreeMap<String, String> = BTreeMap::new();
    for id in &first_seen {
        let body: serde_json::Value = serde_json::from_slice(&bodies[id]).unwrap();
        let instance = body["message"]["instanceId"].as_str().unwrap().to_owned();
        for event in body["message"]["events"].as_array().unwrap() {
            let change = (
                event["objectId"].as_str().unwrap().to_owned(),
                event["date"].as_str().unwrap().to_owned(),
            );
            if let Some(other) = by_change.insert(change.clone(), id.clone()) {
                panic!("change {change:?} under two eventIds: {other} and {id}");
            }
            let date = change.1.clone();
            let previous = last_date.entry(instance.clone()).or_default();
            assert!(
                *previous <= date,
                "{instance}: a change of {date} arrived after one of {previous}"
            );
            *previous = date;
        }
    }
    println!(
        "{seconds} s, {kills} kills, {} changes, {} notifications, {} requests",
        wanted.len(),
        bodies.len(),
        receiver.request_count()
    );
    assert!(kills >= 3, "nodes were killed ({kills})");
}

/// (objectId, date) of every event the receiver got, duplicates folded.
fn delivered_changes(receiver: &MockReceiver) -> BTreeSet<(String, String)> {
    let mut changes = BTreeSet::new();
    for request in receiver.received() {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            continue;
        };
        for event in body["message"]["events"].as_array().into_iter().flatten() {
            if let (Some(id), Some(date)) = (event["objectId"].as_str(), event["date"].as_str()) {
                changes.insert((id.to_owned(), date.to_owned()));
            }
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_poll_each_resource_once_per_interval_between_them() {
    let Some(url) = database() else { return };
    let dir = Dir::with_layout(CONFIG);
    let receiver = MockReceiver::start(&[KEY]).await;
    let provider = MockProvider::builder().start().await;
    let mut file: serde_json::Value =
        serde_json::from_str(&instance_file("crm", &provider, &receiver)).unwrap();
    file["configuration"]["event.poller.refresh_interval"] = json!(2);
    dir.create("instances.d/crm.json", &file.to_string());
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    let nodes: Vec<Daemon> = (0..3).map(|n| start_node(&dir, &url, n, 0)).collect();
    let watched = Duration::from_secs(10);
    tokio::time::sleep(watched).await;
    let requests = provider.request_count();
    let polls: usize = nodes.iter().map(|node| node.poll_lines("crm")).sum();
    for node in nodes {
        node.stop();
    }
    // One node's worth: 10 s at a 2 s interval is at most 6 polls (one at the start). Three
    // nodes each polling would make about 15; fewer is only a slow machine.
    assert!(polls >= 2, "the resource was polled ({polls} polls)");
    assert!(
        polls <= 7 && requests <= 7,
        "each interval's poll ran on one node only: {polls} polls, {requests} requests in {watched:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_an_older_copy_of_an_instance_file_polls_nothing_of_it() {
    let Some(url) = database() else { return };
    let dir = Dir::with_layout(CONFIG);
    let receiver = MockReceiver::start(&[KEY]).await;
    let provider = MockProvider::builder().start().await;
    let current = instance_file("crm", &provider, &receiver);
    // The older copy's URL has another query parameter: its requests are told apart by it.
    let older = current.replace("/hubs/crm/contacts?", "/hubs/crm/contacts?copy=old&");
    dir.create("instances.d/crm.json", &current);
    let old_folder = dir.create_dir("old.d");
    let old_file = dir.create("old.d/crm.json", &older);
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old_file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    let current_node = start_node(&dir, &url, 0, 0);
    util::daemon::wait_until("the current node's first poll", &current_node, || {
        current_node.poll_lines("crm") >= 1
    })
    .await;
    let old_folder = old_folder.to_str().unwrap().to_owned();
    let stale_node = Daemon::start(
        &dir,
        "stale.log",
        &[],
        &[("OCPOLL_STATE", &url), ("OCPOLL_INSTANCES", &old_folder)],
    );
    // The current node stops; the stale one would be the only one left to poll.
    current_node.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stale_log = stale_node.log_text();
    stale_node.stop();
    let old_requests = provider
        .requests()
        .iter()
        .filter(|request| request.param("copy").is_some())
        .count();
    assert_eq!(old_requests, 0, "the older copy was never polled");
    assert!(
        stale_log.contains("older than another node"),
        "the stale node says why it does not poll:\n{stale_log}"
    );
}
