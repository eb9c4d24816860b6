//! Crash safety: a child process commits polls in a loop while this test `kill -9`s it at
//! random moments; after each kill the state must hold whole polls only.
//!
//! The child is this test binary re-run with [`CHILD_ENV`] set, running only
//! `crash_child_loop`. Polls are numbered per resource; poll p of a resource has a known set of
//! events and notifications, and its watermark is `base + p` seconds, so the state alone says
//! which polls committed and the outbox must hold exactly their notifications.

use super::*;
use crate::state::*;
// These tests are of the SQLite backend itself (its file, its connection).
use super::SqliteStore as Store;
use crate::detect::EventType;
use chrono::TimeZone;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

const CHILD_ENV: &str = "OCPOLL_TEST_CRASH_STATE";
const KEYS: [&str; 3] = ["contacts", "accounts", "leads"];
const EVENTS_PER_PAGE: usize = 4;
const EVENTS_PER_NOTIFICATION: usize = 3;

fn watermark_of_poll(poll: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + i64::from(poll), 0)
        .unwrap()
}

fn poll_of_watermark(watermark: Option<DateTime<Utc>>) -> u32 {
    watermark.map_or(0, |w| (w.timestamp() - 1_800_000_000) as u32)
}

fn events_in_poll(poll: u32) -> usize {
    5 + (poll as usize * 7) % 30
}

fn record_id(poll: u32, index: usize) -> String {
    format!("p{poll}-e{index}")
}

fn updated(poll: u32, index: usize) -> i64 {
    i64::from(poll) * 1_000 + index as i64
}

/// The notification ids and bodies poll `poll` of `resource` must produce, in order.
fn expected_notifications(resource: &str, poll: u32) -> Vec<(String, String)> {
    let ids: Vec<String> = (0..events_in_poll(poll))
        .map(|i| record_id(poll, i))
        .collect();
    ids.chunks(EVENTS_PER_NOTIFICATION)
        .enumerate()
        .map(|(batch, chunk)| (format!("{resource}-p{poll}-b{batch}"), chunk.join(",")))
        .collect()
}

fn resource_key(resource: &str) -> ResourceKey {
    ResourceKey::new("crash", resource, &BTreeMap::new())
}

/// One whole poll of `resource`, the way the poller will do it.
fn run_one_poll(store: &mut Store, resource: &str) {
    let key = resource_key(resource);
    let current = store
        .resource_state(&key)
        .unwrap()
        .and_then(|s| s.watermark);
    let poll_number = poll_of_watermark(current) + 1;
    let poll = store.begin_poll(&key).unwrap();
    let events: Vec<StagedEvent> = (0..events_in_poll(poll_number))
        .map(|i| StagedEvent {
            record_id: record_id(poll_number, i),
            updated: Some(updated(poll_number, i)),
            kind: StagedKind::Event(EventType::Created),
            date: "2027-01-15T08:00:00Z".to_owned(),
            path_params_json: None,
            raw: b"{}".to_vec(),
            hash: None,
        })
        .collect();
    for page in events.chunks(EVENTS_PER_PAGE) {
        store.stage_events(poll, page).unwrap();
    }
    let commit = store.begin_commit(poll).unwrap();
    let mut batch = Vec::new();
    let mut batch_number = 0;
    let mut flush = |batch: &mut Vec<String>| -> Result<(), StateError> {
        commit.insert_notification(NewNotification {
            id: format!("{resource}-p{poll_number}-b{batch_number}"),
            instance: "crash".to_owned(),
            body: batch.join(",").into_bytes(),
            events: batch.len() as u32,
            created_at: Utc::now(),
        })?;
        batch_number += 1;
        batch.clear();
        Ok(())
    };
    commit
        .for_each_staged(|event| {
            batch.push(event.record_id);
            if batch.len() == EVENTS_PER_NOTIFICATION {
                flush(&mut batch)?;
            }
            Ok::<(), StateError>(())
        })
        .unwrap();
    if !batch.is_empty() {
        flush(&mut batch).unwrap();
    }
    commit
        .finish(PollOutcome {
            window_floor: None,
            watermark: Some(watermark_of_poll(poll_number)),
            seen_floor: Some(updated(poll_number, 0)),
            next_due_at: None,
            records_read: events.len() as u64,
            events: events.len() as u64,
            polled_at: Utc::now(),
            problems: None,
        })
        .unwrap();
}

