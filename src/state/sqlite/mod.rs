//! The SQLite backend of the state store: one file, opened by [`SqliteStore`] (its checks, its
//! pragmas, its migrations in `schema`, the relaxed writes and the one sync delivery waits for),
//! and the helpers the per-table files (`outbox`, `staging`, `tokens`, `webhooks` beside this
//! module) share. The crash guarantees are in the parent module's doc; this file is what makes
//! them true for a file (WAL, IMMEDIATE transactions, `synchronous`).

pub(super) mod schema;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{PollResult, ResourceKey, ResourceState, ResourceStatusRow, StateError, Synchronous};

/// How long a statement waits for another process's write transaction before giving up. Long
/// enough for the daemon's largest commit; `status` and `state reset` run beside the daemon.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Prepared statements kept per connection (see `configure`).
const STATEMENT_CACHE: usize = 64;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// State files found corrupted by a statement in this process, by path, with SQLite's message:
/// what `/healthz` reads ([`SqliteStore::corruption`]), whichever connection met the damage.
static CORRUPTED: std::sync::Mutex<BTreeMap<PathBuf, String>> =
    std::sync::Mutex::new(BTreeMap::new());

fn mark_corrupt(path: &Path, detail: &str) {
    if path == Path::new(":memory:") {
        return;
    }
    CORRUPTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(path.to_owned())
        .or_insert_with(|| detail.to_owned());
}

/// Turns an SQLite error into the StateError that says what it means for the file. An
/// SQLITE_CORRUPT (or NOTADB) error from any statement marks the file as corrupt for the rest
/// of the process ([`SqliteStore::corruption`]).
pub(super) fn classify(path: &Path, error: rusqlite::Error) -> StateError {
    let path = path.to_owned();
    match error.sqlite_error_code() {
        // The magic bytes were checked before SQLite saw the file, so NOTADB here means a
        // damaged header rather than some other kind of file.
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            let detail = error.to_string();
            mark_corrupt(&path, &detail);
            StateError::Corrupt { path, detail }
        }
        _ => match error {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StateError::Corrupt {
                path,
                detail: format!("unexpected value: {error}"),
            },
            source => StateError::Sqlite { path, source },
        },
    }
}
/// The state file, open. One per thread (SQLite connections are not shared); a reader such as
/// `status` opens its own beside the daemon's.
pub struct SqliteStore {
    pub(super) conn: Connection,
    path: PathBuf,
    synchronous: Synchronous,
    /// Counts this store in [`OPEN_IN_PROCESS`] while it lives.
    registered: Registration,
    /// A [`SqliteStore::relaxed`] write happened since the last [`SqliteStore::sync`]: only then does
    /// [`SqliteStore::sync_relaxed`] have anything to make durable.
    unsynced: std::cell::Cell<bool>,
}

/// A file's (device, inode) counted in [`OPEN_IN_PROCESS`], uncounted when dropped.
#[derive(Default)]
struct Registration(Option<(u64, u64)>);

/// State files this process has SQLite connections to, by (device, inode), with how many.
///
/// Closing *any* descriptor of a file drops every POSIX lock the process holds on it, SQLite's
/// included. The checks before a connection opens (`check_header`, `check_side_files`) open and
/// close the file and its `-wal` and `-shm` with plain descriptors; done while another
/// connection of the process is open (the daemon's metrics and webhooks connections), they
/// dropped that connection's locks, and the next `ocpoll status` or `webhooks url` to close
/// its connection took itself for the last one and deleted the `-wal` and `-shm` the daemon
/// was still writing to (its later commits went to an unlinked file). The file was checked
/// when its first connection opened, so later ones skip those checks.
static OPEN_IN_PROCESS: std::sync::Mutex<BTreeMap<(u64, u64), usize>> =
    std::sync::Mutex::new(BTreeMap::new());

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    // stat(2): no descriptor is opened.
    std::fs::metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}

fn open_in_process() -> std::sync::MutexGuard<'static, BTreeMap<(u64, u64), usize>> {
    OPEN_IN_PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(id) = self.0 else { return };
        let mut open = open_in_process();
        if let Some(count) = open.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&id);
            }
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// A write transaction of the store, with the file's path for its errors (see
/// [`SqliteStore::write_txn`]). Derefs to the SQLite transaction.
pub(super) struct WriteTxn<'a> {
    tx: Transaction<'a>,
    path: &'a Path,
}

