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
        "event.poller.refresh_seconds": 1,
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
    file["configuration"]["event.poller.refresh_seconds"] = json!(2);
    dir.create("instances.d/crm.json", &file.to_string());
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    let nodes: Vec<Daemon> = (0..3).map(|n| start_node(&dir, &url, n, 0)).collect();
    let watched = Duration::from_secs(10);
    tokio::time::sleep(watched).await;
    let requests = provider.request_count();
    let polls: usize = nodes.iter().map(|node| node.poll_lines("crm")).sum();
    if std::env::var("OCPOLL_FLEET_TEST_LOGS").is_ok() {
        for node in &nodes {
            println!("---\n{}", node.log_text());
        }
    }
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

#[tokio::test(flavor = "multi_thread")]
async fn without_kills_three_daemons_send_each_notification_once() {
    let Some(url) = database() else { return };
    let dir = Dir::with_layout(CONFIG);
    let receiver = MockReceiver::start(&[KEY]).await;
    // Slow answers: without delivery leases, the three nodes' passes overlap on one queue and
    // send its head two or three times.
    receiver.reply_by_default(Reply::Slow(Duration::from_millis(100)));
    let provider = MockProvider::builder().start().await;
    let mut file: serde_json::Value =
        serde_json::from_str(&instance_file("crm", &provider, &receiver)).unwrap();
    file["configuration"]["event.notification.batch.size"] = json!(1);
    dir.create("instances.d/crm.json", &file.to_string());
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    assert_eq!(ocpoll_at(&dir, &url, &["tick", "--all"]).code(), Some(0));
    let now = Utc::now();
    for number in 0..20 {
        provider.upsert(&format!("c{number}"), now, json!({"n": number}));
    }
    let nodes: Vec<Daemon> = (0..3).map(|n| start_node(&dir, &url, n, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered_changes(&receiver).len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer, for any second send to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in nodes {
        node.stop();
    }
    assert_eq!(
        delivered_changes(&receiver).len(),
        20,
        "every change delivered"
    );
    let ids: Vec<String> = receiver.received().iter().map(|r| r.event_id()).collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "one node at a time sends an instance's queue: no notification went twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commands_work_against_the_database_and_never_print_its_password() {
    let Some(url) = database() else { return };
    let server = ocpoll::testing::postgres::server().unwrap();
    // A failed delivery waits: the notification stays pending for `outbox list`.
    let dir =
        Dir::with_layout("[delivery]\nbackoff_initial_seconds = 600\nbackoff_max_seconds = 600\n");
    let receiver = MockReceiver::start(&[KEY]).await;
    let provider = MockProvider::builder().start().await;
    dir.create(
        "instances.d/crm.json",
        &instance_file("crm", &provider, &receiver),
    );
    // Not migrated yet: the daemon and tick refuse it, saying what to run.
    let refused = ocpoll_at(&dir, &url, &["tick", "--all"]);
    assert_eq!(refused.code(), Some(78), "{}", refused.show());
    assert!(
        refused.stderr().contains("ocpoll state migrate"),
        "{}",
        refused.show()
    );
    let migrated = ocpoll_at(&dir, &url, &["state", "migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.show());
    // Twice is fine (each node may run it at start).
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    assert_eq!(ocpoll_at(&dir, &url, &["tick", "--all"]).code(), Some(0));
    provider.upsert("c1", Utc::now(), json!({}));
    receiver.reply_by_default(Reply::Status(503));
    // `--all` polls even what is not due, as with a file.
    let tick = ocpoll_at(&dir, &url, &["tick", "--all"]);
    assert!(
        tick.stdout().contains("1 events in 1 notifications"),
        "{}",
        tick.show()
    );
    let status = ocpoll_at(&dir, &url, &["status"]);
    assert_eq!(status.code(), Some(0), "{}", status.show());
    assert!(status.stdout().contains("crm"), "{}", status.show());
    let listed = ocpoll_at(&dir, &url, &["outbox", "list"]);
    assert_eq!(listed.code(), Some(0), "{}", listed.show());
    assert!(
        listed.stdout().contains("crm"),
        "a pending notification: {}",
        listed.show()
    );
    let reset = ocpoll_at(&dir, &url, &["state", "reset", "crm", "--yes"]);
    assert_eq!(reset.code(), Some(0), "{}", reset.show());
    for run in [&migrated, &tick, &status, &listed, &reset] {
        let text = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            !text.contains(server.password()),
            "the database password was printed:\n{text}"
        );
    }
}

/// GET `path` on the daemon's metrics address: (status, body).
async fn get(address: &str, path: &str) -> (u16, String) {
    ocpoll::http::crypto::install_provider();
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("the metrics server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_nodes_polls_and_leases_and_healthz_fails_when_the_database_takes_no_write()
 {
    let Some(url) = database() else { return };
    let server = ocpoll::testing::postgres::server().unwrap();
    let db = ocpoll::testing::postgres::database_name(&url).to_owned();
    let dir = Dir::with_layout(CONFIG);
    let receiver = MockReceiver::start(&[KEY]).await;
    let provider = MockProvider::builder().start().await;
    dir.create(
        "instances.d/crm.json",
        &instance_file("crm", &provider, &receiver),
    );
    assert_eq!(ocpoll_at(&dir, &url, &["state", "migrate"]).code(), Some(0));
    let node = Daemon::start(
        &dir,
        "node.log",
        &["--metrics-addr", "127.0.0.1:0"],
        &[("OCPOLL_STATE", &url)],
    );
    let mut address = None;
    util::daemon::wait_until("the metrics address", &node, || {
        address = node
            .log_lines()
            .iter()
            .find_map(|line| line["address"].as_str().map(str::to_owned));
        address.is_some() && node.poll_lines("crm") >= 2
    })
    .await;
    let address = address.unwrap();
    assert_eq!(get(&address, "/healthz").await.0, 200);
    let (status, metrics) = get(&address, "/metrics").await;
    assert_eq!(status, 200);
    let polls = metrics
        .lines()
        .find(|line| line.starts_with("ocpoll_fleet_polls{"))
        .unwrap_or_else(|| panic!("no fleet polls in:\n{metrics}"));
    let count: f64 = polls.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{polls}");
    assert!(
        metrics.contains("ocpoll_fleet_leases_held{") && metrics.contains("kind=\"delivery\""),
        "{metrics}"
    );
    // The database stops taking writes (as a standby would): new sessions are read-only and
    // the daemon's are cut, so its next connection is one of those.
    server.psql(
        &db,
        &format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on"),
    );
    server.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let mut health = (0, String::new());
    for _ in 0..50 {
        health = get(&address, "/healthz").await;
        if health.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health.0, 503, "{}", health.1);
    // Not only the cut connection: the new one, read-only, fails the check too.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        health = get(&address, "/healthz").await;
        assert_eq!(
            health.0, 503,
            "a read-only database is unhealthy: {}",
            health.1
        );
    }
    assert!(health.1.contains("read-only"), "{}", health.1);
    assert!(!health.1.contains(server.password()), "{}", health.1);
    node.stop();
}

/// A database URL that cannot be used is a configuration error (exit 78, as for a damaged state
/// file), named without its password (no PostgreSQL needed).
#[test]
fn an_unusable_database_url_exits_78_without_printing_the_password() {
    let dir = Dir::with_layout(CONFIG);
    for url in [
        "postgres://ocpoll:bad-url-secret@127.0.0.1/db?sslmode=bogus",
        "postgres://ocpoll:bad-url-secret@127.0.0.1:notaport/db",
        "postgres://ocpoll:${env:OCPOLL_TEST_UNSET_PASSWORD}@127.0.0.1/db",
    ] {
        let run = ocpoll_at(&dir, url, &["status"]);
        let text = format!("{}{}", run.stdout(), run.stderr());
        assert_eq!(run.code(), Some(78), "{url}: {text}");
        assert!(!text.contains("bad-url-secret"), "{url}: {text}");
    }
}

/// A database that cannot be reached fails the command at once, naming where, never the password
/// (no PostgreSQL needed: nothing listens on port 1).
#[test]
fn an_unreachable_database_fails_the_command_without_printing_the_password() {
    let dir = Dir::with_layout(CONFIG);
    let url = "postgres://ocpoll:unreachable-secret@127.0.0.1:1/fleet?sslmode=disable";
    for args in [&["tick", "--all"][..], &["status"], &["state", "migrate"]] {
        let run = ocpoll_at(&dir, url, args);
        let text = format!("{}{}", run.stdout(), run.stderr());
        assert_ne!(run.code(), Some(0), "{args:?}: {text}");
        assert!(
            text.contains("127.0.0.1"),
            "{args:?} names the database: {text}"
        );
        assert!(
            !text.contains("unreachable-secret"),
            "{args:?} printed the password: {text}"
        );
    }
}