/// Not a test on its own: the child's loop (does nothing unless [`CHILD_ENV`] is set). It stops
/// by itself after a few seconds in case its parent is gone.
#[test]
fn crash_child_loop() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut store = Store::open(Path::new(&path), Synchronous::Full).unwrap();
    // Every other child leaves the leftovers to begin_poll, which must discard them too.
    if std::process::id().is_multiple_of(2) {
        store.discard_unfinished_polls().unwrap();
    }
    let started = Instant::now();
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(5) {
        run_one_poll(&mut store, KEYS[round % KEYS.len()]);
        round += 1;
    }
}

/// xorshift64: enough randomness for kill delays without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Checks that the state holds whole committed polls only; returns how many polls committed and
/// how many unfinished polls the killed child left behind.
fn check_invariants(path: &Path) -> (u32, usize) {
    let committed = check_outbox_and_watermarks(path);
    // Discard on a copy, so the next child still meets the leftovers (begin_poll must drop them).
    let copy = path.with_extension("copy");
    std::fs::copy(path, &copy).unwrap();
    let mut store = Store::open(&copy, Synchronous::Full).unwrap();
    let leftovers = store.discard_unfinished_polls().unwrap();
    let staging: i64 = store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM staged_event) + (SELECT count(*) FROM poll)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(staging, 0, "no staging survives discard_unfinished_polls");
    drop(store);
    std::fs::remove_file(&copy).unwrap();
    (committed, leftovers)
}

fn check_outbox_and_watermarks(path: &Path) -> u32 {
    // Opening replays the WAL of the killed child; dropping checkpoints it into the file.
    let store = Store::open(path, Synchronous::Full).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());

    let mut expected = Vec::new();
    let mut committed = 0;
    for resource in KEYS {
        let key = resource_key(resource);
        let state = store.resource_state(&key).unwrap();
        let polls = poll_of_watermark(state.as_ref().and_then(|s| s.watermark));
        committed += polls;
        for poll in 1..=polls {
            expected.extend(expected_notifications(resource, poll));
        }
        // The seen pairs are exactly the last committed poll's (the floor is its first event).
        let seen = store.seen_pairs(&key).unwrap();
        let wanted: HashSet<(String, i64)> = if polls == 0 {
            HashSet::new()
        } else {
            (0..events_in_poll(polls))
                .map(|i| (record_id(polls, i), updated(polls, i)))
                .collect()
        };
        assert_eq!(seen, wanted, "{resource}: seen pairs match poll {polls}");
    }

    let rows = store.outbox_list(&OutboxFilter::default()).unwrap();
    let mut found: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            let body = store.outbox_body(&row.id).unwrap().unwrap();
            (row.id.clone(), String::from_utf8(body).unwrap())
        })
        .collect();
    found.sort();
    expected.sort();
    assert_eq!(
        found, expected,
        "the outbox holds exactly the committed polls, whole"
    );
    committed
}

#[test]
fn kill_9_at_random_moments_leaves_whole_polls_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut committed_before = 0;
    let mut progressed = 0;
    for iteration in 0..30 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::sqlite::crash_tests::crash_child_loop",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(150)));
        // SIGKILL: no destructor, no rollback, no flush runs in the child.
        child.kill().unwrap();
        child.wait().unwrap();
        let (committed, leftovers) = check_invariants(&path);
        assert!(
            committed >= committed_before,
            "iteration {iteration}: committed polls went back (seed {seed})"
        );
        if committed > committed_before {
            progressed += 1;
        }
        println!("iteration {iteration}: {committed} polls committed, {leftovers} unfinished");
        committed_before = committed;
    }
    assert!(
        progressed > 0,
        "the child never committed a poll: the test tested nothing"
    );
}
