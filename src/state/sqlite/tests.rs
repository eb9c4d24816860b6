//! Tests of the store against real SQLite files in temporary folders.

use super::*;
use crate::state::*;
// These tests are of the SQLite backend itself (its file, its connection).
use super::SqliteStore as Store;
use crate::detect::EventType;
use crate::http::StoredToken;
use crate::instance::Secret;
use chrono::TimeZone;
use std::os::unix::fs::PermissionsExt;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap()
}

fn key(instance: &str, resource: &str) -> ResourceKey {
    ResourceKey::new(instance, resource, &BTreeMap::new())
}

fn event(id: &str, updated: Option<i64>) -> StagedEvent {
    StagedEvent {
        record_id: id.to_owned(),
        updated,
        kind: StagedKind::Event(EventType::Updated),
        date: "2027-01-15T08:00:00Z".to_owned(),
        path_params_json: None,
        raw: format!(r#"{{"id":"{id}"}}"#).into_bytes(),
        hash: None,
    }
}

fn outcome(watermark: Option<DateTime<Utc>>, seen_floor: Option<i64>) -> PollOutcome {
    PollOutcome {
        watermark,
        seen_floor,
        window_floor: None,
        next_due_at: Some(at(600)),
        records_read: 3,
        events: 2,
        polled_at: at(1),
        problems: None,
    }
}

fn notification(id: &str, instance: &str, body: &[u8], events: u32) -> NewNotification {
    NewNotification {
        id: id.to_owned(),
        instance: instance.to_owned(),
        body: body.to_vec(),
        events,
        created_at: at(2),
    }
}

/// Commits `poll` with one notification per staged event, its body the event's raw bytes.
fn commit_one_per_event(
    store: &mut Store,
    poll: PollId,
    instance: &str,
    outcome: PollOutcome,
) -> Vec<String> {
    let commit = store.begin_commit(poll).unwrap();
    let mut ids = Vec::new();
    commit
        .for_each_staged(|staged| -> Result<(), StateError> {
            let id = match instance {
                "crm" => format!("n-{}-{}", staged.record_id, staged.updated.unwrap_or(0)),
                other => format!(
                    "{other}-{}-{}",
                    staged.record_id,
                    staged.updated.unwrap_or(0)
                ),
            };
            commit.insert_notification(notification(&id, instance, &staged.raw, 1))?;
            ids.push(id);
            Ok(())
        })
        .unwrap();
    commit.finish(outcome).unwrap();
    ids
}

fn staging_rows(store: &Store) -> i64 {
    store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM staged_event) + (SELECT count(*) FROM staged_snapshot)
                  + (SELECT count(*) FROM poll)",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

// ---- opening ----

#[test]
fn open_creates_a_private_wal_file_and_its_folders_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/state.db");
    {
        let mut store = Store::open(&path, Synchronous::Full).unwrap();
        store.reset_watermark("none", None, None).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
        store.stage_events(poll, &[event("1", Some(5))]).unwrap();
        commit_one_per_event(&mut store, poll, "crm", outcome(Some(at(5)), Some(0)));
        // The -wal file exists while a connection is open and inherits the file's mode.
        let wal = dir.path().join("deep/er/state.db-wal");
        let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode();
        assert_eq!(wal_mode & 0o777, 0o600);
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let folder = std::fs::metadata(dir.path().join("deep/er")).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("deep/er"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains(".new-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let store = Store::open(&path, Synchronous::Normal).unwrap();
    let state = store
        .resource_state(&key("crm", "contacts"))
        .unwrap()
        .unwrap();
    assert_eq!(state.watermark, Some(at(5)));
    assert_eq!(
        store.outbox_list(&OutboxFilter::default()).unwrap().len(),
        1
    );
    let synchronous: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
}

#[test]
fn open_existing_does_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let error = Store::open_existing(&path, Synchronous::Full).unwrap_err();
    assert!(matches!(error, StateError::Missing { .. }), "{error:?}");
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        "this is a shopping list, not a database\n".repeat(100),
    )
    .unwrap();
    let error = Store::open(&path, Synchronous::Full).unwrap_err();
    assert!(matches!(error, StateError::NotSqlite { .. }), "{error:?}");
    assert!(error.is_unusable_file());
    assert!(error.to_string().contains(&path.display().to_string()));
    assert!(error.to_string().contains("not an SQLite database"));
    // Untouched: never replaced by an empty state.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("this is a shopping list")
    );
}

/// A state file with enough rows to span many pages, closed cleanly (WAL checkpointed).
fn populated_state_file(path: &Path) {
    let mut store = Store::open(path, Synchronous::Normal).unwrap();
    for instance in 0..40 {
        let name = format!("instance-{instance}");
        let poll = store.begin_poll(&key(&name, "contacts")).unwrap();
        let events: Vec<_> = (0..50)
            .map(|i| event(&format!("{i}-{}", "x".repeat(40)), Some(i)))
            .collect();
        store.stage_events(poll, &events).unwrap();
        commit_one_per_event(&mut store, poll, &name, outcome(Some(at(9)), Some(0)));
    }
    drop(store);
    assert!(
        !path.with_extension("db-wal").exists(),
        "checkpointed on close"
    );
}

#[test]
fn a_truncated_state_file_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populated_state_file(&path);
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(length > 100_000, "{length}");
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(length / 2).unwrap();
    drop(file);
    let error = Store::open(&path, Synchronous::Full).unwrap_err();
    assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
    assert!(error.is_unusable_file());
    assert!(
        error.to_string().contains("corrupted or truncated"),
        "{error}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        length / 2,
        "left as it was"
    );
}