impl<'a> std::ops::Deref for WriteTxn<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

impl WriteTxn<'_> {
    pub(super) fn fail(&self, error: rusqlite::Error) -> StateError {
        classify(self.path, error)
    }

    pub(super) fn commit(self) -> Result<(), StateError> {
        let path = self.path;
        self.tx.commit().map_err(|e| classify(path, e))
    }
}

impl SqliteStore {
    /// Opens the state file at `path`, creating it (and its folders) when it does not exist.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<SqliteStore, StateError> {
        if !path.exists() {
            create_state_file(path, synchronous)?;
        }
        SqliteStore::open_existing(path, synchronous)
    }

    /// Opens an existing state file; [`StateError::Missing`] when there is none (for commands
    /// that only read, which should not create a state as a side effect).
    pub fn open_existing(path: &Path, synchronous: Synchronous) -> Result<SqliteStore, StateError> {
        if !path.exists() {
            return Err(StateError::Missing {
                path: path.to_owned(),
            });
        }
        SqliteStore::open_checked(path, synchronous, QUICK_CHECK_MAX_BYTES)
    }

    /// [`SqliteStore::open_existing`] with the size above which the quick check is skipped.
    pub(crate) fn open_checked(
        path: &Path,
        synchronous: Synchronous,
        quick_check_max_bytes: u64,
    ) -> Result<SqliteStore, StateError> {
        let id = file_id(path);
        let first_here = id.is_none_or(|id| !open_in_process().contains_key(&id));
        if first_here {
            check_header(path)?;
            check_side_files(path)?;
        }
        warn_if_readable_by_others(path);
        // Without SQLITE_OPEN_CREATE: if the file vanished since the check, fail rather than
        // create one with default permissions.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
        // Everything up to `prepare` only reads: a file refused here is left byte for byte as
        // it was (not even its journal mode changes).
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| classify(path, e))?;
        if !schema::is_ocpoll_file(&conn).map_err(|e| classify(path, e))? {
            return Err(StateError::Foreign {
                path: path.to_owned(),
            });
        }
        if first_here {
            quick_check(&conn, path, quick_check_max_bytes)?;
        }
        let mut store = SqliteStore::prepare(conn, path.to_owned(), synchronous)?;
        if let Some(id) = id {
            *open_in_process().entry(id).or_default() += 1;
            store.registered = Registration(Some(id));
        }
        Ok(store)
    }

    /// The damage a statement of this process met in this state file (SQLite's message), if
    /// any: from then on the file is known to be corrupt, whatever the next statements say.
    /// `/healthz` fails on it.
    pub fn corruption(&self) -> Option<String> {
        CORRUPTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&self.path)
            .cloned()
    }

    /// A private in-memory state, for tests.
    pub fn open_in_memory() -> Result<SqliteStore, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| classify(&path, e))?;
        SqliteStore::prepare(conn, path, Synchronous::Full)
    }

    fn prepare(
        mut conn: Connection,
        path: PathBuf,
        synchronous: Synchronous,
    ) -> Result<SqliteStore, StateError> {
        configure(&conn, synchronous).map_err(|e| classify(&path, e))?;
        match schema::migrate(&mut conn) {
            Ok(()) => {}
            Err(schema::MigrateError::Newer { found }) => {
                return Err(StateError::NewerSchema {
                    path,
                    found,
                    supported: schema::CURRENT_VERSION,
                });
            }
            Err(schema::MigrateError::Sqlite(e)) => return Err(classify(&path, e)),
        }
        // Parse the whole schema now, so damage there is reported at open, not mid-poll.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| classify(&path, e))?;
        Ok(SqliteStore {
            conn,
            path,
            synchronous,
            registered: Registration::default(),
            // A crash may have left relaxed commits of the previous run unsynced.
            unsynced: std::cell::Cell::new(true),
        })
    }

    /// Runs `write` without waiting for the disk. For staging, which a crash discards anyway,
    /// and for polls' final commits and delivery bookkeeping, which [`SqliteStore::sync`] makes
    /// durable together (group commit): SQLite's log keeps commits in order, so one sync
    /// covers every commit before it. A process crash loses none of them either way (the
    /// operating system has the writes); only a power loss before the sync could.
    pub(crate) fn relaxed<T>(&mut self, write: impl FnOnce(&mut SqliteStore) -> T) -> T {
        self.set_relaxed_window(true);
        let result = write(self);
        self.set_relaxed_window(false);
        result
    }

    /// Opens (`true`) or closes the window of [`SqliteStore::relaxed`] writes; the enum
    /// [`super::Store::relaxed`] brackets its closure with it.
    pub(super) fn set_relaxed_window(&mut self, open: bool) {
        if open {
            self.unsynced.set(true);
        }
        self.set_relaxed(open);
    }

    fn set_relaxed(&self, relaxed: bool) {
        if self.synchronous == Synchronous::Full {
            let level = if relaxed { "NORMAL" } else { "FULL" };
            // A failed pragma leaves the level as it was: at worst slower, or one more sync.
            let _ = self.conn.pragma_update(None, "synchronous", level);
        }
    }

    /// Makes every commit so far durable with one disk sync. Call it before delivering what
    /// relaxed poll commits wrote: a notification must never reach a receiver and then be
    /// lost with its poll in a power cut (the poll would run again and send the change under
    /// a new eventId).
    pub fn sync(&self) -> Result<(), StateError> {
        self.unsynced.set(false);
        let written = self
            .conn
            .execute(
                "INSERT OR REPLACE INTO sync_point (id, at) VALUES (1, ?1)",
                [encode_time(&Utc::now())],
            )
            .map(drop)
            .map_err(|e| self.fail(e));
        if written.is_err() {
            self.unsynced.set(true);
        }
        written
    }

    /// [`SqliteStore::sync`] when a relaxed write happened on this connection since the last one,
    /// else nothing: what delivery runs before each pass. A daemon receiving webhooks wakes
    /// delivery after every receipts' commit, and those commits are durable already; a sync
    /// for each pass was one more disk sync, taken under the state's mutex, for nothing. Sound
    /// because the relaxed writes it covers are made through this same store: `tick` and the
    /// daemon hand one store to their polls and to delivery.
    pub fn sync_relaxed(&self) -> Result<(), StateError> {
        if self.unsynced.get() {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// The file this store reads and writes (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn fail(&self, error: rusqlite::Error) -> StateError {
        classify(&self.path, error)
    }

    /// Opens a write transaction: IMMEDIATE, so it takes the write lock now and cannot fail
    /// half-way for lack of it. Dropping it without [`WriteTxn::commit`] rolls back.
    pub(super) fn write_txn(&mut self) -> Result<WriteTxn<'_>, StateError> {
        let SqliteStore { conn, path, .. } = self;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(path, e))?;
        Ok(WriteTxn { tx, path })
    }

    /// SQLite's `PRAGMA integrity_check`: empty when the file is sound, else its complaints.
    /// Reads the whole file, so it is for `ocpoll state check`-like commands and tests.
    pub fn integrity_check(&self) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.fail(e))?;
        let lines = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.fail(e))?;
        Ok(lines.into_iter().filter(|line| line != "ok").collect())
    }

    /// The state of one resource, or None when it was never polled.
    pub fn resource_state(&self, key: &ResourceKey) -> Result<Option<ResourceState>, StateError> {
        // Cached: every poll asks, and parsing the statement costs more than running it.
        self.conn
            .prepare_cached(&format!(
                "SELECT {RESOURCE_STATE_COLUMNS} FROM resource_state
                 WHERE instance = ?1 AND resource = ?2 AND path_params = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![key.instance, key.resource, key.path_params],
                    |row| read_resource_state(row, 0),
                )
                .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// The (record id, updated nanos) pairs kept near the watermark of `key`: what was already
    /// turned into events at or just before it. Bounded by the lookback window.
    pub fn seen_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, i64)>, StateError> {
        self.pairs_of(
            key,
            "SELECT s.record_id, s.updated FROM seen_pair s
             JOIN resource_state r ON r.id = s.resource_id
             WHERE r.instance = ?1 AND r.resource = ?2 AND r.path_params = ?3",
        )
    }

    /// Window mode: the (id, content hash) pairs the window remembers.
    pub fn window_pairs(&self, key: &ResourceKey) -> Result<HashSet<(String, String)>, StateError> {
        self.pairs_of(
            key,
            "SELECT w.record_id, w.hash FROM window_pair w
             JOIN resource_state r ON r.id = w.resource_id
             WHERE r.instance = ?1 AND r.resource = ?2 AND r.path_params = ?3",
        )
    }

    /// The two-column rows `sql` selects for `key` (its parameters: instance, resource,
    /// pathParams), as a set.
    fn pairs_of<T: rusqlite::types::FromSql + Eq + std::hash::Hash>(
        &self,
        key: &ResourceKey,
        sql: &str,
    ) -> Result<HashSet<(String, T)>, StateError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.fail(e))?;
        stmt.query_map(
            params![key.instance, key.resource, key.path_params],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<HashSet<_>>>())
        .map_err(|e| self.fail(e))
    }

    /// Snapshot mode: the content hash stored for `record_id` by the previous committed poll.
    pub fn snapshot_hash(
        &self,
        key: &ResourceKey,
        record_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(self.snapshot_hashes(key, &[record_id])?.remove(record_id))
    }

    /// Snapshot mode: the stored hashes of those of `record_ids` the previous poll saw (one
    /// page's worth at a time).
    pub fn snapshot_hashes(
        &self,
        key: &ResourceKey,
        record_ids: &[&str],
    ) -> Result<HashMap<String, String>, StateError> {
        let mut found = HashMap::new();
        let Some(resource_id) = self.resource_id(key)? else {
            return Ok(found);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT hash FROM snapshot_item WHERE resource_id = ?1 AND record_id = ?2",
            )
            .map_err(|e| self.fail(e))?;
        for &record_id in record_ids {
            let hash: Option<String> = stmt
                .query_row(params![resource_id, record_id], |row| row.get(0))
                .optional()
                .map_err(|e| self.fail(e))?;
            if let Some(hash) = hash {
                found.insert(record_id.to_owned(), hash);
            }
        }
        Ok(found)
    }

    fn resource_id(&self, key: &ResourceKey) -> Result<Option<i64>, StateError> {
        resource_id(&self.conn, key).map_err(|e| self.fail(e))
    }

    /// Every resource the state knows, ordered by instance, resource and pathParams.
    pub fn statuses(&self) -> Result<Vec<ResourceStatusRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT instance, resource, path_params, {RESOURCE_STATE_COLUMNS}
                 FROM resource_state ORDER BY instance, resource, path_params"
            ))
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |row| {
            Ok(ResourceStatusRow {
                key: ResourceKey {
                    instance: row.get(0)?,
                    resource: row.get(1)?,
                    path_params: row.get(2)?,
                },
                state: read_resource_state(row, 3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.fail(e))
    }

    /// Every instance name with anything in the state (resources, outbox, tokens), sorted; the
    /// ones without an instance file are `status`'s orphans.
    pub fn instances_with_state(&self) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT instance FROM resource_state
                 UNION SELECT instance FROM outbox
                 UNION SELECT instance FROM oauth_token
                 ORDER BY instance",
            )
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))
    }

    /// `ocpoll state reset`: for every pathParams value of `resource` (or every resource of the
    /// instance), forgets the watermark (`to` None: the next poll is a new baseline, and the
    /// snapshot set goes too) or sets it to `to`; the seen pairs and the window's pairs go
    /// either way (a backfill sends again what the window had seen). Returns how many
    /// resources changed.
    pub fn reset_watermark(
        &mut self,
        instance: &str,
        resource: Option<&str>,
        to: Option<DateTime<Utc>>,
    ) -> Result<usize, StateError> {
        let tx = self.write_txn()?;
        let fail = |e| tx.fail(e);
        // `resource IS NULL` selects every resource of the instance.
        const MATCHING: &str = "SELECT id FROM resource_state
             WHERE instance = ?1 AND (?2 IS NULL OR resource = ?2)";
        for table in ["seen_pair", "window_pair"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE resource_id IN ({MATCHING})"),
                params![instance, resource],
            )
            .map_err(fail)?;
        }
        if to.is_none() {
            tx.execute(
                &format!("DELETE FROM snapshot_item WHERE resource_id IN ({MATCHING})"),
                params![instance, resource],
            )
            .map_err(fail)?;
        }
        let changed = tx
            .execute(
                "UPDATE resource_state SET watermark = ?3
                 WHERE instance = ?1 AND (?2 IS NULL OR resource = ?2)",
                params![instance, resource, to.as_ref().map(encode_time)],
            )
            .map_err(fail)?;
        tx.commit()?;
        Ok(changed)
    }

    /// `ocpoll state forget`: everything of an instance, its outbox included.
    pub fn forget_instance(&mut self, instance: &str) -> Result<(), StateError> {
        let tx = self.write_txn()?;
        // Seen pairs, snapshots, polls and staging go by ON DELETE CASCADE.
        for table in [
            "resource_state",
            "outbox",
            "oauth_token",
            "webhook_token",
            "webhook_receipt",
            "webhook_status",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE instance = ?1"),
                [instance],
            )
            .map_err(|e| tx.fail(e))?;
        }
        tx.commit()
    }
}

