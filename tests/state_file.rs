//! The state file as the commands meet it (issue 13): a damaged page, another program's SQLite
//! file, a second daemon through a symbolic or hard link, permissions, an unwritable `-shm`.
//! Every refusal exits 78 (75 for the lock) and leaves the file as it was.

mod util;

use ocpoll::state::{Store, Synchronous};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::time::Instant;
use util::daemon::{Daemon, PATIENCE, layout_command};
use util::{Dir, running_as_root};

/// A layout whose one instance points at a closed loopback port: the commands get as far as
/// the state without reaching anything.
fn layout() -> Dir {
    let dir = Dir::with_layout("[poll]\njitter_seconds = 0\n");
    dir.create(
        "instances.d/crm.json",
        &serde_json::json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
            "base.url": "http://127.0.0.1:9",
            "event.notification.enabled": false,
            "event.poller.refresh_seconds": 60,
            "event.poller.configuration": {"contacts": {
                "url": "/contacts?since=${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}",
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'",
                    "updatedDateTimezone": "GMT"
                }
            }}
        }})
        .to_string(),
    );
    dir
}

/// `ocpoll <layout> ARGS`, waited for, with stderr.
fn ocpoll(dir: &Dir, args: &[&str]) -> Output {
    layout_command(dir, args)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

/// A real ocpoll state file with a few thousand outbox rows (many pages), closed.
fn populated_state(path: &Path) {
    drop(Store::open(path, Synchronous::Full).unwrap());
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    for n in 0..3000 {
        tx.execute(
            "INSERT INTO outbox (id, instance, events, created_at, next_attempt_at, body)
             VALUES (?1, 'crm', 1, '2027-01-01T00:00:00.000000000Z',
                     '2027-01-01T00:00:00.000000000Z', ?2)",
            rusqlite::params![
                format!("n{n}"),
                format!("{{\"id\":{n},\"pad\":\"{}\"}}", "x".repeat(80))
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    assert!(!Path::new(&format!("{}-wal", path.display())).exists());
}

/// Overwrites the middle of a full leaf page of `table` (after its page header).
fn damage_a_leaf_page(path: &Path, table: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
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
    assert_eq!(bytes[root_at], 0x05, "an interior root: several pages");
    let first_cell = usize::from(u16::from_be_bytes([
        bytes[root_at + 12],
        bytes[root_at + 13],
    ]));
    let child_at = root_at + first_cell;
    let child = u32::from_be_bytes(bytes[child_at..child_at + 4].try_into().unwrap()) as usize;
    let leaf_at = start(child);
    assert_eq!(bytes[leaf_at], 0x0D, "a table leaf");
    for byte in &mut bytes[leaf_at + page_size / 4..leaf_at + page_size * 3 / 4] {
        *byte = 0xFF;
    }
    std::fs::write(path, bytes).unwrap();
}

/// status, outbox list, tick and run each exit 78 with `expected` on stderr.
fn every_command_refuses(dir: &Dir, expected: &[&str]) {
    let commands: [&[&str]; 4] = [
        &["status"],
        &["outbox", "list"],
        &["tick"],
        &["run", "--foreground"],
    ];
    for args in commands {
        let output = ocpoll(dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{args:?}: {stderr}");
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{args:?}: no {needle:?} in {stderr}"
            );
        }
    }
}

#[test]
fn a_damaged_page_is_refused_by_every_command_and_the_file_is_unchanged() {
    let dir = layout();
    let state = dir.join("state.db");
    populated_state(&state);
    damage_a_leaf_page(&state, "outbox");
    let before = std::fs::read(&state).unwrap();
    every_command_refuses(
        &dir,
        &[
            "corrupted",
            "ocpoll did not change it",
            "restore it from a backup",
            "move it away",
        ],
    );
    assert_eq!(std::fs::read(&state).unwrap(), before, "not a byte changed");
}

#[test]
fn another_programs_sqlite_file_is_refused_and_left_untouched() {
    let dir = layout();
    let state = dir.join("state.db");
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);
         INSERT INTO invoices (total) VALUES (12.5);",
    )
    .unwrap();
    drop(conn);
    let before = std::fs::read(&state).unwrap();
    every_command_refuses(&dir, &["not an ocpoll state file", "another program"]);
    assert_eq!(std::fs::read(&state).unwrap(), before, "not a byte changed");
    let conn = rusqlite::Connection::open(&state).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "still in its own journal mode");
}

/// Waits until the daemon runs ("ocpoll is running" is logged after the state is open and
/// locked, the file itself included).
fn wait_until_running(daemon: &Daemon) {
    let start = Instant::now();
    while !daemon.log_text().contains("ocpoll is running") {
        assert!(
            start.elapsed() < PATIENCE,
            "the daemon never started; its log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_second_ocpoll_through_a_symbolic_or_hard_link_exits_75_naming_the_holder() {
    let dir = layout();
    let daemon = Daemon::start(&dir, "daemon.log", &[], &[]);
    wait_until_running(&daemon);
    dir.create_dir("alias");
    std::os::unix::fs::symlink("../state.db", dir.join("alias/sym.db")).unwrap();
    std::fs::hard_link(dir.join("state.db"), dir.join("alias/hard.db")).unwrap();
    let pid = daemon.pid().to_string();
    for link in ["alias/sym.db", "alias/hard.db"] {
        for args in [&["tick"][..], &["run", "--foreground"][..]] {
            let output = dir
                .std_command()
                .args(args)
                .args([
                    "--config",
                    "config.toml",
                    "--instances",
                    "instances.d",
                    "--state",
                    link,
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(75), "{link} {args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("locked by ocpoll pid {pid}")),
                "{link} {args:?}: {stderr}"
            );
        }
    }
    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn a_created_state_folder_is_private_whatever_the_umask() {
    let dir = layout();
    let mut command = dir.std_command();
    command.args([
        "tick",
        "--config",
        "config.toml",
        "--instances",
        "instances.d",
        "--state",
        "var/lib/ocpoll/state.db",
    ]);
    // SAFETY: umask(2) is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert!(dir.join("var/lib/ocpoll/state.db").exists(), "{output:?}");
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for folder in ["var", "var/lib", "var/lib/ocpoll"] {
        assert_eq!(mode(folder), 0o700, "{folder}");
    }
    assert_eq!(mode("var/lib/ocpoll/state.db"), 0o600);
    assert_eq!(mode("var/lib/ocpoll/state.db.lock"), 0o600);
}

#[test]
fn a_state_file_readable_by_others_is_warned_about_and_kept_as_it_is() {
    let dir = layout();
    let state = dir.join("state.db");
    populated_state(&state);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [&["status"][..], &["tick"][..]] {
        let output = ocpoll(&dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("readable by everyone (mode 0644)"),
            "{args:?}: {stderr}"
        );
    }
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "never changed behind the owner's back");
}

#[test]
fn an_unwritable_shm_file_exits_78_instead_of_sigbus() {
    if running_as_root() {
        return;
    }
    let dir = layout();
    let state = dir.join("state.db");
    populated_state(&state);
    let shm = dir.create("state.db-shm", "");
    std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o444)).unwrap();
    every_command_refuses(&dir, &["state.db-shm", "cannot be written"]);
}