#[test]
fn a_state_file_cut_inside_its_header_or_emptied_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populated_state_file(&path);
    for length in [50, 0] {
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(length).unwrap();
        drop(file);
        let error = Store::open(&path, Synchronous::Full).unwrap_err();
        assert!(
            matches!(error, StateError::Corrupt { .. }),
            "{length}: {error:?}"
        );
    }
}

#[test]
fn a_damaged_page_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populated_state_file(&path);
    // Overwrite the second page (the first table's root) with garbage, keeping the length.
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    for byte in &mut bytes[page_size..page_size * 2] {
        *byte = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let error = Store::open(&path, Synchronous::Full)
        .and_then(|store| store.statuses().map(|_| ()))
        .unwrap_err();
    assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
}

#[test]
fn a_newer_schema_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path, Synchronous::Full).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 7)
        .unwrap();
    drop(conn);
    let error = Store::open(&path, Synchronous::Full).unwrap_err();
    match &error {
        StateError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, SCHEMA_VERSION + 7);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(error.is_unusable_file());
    assert!(error.to_string().contains("newer ocpoll"), "{error}");
    let conn = Connection::open(&path).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION + 7);
}

#[test]
fn readers_work_while_a_commit_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut daemon = Store::open(&path, Synchronous::Full).unwrap();
    let poll = daemon.begin_poll(&key("crm", "contacts")).unwrap();
    daemon.stage_events(poll, &[event("1", Some(5))]).unwrap();
    let commit = daemon.begin_commit(poll).unwrap();
    commit
        .insert_notification(notification("n1", "crm", b"{}", 1))
        .unwrap();

    let status = Store::open_existing(&path, Synchronous::Full).unwrap();
    let rows = status.statuses().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].state.watermark, None,
        "the commit is not visible yet"
    );
    assert!(status.outbox_depth().unwrap().is_empty());

    commit.finish(outcome(Some(at(5)), Some(0))).unwrap();
    assert_eq!(status.outbox_depth().unwrap()["crm"].pending, 1);
}

// ---- keys ----

#[test]
fn path_params_render_canonically_and_escape_separators() {
    let mut params = BTreeMap::new();
    assert_eq!(ResourceKey::render_path_params(&params), "");
    params.insert("calendarId".to_owned(), "primary".to_owned());
    assert_eq!(
        ResourceKey::new("cal", "events", &params).path_params,
        "calendarId=primary"
    );
    params.insert("a".to_owned(), "x&b=y%".to_owned());
    assert_eq!(
        ResourceKey::render_path_params(&params),
        "a=x%26b%3Dy%25&calendarId=primary"
    );
}

// ---- the poll lifecycle ----

#[test]
fn a_poll_commits_events_watermark_and_seen_pairs_in_order() {
    let mut store = Store::open_in_memory().unwrap();
    let contacts = key("crm", "contacts");
    let poll = store.begin_poll(&contacts).unwrap();
    let t = |s| nanos(at(s));
    let first_page = [event("b", Some(t(10))), event("a", Some(t(20)))];
    assert_eq!(store.stage_events(poll, &first_page).unwrap(), 2);
    // "a" again with the same updated (page boundary overlap): ignored, the first is kept.
    let mut again = event("a", Some(t(20)));
    again.raw = b"second copy".to_vec();
    let second_page = [again, event("c", Some(t(20))), event("a", Some(t(30)))];
    assert_eq!(store.stage_events(poll, &second_page).unwrap(), 2);

    let ids = commit_one_per_event(
        &mut store,
        poll,
        "crm",
        PollOutcome {
            problems: Some("record 9: bad date".to_owned()),
            ..outcome(Some(at(30)), Some(t(20)))
        },
    );
    assert_eq!(
        ids,
        [
            format!("n-b-{}", t(10)),
            format!("n-a-{}", t(20)),
            format!("n-c-{}", t(20)),
            format!("n-a-{}", t(30))
        ]
    );
    let listed: Vec<_> = store
        .outbox_list(&OutboxFilter::default())
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(listed, ids, "outbox order is staging order");
    assert_eq!(
        store.outbox_body(&ids[1]).unwrap().unwrap(),
        br#"{"id":"a"}"#.to_vec(),
        "first copy kept"
    );

    let state = store.resource_state(&contacts).unwrap().unwrap();
    assert_eq!(
        state,
        ResourceState {
            watermark: Some(at(30)),
            last_poll_at: Some(at(1)),
            last_result: Some(PollResult::Problems),
            last_error: Some("record 9: bad date".to_owned()),
            next_due_at: Some(at(600)),
            records_read: 3,
            events: 2,
        }
    );
    let seen = store.seen_pairs(&contacts).unwrap();
    let expected: HashSet<_> = [("a", t(20)), ("c", t(20)), ("a", t(30))]
        .into_iter()
        .map(|(id, updated)| (id.to_owned(), updated))
        .collect();
    assert_eq!(seen, expected, "b at t10 is below the floor");
    assert_eq!(staging_rows(&store), 0);
}