/// Per-connection settings. WAL lets readers (`status`) run beside the daemon's writes and makes
/// a commit one append to the log; the busy timeout makes a second writer wait its turn.
fn configure(conn: &Connection, synchronous: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A poll and a delivery between them use about twenty distinct statements; with rusqlite's
    // default of 16 cached, the least recent were parsed again on every use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", true)?;
    // Plans that never depend on the values bound: without this SQLite re-prepares a cached
    // statement whenever a parameter it might plan by is bound to a new value (a delivery's
    // head read, a poll's seen pairs: every use), which cost about a fifth of the
    // 10,000-instance tick's CPU in parsing. Every query here is planned by its indexes.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    let level = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    // Returns the mode now in force; an in-memory database stays "memory", which is fine.
    let _mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    Ok(())
}

/// Creates the state file whole: a private temporary file gets the schema, then is hard-linked
/// into place (which, unlike rename, never replaces a file another process created meanwhile).
/// So a state file is never empty, and an empty one is known to be damage.
fn create_state_file(path: &Path, synchronous: Synchronous) -> Result<(), StateError> {
    let io_error = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        // 0700: the folder holds tokens and event bodies.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_error)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    // A leftover with our pid is from a killed earlier process: nobody else uses that name.
    let _ = std::fs::remove_file(&temporary);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error)?;
    let result = initialise(&temporary, synchronous).and_then(|()| {
        match std::fs::hard_link(&temporary, path) {
            Ok(()) => Ok(()),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    });
    let _ = std::fs::remove_file(&temporary);
    result?;
    // Make the new directory entry durable before anything is committed into the file.
    File::open(parent.unwrap_or(Path::new(".")))
        .and_then(|dir| dir.sync_all())
        .map_err(io_error)
}

