//! Tests of the store against real SQLite files in temporary folders.

use super::*;
use crate::state::*;
// These tests are of the SQLite backend itself (its file, its connection).
use super::SqliteStore as Store;
use crate::state::suite::{at, commit_one_per_event, event, key, notification, outcome};
use std::os::unix::fs::PermissionsExt;

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
        commit_one_per_event(
            CommitTxn::Sqlite(store.begin_commit(poll).unwrap()),
            "crm",
            outcome(Some(at(5)), Some(0)),
        );
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
        commit_one_per_event(
            CommitTxn::Sqlite(store.begin_commit(poll).unwrap()),
            &name,
            outcome(Some(at(9)), Some(0)),
        );
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