#[test]
fn seen_pairs_are_old_union_new_above_the_floor() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(poll, &[event("a", Some(10)), event("b", Some(20))])
        .unwrap();
    commit_one_per_event(&mut store, poll, "crm", outcome(None, Some(10)));
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(poll, &[event("c", Some(25)), event("d", Some(5))])
        .unwrap();
    commit_one_per_event(&mut store, poll, "crm", outcome(None, Some(20)));
    let seen = store.seen_pairs(&k).unwrap();
    let expected: HashSet<_> = [("b".to_owned(), 20), ("c".to_owned(), 25)].into();
    assert_eq!(seen, expected);

    // No floor keeps none.
    let poll = store.begin_poll(&k).unwrap();
    commit_one_per_event(&mut store, poll, "crm", outcome(None, None));
    assert!(store.seen_pairs(&k).unwrap().is_empty());
}

#[test]
fn dropping_the_commit_rolls_everything_back() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store.stage_events(poll, &[event("a", Some(10))]).unwrap();
    {
        let commit = store.begin_commit(poll).unwrap();
        commit
            .insert_notification(notification("n1", "crm", b"{}", 1))
            .unwrap();
        // No finish: an error in the caller, or a crash.
    }
    assert!(
        store
            .outbox_list(&OutboxFilter::default())
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.resource_state(&k).unwrap().unwrap().watermark, None);
    assert!(store.seen_pairs(&k).unwrap().is_empty());
    // The staging survives the rollback, so the same poll can still commit...
    let ids = commit_one_per_event(&mut store, poll, "crm", outcome(Some(at(0)), Some(0)));
    assert_eq!(ids.len(), 1);
}

#[test]
fn a_new_poll_of_the_same_resource_discards_the_unfinished_one() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let other = key("crm", "accounts");
    let old = store.begin_poll(&k).unwrap();
    store.stage_events(old, &[event("a", Some(10))]).unwrap();
    let other_poll = store.begin_poll(&other).unwrap();
    store
        .stage_events(other_poll, &[event("x", Some(1))])
        .unwrap();

    let new = store.begin_poll(&k).unwrap();
    assert_ne!(old, new);
    assert!(matches!(
        store.stage_events(old, &[event("b", Some(11))]),
        Err(StateError::PollGone(_))
    ));
    assert!(matches!(
        store.begin_commit(old),
        Err(StateError::PollGone(_))
    ));
    store.stage_events(new, &[event("c", Some(12))]).unwrap();
    let ids = commit_one_per_event(&mut store, new, "crm", outcome(Some(at(0)), Some(0)));
    assert_eq!(
        ids,
        [String::from("n-c-12")],
        "nothing of the discarded poll"
    );

    // The other resource's poll was not touched.
    let ids = commit_one_per_event(&mut store, other_poll, "crm", outcome(None, None));
    assert_eq!(ids, [String::from("n-x-1")]);
}

#[test]
fn discard_unfinished_polls_drops_all_staging() {
    let mut store = Store::open_in_memory().unwrap();
    for resource in ["a", "b", "c"] {
        let poll = store.begin_poll(&key("crm", resource)).unwrap();
        store.stage_events(poll, &[event("1", Some(1))]).unwrap();
        store.stage_snapshot(poll, &[("1", "h", b"{}")]).unwrap();
    }
    assert!(staging_rows(&store) > 0);
    assert_eq!(store.discard_unfinished_polls().unwrap(), 3);
    assert_eq!(staging_rows(&store), 0);
}

#[test]
fn a_failed_poll_records_its_error_and_leaves_the_watermark() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store.stage_events(poll, &[event("a", Some(10))]).unwrap();
    commit_one_per_event(&mut store, poll, "crm", outcome(Some(at(10)), Some(10)));

    let poll = store.begin_poll(&k).unwrap();
    store.stage_events(poll, &[event("b", Some(20))]).unwrap();
    store
        .record_poll_failure(&k, "HTTP 503 after 3 retries", at(50), Some(at(110)))
        .unwrap();
    let state = store.resource_state(&k).unwrap().unwrap();
    assert_eq!(state.watermark, Some(at(10)));
    assert_eq!(state.last_result, Some(PollResult::Failed));
    assert_eq!(
        state.last_error.as_deref(),
        Some("HTTP 503 after 3 retries")
    );
    assert_eq!(state.last_poll_at, Some(at(50)));
    assert_eq!(state.next_due_at, Some(at(110)));
    assert_eq!(staging_rows(&store), 0);
    assert_eq!(store.seen_pairs(&k).unwrap(), [("a".to_owned(), 10)].into());

    // A failure of a never-polled resource shows in status too.
    store
        .record_poll_failure(&key("crm", "new"), "timeout", at(50), None)
        .unwrap();
    let state = store.resource_state(&key("crm", "new")).unwrap().unwrap();
    assert_eq!(
        (state.watermark, state.last_result),
        (None, Some(PollResult::Failed))
    );
}