fn initialise(temporary: &Path, synchronous: Synchronous) -> Result<(), StateError> {
    let conn = Connection::open(temporary).map_err(|e| classify(temporary, e))?;
    // Before the first table (and WAL mode): a page size is fixed when the file is made.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(|e| classify(temporary, e))?;
    let store = SqliteStore::prepare(conn, temporary.to_owned(), synchronous)?;
    // Closing the last connection checkpoints the WAL into the file and removes the -wal file.
    store.conn.close().map_err(|(_, e)| classify(temporary, e))
}

/// The page size of new state files; files made with SQLite's default (4096) keep theirs. A
/// bulk poll writes its records twice (staging, then notification bodies) and reads them back
/// once: with 4 KiB pages that was about 400,000 reads and writes of single pages for 200,000
/// records, most of its system time. 16 KiB pages took a fifth off its CPU (1.7-1.8 s -> 1.4-1.5
/// s); a 10,000-instance tick, whose small commits now write larger pages, about 5% more.
const PAGE_SIZE: u32 = 16384;

/// State files up to this size get SQLite's `PRAGMA quick_check` each time they are opened
/// (it reads every page, so its cost grows with the file; not measured yet). Larger
/// ones skip it, with a log line: damage in them is found by the first statement that reads it,
/// which marks the store corrupt ([`SqliteStore::corruption`]).
pub const QUICK_CHECK_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// SQLite's `PRAGMA quick_check` (the b-tree pages, cells and free list; not the indexes'
/// contents): refuses a damaged file before anything is written into it. Only reads.
fn quick_check(conn: &Connection, path: &Path, max_bytes: u64) -> Result<(), StateError> {
    let length = std::fs::metadata(path)
        .map_err(|source| StateError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if length > max_bytes {
        warn_once(
            path,
            "quick_check",
            &format!(
                "{}: the state file is {} MiB, above {} MiB: its integrity is not checked when it is opened",
                path.display(),
                length / (1024 * 1024),
                max_bytes / (1024 * 1024)
            ),
        );
        return Ok(());
    }
    // Ten complaints are plenty to name the damage.
    let lines = conn
        .prepare("PRAGMA quick_check(10)")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        })
        .map_err(|e| classify(path, e))?;
    if lines.iter().all(|line| line == "ok") {
        return Ok(());
    }
    let detail = format!("quick_check: {}", lines.join("; "));
    mark_corrupt(path, &detail);
    Err(StateError::Corrupt {
        path: path.to_owned(),
        detail,
    })
}