#[test]
fn snapshot_polls_find_changes_and_deletions() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("ats", "jobs");

    // First poll: records only the snapshot, in two pages, a duplicate id keeping the first.
    let poll = store.begin_snapshot_poll(&k).unwrap();
    store
        .stage_snapshot(
            poll,
            &[("1", "h1", b"one".to_vec()), ("2", "h2", b"two".to_vec())],
        )
        .unwrap();
    store
        .stage_snapshot(
            poll,
            &[("3", "h3", b"three".to_vec()), ("1", "hX", b"x".to_vec())],
        )
        .unwrap();
    let commit = store.begin_commit(poll).unwrap();
    let mut deleted = Vec::new();
    commit
        .snapshot_deletions(|id, raw| -> Result<(), StateError> {
            deleted.push((id, raw));
            Ok(())
        })
        .unwrap();
    assert!(deleted.is_empty());
    commit.finish(outcome(None, None)).unwrap();
    assert_eq!(store.snapshot_hash(&k, "1").unwrap().as_deref(), Some("h1"));
    let hashes = store.snapshot_hashes(&k, &["2", "3", "4"]).unwrap();
    assert_eq!(hashes.len(), 2);
    assert_eq!(hashes["3"], "h3");

    // Second poll: 1 unchanged, 2 changed, 3 gone, 4 new.
    let poll = store.begin_snapshot_poll(&k).unwrap();
    store
        .stage_snapshot(
            poll,
            &[
                ("1", "h1", b"one".as_slice()),
                ("2", "h2b", b"two b"),
                ("4", "h4", b"four"),
            ],
        )
        .unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit
        .snapshot_deletions(|id, raw| -> Result<(), StateError> {
            deleted.push((id, raw));
            Ok(())
        })
        .unwrap();
    assert_eq!(deleted, [("3".to_owned(), Some(b"three".to_vec()))]);
    commit.finish(outcome(None, None)).unwrap();
    assert_eq!(
        store.snapshot_hash(&k, "2").unwrap().as_deref(),
        Some("h2b")
    );
    assert_eq!(store.snapshot_hash(&k, "3").unwrap(), None);
    assert_eq!(store.snapshot_hash(&k, "4").unwrap().as_deref(), Some("h4"));

    // Third poll: the resource is empty; every record is deleted.
    let poll = store.begin_snapshot_poll(&k).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    let mut gone = Vec::new();
    commit
        .snapshot_deletions(|id, _| -> Result<(), StateError> {
            gone.push(id);
            Ok(())
        })
        .unwrap();
    commit.finish(outcome(None, None)).unwrap();
    assert_eq!(gone, ["1", "2", "4"]);
    assert!(
        store
            .snapshot_hashes(&k, &["1", "2", "4"])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_watermark_poll_leaves_the_snapshot_set_alone() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("ats", "jobs");
    let poll = store.begin_snapshot_poll(&k).unwrap();
    store.stage_snapshot(poll, &[("1", "h1", b"one")]).unwrap();
    store
        .begin_commit(poll)
        .unwrap()
        .finish(outcome(None, None))
        .unwrap();
    let poll = store.begin_poll(&k).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit
        .snapshot_deletions(|_, _| -> Result<(), StateError> { panic!("not snapshot mode") })
        .unwrap();
    commit.finish(outcome(None, None)).unwrap();
    assert_eq!(store.snapshot_hash(&k, "1").unwrap().as_deref(), Some("h1"));
}