/// SQLite maps the `-shm` file into memory: if it cannot be written, or is cut short under a
/// running process, that process dies with SIGBUS and logs nothing. So an existing `-shm` or
/// `-wal` that this user cannot open for writing is refused at open (opening for writing
/// changes nothing in it).
fn check_side_files(path: &Path) -> Result<(), StateError> {
    for (suffix, kind) in [
        ("-wal", "write-ahead log (-wal)"),
        ("-shm", "shared-memory (-shm)"),
    ] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        match OpenOptions::new().write(true).open(&side) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::SideFileUnwritable {
                    path: side,
                    kind,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The state holds OAuth tokens and event bodies: a file others can read gets a warning (once
/// per process and file). It is never changed: tightening is the owner's call.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        warn_once(
            path,
            "mode",
            &format!(
                "{}: the state file is readable by {} (mode {mode:04o}); it holds OAuth tokens and event bodies: chmod 600 it",
                path.display(),
                if mode & 0o004 != 0 {
                    "everyone"
                } else {
                    "its group"
                }
            ),
        );
    }
}

/// A warning about the state file, once per process, file and topic: to the log when the
/// command logs (`run`, `tick`), else on stderr.
fn warn_once(path: &Path, topic: &'static str, message: &str) {
    static WARNED: std::sync::Mutex<BTreeMap<(PathBuf, &'static str), ()>> =
        std::sync::Mutex::new(BTreeMap::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((path.to_owned(), topic), ())
        .is_none();
    if !first {
        return;
    }
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        eprintln!("ocpoll: warning: {message}");
    }
}

/// Tells "not SQLite at all" and "cut short" apart before SQLite opens the file, whose own
/// message for both is "file is not a database".
fn check_header(path: &Path) -> Result<(), StateError> {
    let io_error = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    let mut header = Vec::with_capacity(SQLITE_MAGIC.len());
    (&mut file)
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut header)
        .map_err(io_error)?;
    if !SQLITE_MAGIC.starts_with(&header) {
        return Err(StateError::NotSqlite {
            path: path.to_owned(),
        });
    }
    // The SQLite header is 100 bytes, and a database is at least one page.
    if length < 512 {
        return Err(StateError::Corrupt {
            path: path.to_owned(),
            detail: format!("only {length} bytes long"),
        });
    }
    Ok(())
}