#[test]
fn a_caller_error_inside_for_each_staged_stops_and_rolls_back() {
    #[derive(Debug)]
    enum CallerError {
        State(#[allow(dead_code)] StateError),
        TooBig,
    }
    impl From<StateError> for CallerError {
        fn from(error: StateError) -> Self {
            CallerError::State(error)
        }
    }
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(poll, &[event("a", Some(1)), event("b", Some(2))])
        .unwrap();
    let commit = store.begin_commit(poll).unwrap();
    let mut calls = 0;
    let result = commit.for_each_staged(|staged| {
        calls += 1;
        commit.insert_notification(notification(&staged.record_id, "crm", b"{}", 1))?;
        Err(CallerError::TooBig)
    });
    assert!(matches!(result, Err(CallerError::TooBig)));
    assert_eq!(calls, 1);
    drop(commit);
    assert!(
        store
            .outbox_list(&OutboxFilter::default())
            .unwrap()
            .is_empty()
    );
}

/// The whole lifecycle at 200,000 events: staged a page at a time, committed as 200
/// notifications of 1,000 events each built while the rows stream past. The test holds at most
/// one page or one batch, never the result set; the store collects nothing (it hands over one
/// row at a time), so this proves the API can be used within a page's memory.
#[test]
fn two_hundred_thousand_events_stream_through_one_commit() {
    const TOTAL: usize = 200_000;
    const PAGE: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db"), Synchronous::Normal).unwrap();
    let k = key("crm", "contacts");
    let poll = store.begin_poll(&k).unwrap();
    for page in 0..TOTAL / PAGE {
        let events: Vec<_> = (0..PAGE)
            .map(|i| {
                event(
                    &(page * PAGE + i).to_string(),
                    Some((page * PAGE + i) as i64),
                )
            })
            .collect();
        assert_eq!(store.stage_events(poll, &events).unwrap(), PAGE);
    }

    let commit = store.begin_commit(poll).unwrap();
    let mut batch: Vec<String> = Vec::with_capacity(PAGE);
    let mut next_expected = 0usize;
    let mut notifications = 0;
    let mut flush = |batch: &mut Vec<String>| -> Result<(), StateError> {
        let body = format!("[{}]", batch.join(","));
        commit.insert_notification(notification(
            &format!("n{notifications:06}"),
            "crm",
            body.as_bytes(),
            batch.len() as u32,
        ))?;
        notifications += 1;
        batch.clear();
        Ok(())
    };
    commit
        .for_each_staged(|staged| -> Result<(), StateError> {
            assert_eq!(
                staged.record_id,
                next_expected.to_string(),
                "in staging order"
            );
            next_expected += 1;
            batch.push(staged.record_id);
            if batch.len() == PAGE {
                flush(&mut batch)?;
            }
            Ok(())
        })
        .unwrap();
    flush(&mut batch).unwrap_or(());
    commit
        .finish(outcome(Some(at(0)), Some((TOTAL - 1) as i64)))
        .unwrap();

    assert_eq!(next_expected, TOTAL);
    let rows = store.outbox_list(&OutboxFilter::default()).unwrap();
    // 200 full batches and the final empty flush.
    assert_eq!(rows.len(), TOTAL / PAGE + 1);
    let events: u64 = rows.iter().map(|row| u64::from(row.events)).sum();
    assert_eq!(events, TOTAL as u64);
    let last_full = store.outbox_body("n000199").unwrap().unwrap();
    assert!(last_full.starts_with(b"[199000,199001,"));
    assert_eq!(staging_rows(&store), 0);
    assert_eq!(
        store.seen_pairs(&k).unwrap().len(),
        1,
        "only the floor's pair is kept"
    );
}

// ---- outbox, status, reset, tokens ----

#[test]
fn outbox_depth_and_list_per_instance() {
    let mut store = Store::open_in_memory().unwrap();
    let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    for (id, instance) in [("n1", "crm"), ("n2", "ats"), ("n3", "crm")] {
        commit
            .insert_notification(NewNotification {
                created_at: at(id.len() as i64 + i64::from(id.as_bytes()[1])),
                ..notification(id, instance, b"{\"message\":{}}", 2)
            })
            .unwrap();
    }
    commit.finish(outcome(None, None)).unwrap();
    store
        .conn
        .execute(
            "UPDATE outbox SET dead = 1, last_error = 'HTTP 404' WHERE id = 'n1'",
            [],
        )
        .unwrap();

    let depth = store.outbox_depth().unwrap();
    assert_eq!(depth.len(), 2);
    assert_eq!(
        depth["crm"],
        OutboxDepth {
            pending: 1,
            dead: 1,
            oldest_pending_at: Some(at(2 + i64::from(b'3')))
        }
    );
    assert_eq!(depth["ats"].pending, 1);

    let dead = store
        .outbox_list(&OutboxFilter {
            selection: OutboxSelection::Dead,
            ..OutboxFilter::default()
        })
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "n1");
    assert!(dead[0].dead);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 404"));
    assert_eq!(dead[0].body_bytes, 14);
    assert_eq!(dead[0].events, 2);
    assert_eq!(dead[0].attempts, 0);
    assert_eq!(dead[0].next_attempt_at, dead[0].created_at, "due at once");

    let crm_pending = store
        .outbox_list(&OutboxFilter {
            instance: Some("crm".to_owned()),
            selection: OutboxSelection::Pending,
            limit: None,
        })
        .unwrap();
    assert_eq!(
        crm_pending
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["n3"]
    );
    let limited = store
        .outbox_list(&OutboxFilter {
            limit: Some(2),
            ..OutboxFilter::default()
        })
        .unwrap();
    assert_eq!(
        limited.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    assert_eq!(
        store.outbox_body("n2").unwrap().unwrap(),
        b"{\"message\":{}}"
    );
    assert_eq!(store.outbox_body("nope").unwrap(), None);
}

#[test]
fn a_duplicate_event_id_fails_the_commit() {
    let mut store = Store::open_in_memory().unwrap();
    let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit
        .insert_notification(notification("same", "crm", b"{}", 1))
        .unwrap();
    let error = commit
        .insert_notification(notification("same", "crm", b"{}", 1))
        .unwrap_err();
    assert!(matches!(error, StateError::Sqlite { .. }), "{error:?}");
}

/// Two resources of `crm` (one fanned out), one of `ats`, an outbox row and a token of `gone`.
fn store_with_three_instances() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let primary = BTreeMap::from([("calendarId".to_owned(), "primary".to_owned())]);
    let keys = [
        key("crm", "contacts"),
        ResourceKey::new("crm", "events", &primary),
        key("crm", "events"),
        key("ats", "jobs"),
    ];
    for (i, k) in keys.iter().enumerate() {
        let poll = store.begin_poll(k).unwrap();
        store.stage_events(poll, &[event("1", Some(100))]).unwrap();
        commit_one_per_event(
            &mut store,
            poll,
            &k.instance,
            PollOutcome {
                polled_at: at(i as i64),
                ..outcome(Some(at(100)), Some(100))
            },
        );
        store.conn.execute("DELETE FROM outbox", []).unwrap();
    }
    let poll = store.begin_poll(&key("gone", "x")).unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit
        .insert_notification(notification("g1", "gone", b"{}", 1))
        .unwrap();
    commit.finish(outcome(None, None)).unwrap();
    store
        .save_oauth_token(
            "gone",
            "hash",
            &StoredToken {
                access_token: Secret::new("t"),
                refresh_token: None,
                expires_at: None,
            },
        )
        .unwrap();
    store
}