pub(super) fn resource_id(conn: &Connection, key: &ResourceKey) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT id FROM resource_state WHERE instance = ?1 AND resource = ?2 AND path_params = ?3",
    )?
    .query_row(
        params![key.instance, key.resource, key.path_params],
        |row| row.get(0),
    )
    .optional()
}

/// The resource's row id, creating an empty row (never polled) when it has none.
pub(super) fn ensure_resource(conn: &Connection, key: &ResourceKey) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO resource_state (instance, resource, path_params) VALUES (?1, ?2, ?3)
         ON CONFLICT (instance, resource, path_params) DO NOTHING",
    )?
    .execute(params![key.instance, key.resource, key.path_params])?;
    resource_id(conn, key)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

const RESOURCE_STATE_COLUMNS: &str =
    "watermark, last_poll_at, last_result, last_error, next_due_at, records_read, events";

/// Reads [`RESOURCE_STATE_COLUMNS`] starting at column `first`.
fn read_resource_state(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ResourceState> {
    let last_result =
        match row.get::<_, Option<String>>(first + 2)? {
            None => None,
            Some(text) => Some(PollResult::parse(&text).ok_or_else(|| {
                conversion_error(first + 2, format!("unknown poll result {text:?}"))
            })?),
        };
    Ok(ResourceState {
        watermark: time_column(row, first)?,
        last_poll_at: time_column(row, first + 1)?,
        last_result,
        last_error: row.get(first + 3)?,
        next_due_at: time_column(row, first + 4)?,
        records_read: row.get(first + 5)?,
        events: row.get(first + 6)?,
    })
}

/// Times are stored as fixed-width RFC 3339 UTC with nanoseconds, which sorts correctly as text.
pub(super) fn encode_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn time_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let Some(text) = row.get::<_, Option<String>>(index)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|e| conversion_error(index, format!("bad time {text:?}: {e}")))
}

pub(super) fn conversion_error(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, message.into())
}