#[test]
fn statuses_and_instances_with_state() {
    let store = store_with_three_instances();
    let rows = store.statuses().unwrap();
    let keys: Vec<_> = rows
        .iter()
        .map(|row| {
            format!(
                "{}/{}[{}]",
                row.key.instance, row.key.resource, row.key.path_params
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            "ats/jobs[]",
            "crm/contacts[]",
            "crm/events[]",
            "crm/events[calendarId=primary]",
            "gone/x[]"
        ]
    );
    assert_eq!(rows[0].state.watermark, Some(at(100)));
    assert_eq!(rows[0].state.last_poll_at, Some(at(3)));
    assert_eq!(rows[0].state.last_result, Some(PollResult::Ok));
    assert_eq!(
        store.instances_with_state().unwrap(),
        ["ats", "crm", "gone"]
    );
}

#[test]
fn reset_forgets_or_sets_watermarks() {
    let mut store = store_with_three_instances();
    let events = key("crm", "events");
    // One resource, every pathParams value of it, set to a time.
    assert_eq!(
        store
            .reset_watermark("crm", Some("events"), Some(at(7)))
            .unwrap(),
        2
    );
    assert_eq!(
        store.resource_state(&events).unwrap().unwrap().watermark,
        Some(at(7))
    );
    assert!(store.seen_pairs(&events).unwrap().is_empty());
    let contacts = key("crm", "contacts");
    assert_eq!(
        store.resource_state(&contacts).unwrap().unwrap().watermark,
        Some(at(100))
    );
    assert_eq!(store.seen_pairs(&contacts).unwrap().len(), 1);

    // The whole instance, forgotten.
    assert_eq!(store.reset_watermark("crm", None, None).unwrap(), 3);
    assert_eq!(
        store.resource_state(&contacts).unwrap().unwrap().watermark,
        None
    );
    assert!(store.seen_pairs(&contacts).unwrap().is_empty());
    let jobs = store.resource_state(&key("ats", "jobs")).unwrap().unwrap();
    assert_eq!(jobs.watermark, Some(at(100)), "other instances untouched");
    assert_eq!(store.reset_watermark("nobody", None, None).unwrap(), 0);
}

#[test]
fn forget_instance_removes_everything_of_it_only() {
    let mut store = store_with_three_instances();
    let poll = store.begin_poll(&key("crm", "contacts")).unwrap();
    store.stage_events(poll, &[event("9", Some(9))]).unwrap();
    store.forget_instance("crm").unwrap();
    store.forget_instance("gone").unwrap();
    assert_eq!(store.instances_with_state().unwrap(), ["ats"]);
    assert_eq!(staging_rows(&store), 0);
    let orphans: i64 = store
        .conn
        .query_row("SELECT count(*) FROM seen_pair", [], |row| row.get(0))
        .unwrap();
    assert_eq!(orphans, 1, "only ats's pair is left");
}

#[test]
fn a_grant_remembers_its_used_code_across_credentials_and_a_revocation_deletes_the_token() {
    use crate::http::GrantEvent;
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.oauth_grant("crm", "h1").unwrap(), Default::default());
    let token = StoredToken {
        access_token: Secret::new("access-1"),
        refresh_token: Some(Secret::new("refresh-1")),
        expires_at: Some(at(3600)),
    };
    let exchanged = GrantEvent::CodeExchanged {
        code_hash: "c1".into(),
    };
    store
        .record_grant("crm", "h1", &exchanged, Some(&token))
        .unwrap();
    assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(token.clone()));
    let grant = store.oauth_grant("crm", "h1").unwrap();
    assert_eq!(grant.code_hash.as_deref(), Some("c1"));
    assert!(!grant.code_rejected && grant.revoked_at.is_none());
    assert_eq!(
        grant.last_token_result.as_deref(),
        Some("providerData.code exchanged")
    );

    let revoked = GrantEvent::Revoked {
        reason: "invalid_grant".into(),
    };
    store.record_grant("crm", "h1", &revoked, None).unwrap();
    assert!(store.oauth_grant("crm", "h1").unwrap().revoked_at.is_some());
    assert_eq!(
        store.oauth_token("crm", "h1").unwrap(),
        None,
        "token deleted"
    );
    let overview = store.oauth_overview().unwrap();
    assert_eq!(overview.len(), 1);
    assert!(!overview[0].has_token && overview[0].grant.revoked_at.is_some());

    // Other credentials: the revocation is theirs no longer, the used code still is.
    let other = store.oauth_grant("crm", "h2").unwrap();
    assert_eq!(other.revoked_at, None);
    assert_eq!(other.code_hash.as_deref(), Some("c1"));

    store
        .record_grant("crm", "h1", &GrantEvent::Authorized, Some(&token))
        .unwrap();
    let grant = store.oauth_grant("crm", "h1").unwrap();
    assert_eq!(grant.revoked_at, None, "ocpoll auth ends the revocation");
    assert_eq!(grant.code_hash.as_deref(), Some("c1"));
    let overview = store.oauth_overview().unwrap();
    assert!(overview[0].has_token && overview[0].has_refresh_token);
    assert_eq!(overview[0].expires_at, token.expires_at);
}

#[test]
fn oauth_tokens_are_dropped_when_the_credentials_change() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.oauth_token("crm", "h1").unwrap(), None);
    let token = StoredToken {
        access_token: Secret::new("access-1"),
        refresh_token: Some(Secret::new("rotated-refresh")),
        expires_at: Some(at(3600)),
    };
    store.save_oauth_token("crm", "h1", &token).unwrap();
    assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(token.clone()));
    let newer = StoredToken {
        access_token: Secret::new("access-2"),
        refresh_token: None,
        expires_at: None,
    };
    store.save_oauth_token("crm", "h1", &newer).unwrap();
    assert_eq!(store.oauth_token("crm", "h1").unwrap(), Some(newer));

    // The instance file's credentials changed: the token is gone, even for the old hash.
    assert_eq!(store.oauth_token("crm", "h2").unwrap(), None);
    assert_eq!(store.oauth_token("crm", "h1").unwrap(), None);
    assert!(
        !format!("{token:?}").contains("access-1") && !format!("{token:?}").contains("rotated"),
        "Debug hides the token"
    );
}

#[test]
fn a_relative_path_in_the_current_folder_works() {
    let dir = tempfile::tempdir().unwrap();
    // The test's own child process: changing this process's folder would race other tests.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state::sqlite::tests::relative_path_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env("OCPOLL_TEST_RELATIVE_STATE", "1")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(dir.path().join("state.db").exists());
}

/// Not a test on its own: the child of `a_relative_path_in_the_current_folder_works`.
#[test]
fn relative_path_child() {
    if std::env::var_os("OCPOLL_TEST_RELATIVE_STATE").is_none() {
        return;
    }
    Store::open(Path::new("state.db"), Synchronous::Full).unwrap();
}

// ---- direct commits (a one-page poll that staged nothing) ----

#[test]
fn a_direct_commit_writes_its_events_seen_pairs_and_watermark_in_one_transaction() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    let floor = nanos(at(100));
    let commit = store.begin_direct_commit(&k).unwrap();
    for (id, updated) in [("a", at(100)), ("b", at(90))] {
        commit.remember(&event(id, Some(nanos(updated)))).unwrap();
    }
    commit
        .insert_notification(notification("n-1", "crm", b"{}", 2))
        .unwrap();
    commit.finish(outcome(Some(at(100)), Some(floor))).unwrap();

    let state = store.resource_state(&k).unwrap().unwrap();
    assert_eq!(state.watermark, Some(at(100)));
    assert_eq!(
        store.seen_pairs(&k).unwrap(),
        HashSet::from([("a".to_owned(), floor)]),
        "the pair below the seen floor is dropped, as for staged pairs"
    );
    let outbox = store.outbox_list(&OutboxFilter::default()).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(staging_rows(&store), 0);
}

/// A window-mode row: (id, hash) seen at `seen_at`.
fn window_row(id: &str, hash: &str, seen_at: i64) -> StagedEvent {
    StagedEvent {
        hash: Some(hash.to_owned()),
        ..event(id, Some(seen_at))
    }
}

fn window_outcome(watermark: DateTime<Utc>, floor: i64) -> PollOutcome {
    PollOutcome {
        window_floor: Some(floor),
        ..outcome(Some(watermark), None)
    }
}

#[test]
fn window_pairs_keep_their_latest_time_and_go_when_the_window_moves_past_them() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    // A staged (several pages) poll and a direct one, each remembering pairs.
    let poll = store.begin_poll(&k).unwrap();
    store
        .stage_events(
            poll,
            &[
                window_row("a", "h1", nanos(at(10))),
                window_row("b", "h1", nanos(at(10))),
            ],
        )
        .unwrap();
    let commit = store.begin_commit(poll).unwrap();
    commit.finish(window_outcome(at(10), nanos(at(0)))).unwrap();
    let both = HashSet::from([
        ("a".to_owned(), "h1".to_owned()),
        ("b".to_owned(), "h1".to_owned()),
    ]);
    assert_eq!(store.window_pairs(&k).unwrap(), both);

    // The next poll sees `a` again (its time moves on) and a new version of `b`; its window
    // starts at 15: `b`'s old version, last seen at 10, goes; `a`, seen again at 20, stays.
    let commit = store.begin_direct_commit(&k).unwrap();
    commit
        .remember(&window_row("a", "h1", nanos(at(20))))
        .unwrap();
    commit
        .remember(&window_row("b", "h2", nanos(at(20))))
        .unwrap();
    commit
        .finish(window_outcome(at(20), nanos(at(15))))
        .unwrap();
    let kept = HashSet::from([
        ("a".to_owned(), "h1".to_owned()),
        ("b".to_owned(), "h2".to_owned()),
    ]);
    assert_eq!(store.window_pairs(&k).unwrap(), kept);
    assert!(
        store.seen_pairs(&k).unwrap().is_empty(),
        "no watermark pairs"
    );

    // A backfill (`state reset --to`) sends again what the window had seen.
    store.reset_watermark("crm", None, Some(at(0))).unwrap();
    assert!(store.window_pairs(&k).unwrap().is_empty());
}

#[test]
fn a_rolled_back_direct_commit_changes_nothing_and_a_finished_one_drops_old_staging() {
    let mut store = Store::open_in_memory().unwrap();
    let k = key("crm", "contacts");
    // A multi-page poll of the resource that never finished (its process died).
    let old = store.begin_poll(&k).unwrap();
    store.stage_events(old, &[event("stale", Some(5))]).unwrap();
    {
        let commit = store.begin_direct_commit(&k).unwrap();
        commit.remember(&event("a", Some(nanos(at(1))))).unwrap();
        commit
            .insert_notification(notification("n-1", "crm", b"{}", 1))
            .unwrap();
        // Dropped without finish: an error in the caller, or a crash.
    }
    assert!(
        store
            .outbox_list(&OutboxFilter::default())
            .unwrap()
            .is_empty()
    );
    assert!(store.seen_pairs(&k).unwrap().is_empty());
    assert_eq!(staging_rows(&store), 2, "the rollback kept the old staging");

    let commit = store.begin_direct_commit(&k).unwrap();
    commit.finish(outcome(Some(at(1)), Some(0))).unwrap();
    assert_eq!(staging_rows(&store), 0, "the committed poll replaced it");
    assert!(matches!(
        store.begin_commit(old),
        Err(StateError::PollGone(_))
    ));
}

// -------------------------------------------------------------------------------------------
// Issue 13: a damaged, foreign or exposed state file.
// -------------------------------------------------------------------------------------------

/// Overwrites the middle of a full leaf page of `table`'s b-tree (the leftmost child of its
/// interior root: cells, after the page header), keeping the file's length.
pub(crate) fn damage_a_leaf_page(path: &Path, table: &str) {
    let conn = Connection::open(path).unwrap();
    let root: usize = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let start = |page: usize| (page - 1) * page_size;
    let root_at = start(root);
    assert_eq!(
        bytes[root_at], 0x05,
        "{table}'s root is an interior table page"
    );
    let first_cell = usize::from(u16::from_be_bytes([
        bytes[root_at + 12],
        bytes[root_at + 13],
    ]));
    let child_at = root_at + first_cell;
    let child = u32::from_be_bytes(bytes[child_at..child_at + 4].try_into().unwrap()) as usize;
    let leaf_at = start(child);
    assert_eq!(bytes[leaf_at], 0x0D, "page {child} is a table leaf");
    for byte in &mut bytes[leaf_at + page_size / 4..leaf_at + page_size * 3 / 4] {
        *byte = 0xFF;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_table_page_is_refused_at_open_and_the_file_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populated_state_file(&path);
    damage_a_leaf_page(&path, "outbox");
    let before = std::fs::read(&path).unwrap();
    for open in [Store::open, Store::open_existing] {
        let error = open(&path, Synchronous::Full).unwrap_err();
        assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
        assert!(error.is_unusable_file());
        let message = error.to_string();
        assert!(message.contains("quick_check"), "{message}");
        assert!(message.contains("did not change it"), "{message}");
        assert!(message.contains("restore it from a backup"), "{message}");
        assert!(message.contains("docs/operations.md"), "{message}");
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is unchanged"
    );
}

#[test]
fn damage_a_statement_meets_marks_the_store_corrupt_for_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populated_state_file(&path);
    damage_a_leaf_page(&path, "outbox");
    // A file above the quick check's size limit is opened unchecked.
    let store = Store::open_checked(&path, Synchronous::Full, 0).unwrap();
    let health = Store::open_checked(&path, Synchronous::Full, 0).unwrap();
    assert_eq!(store.corruption(), None);
    let error = store
        .outbox_list(&OutboxFilter {
            instance: None,
            selection: OutboxSelection::All,
            limit: None,
        })
        .unwrap_err();
    assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
    assert!(store.corruption().is_some());
    let seen = health.corruption().expect("the other connection knows");
    assert!(seen.contains("malformed"), "{seen}");
    // A sound file elsewhere is not affected.
    let other = Store::open(&dir.path().join("other.db"), Synchronous::Full).unwrap();
    assert_eq!(other.corruption(), None);
}

/// Another program's SQLite file, in the rollback journal mode SQLite starts with.
fn foreign_file(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
         INSERT INTO notes (text) VALUES ('mine'), ('not ocpoll''s');",
    )
    .unwrap();
}

#[test]
fn another_programs_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    foreign_file(&path);
    let before = std::fs::read(&path).unwrap();
    for open in [Store::open, Store::open_existing] {
        let error = open(&path, Synchronous::Full).unwrap_err();
        assert!(matches!(error, StateError::Foreign { .. }), "{error:?}");
        assert!(error.is_unusable_file());
        assert!(
            error.to_string().contains("not an ocpoll state file"),
            "{error}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed");
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the journal mode is as it was");
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no table added");
}

#[test]
fn a_state_file_of_an_older_ocpoll_without_the_mark_is_opened_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path, Synchronous::Full).unwrap());
    // What ocpoll before schema version 3 left: no application_id.
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "application_id", 0).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    // And none of the tables of the migrations after 3.
    conn.execute_batch("DROP TABLE oauth_grant").unwrap();
    drop(conn);
    drop(Store::open(&path, Synchronous::Full).unwrap());
    let conn = Connection::open(&path).unwrap();
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .unwrap();
    assert_eq!(id, schema::APPLICATION_ID);
}

#[test]
fn an_unwritable_shm_file_is_refused_before_sqlite_maps_it() {
    if running_as_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path, Synchronous::Full).unwrap());
    let shm = dir.path().join("state.db-shm");
    std::fs::write(&shm, b"").unwrap();
    std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o444)).unwrap();
    let error = Store::open(&path, Synchronous::Full).unwrap_err();
    assert!(
        matches!(error, StateError::SideFileUnwritable { .. }),
        "{error:?}"
    );
    assert!(error.is_unusable_file());
    assert!(error.to_string().contains("-shm"), "{error}");
}

#[test]
fn a_state_file_readable_by_others_is_used_and_never_loosened_or_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path, Synchronous::Full).unwrap());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path, Synchronous::Full).unwrap());
    assert_eq!(mode(&path), 0o644, "left to its owner (with a warning)");
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Delivery's sync before a pass writes only when a relaxed (poll) write happened since the
/// last one; `sync` itself (the health check's write) always writes.
#[test]
fn sync_relaxed_syncs_only_after_relaxed_writes() {
    let mut store = Store::open_in_memory().unwrap();
    let sync_point = |store: &Store| -> Option<String> {
        store
            .conn
            .query_row("SELECT at FROM sync_point", [], |row| row.get(0))
            .ok()
    };
    // A store just opened may follow a crash's unsynced commits: the first pass syncs.
    store.sync_relaxed().unwrap();
    let first = sync_point(&store).expect("written");
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.sync_relaxed().unwrap();
    assert_eq!(
        sync_point(&store).as_deref(),
        Some(first.as_str()),
        "nothing to sync"
    );
    store.relaxed(|_| ());
    store.sync_relaxed().unwrap();
    let second = sync_point(&store).unwrap();
    assert_ne!(second, first, "a relaxed write is synced");
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.sync().unwrap();
    assert_ne!(sync_point(&store).unwrap(), second, "sync always writes");
}
