//! The state store: one SQLite file holding everything ocpoll must remember between runs.
//!
//! It owns the watermarks (per instance, resource and pathParams value), the (id, updated) pairs
//! seen near each watermark, snapshot sets, stored OAuth tokens (`tokens`), the poll staging
//! tables (`staging`) and the outbox of notifications not yet acknowledged (`outbox`). Other
//! modules read and write them only through [`Store`]; `lock` is the poller lock beside the file,
//! `schema` its migrations.
//!
//! # What survives a crash, and why
//!
//! The file is in WAL mode and every change is one SQLite transaction (those of several
//! statements are opened by `Store::write_txn`), so after a crash at any moment (`kill -9`, panic,
//! OOM) the file holds exactly the transactions that committed, each whole, and nothing of the
//! one in flight. What that means for ocpoll:
//!
//! - **A poll is all or nothing.** A poll writes its events page by page into staging tables
//!   (short transactions, so memory stays bounded by a page); only [`CommitTxn::finish`] makes them
//!   count, in one transaction that moves them into the outbox as notifications, advances the
//!   watermark, refreshes the seen pairs and the snapshot set and deletes the staging rows. A crash
//!   before that commit leaves the old watermark and no notification of that poll: the next poll
//!   repeats it (staging leftovers are dropped by [`Store::discard_unfinished_polls`] at start-up
//!   and by [`Store::begin_poll`]). A crash after it loses nothing: the events are in the outbox.
//! - **A notification in the outbox stays there** until delivery removes it after a 2xx, or a user
//!   drops it; its body bytes are stored once and resent identically.
//! - **Power loss:** with `synchronous=FULL` (the default) a commit is on disk before it returns,
//!   except the relaxed writes (see [`Store::relaxed`]: starting and staging a poll, its final
//!   commit, an acknowledged delivery): those wait for the next [`Store::sync`], which delivery runs
//!   before it sends, so no notification reaches a receiver before the poll that made it is on
//!   disk. A power loss before that sync takes those commits back whole, as with `normal`: a
//!   power loss may take back the last commits (whole ones, still never half of one); those polls
//!   repeat and their events are produced again, so nothing is lost, but a watermark may step
//!   back.
//!
//! What does not survive, on purpose: an unfinished poll's staging rows, and the poller lock (the
//! kernel drops it with the process, see `lock`).
//!
//! A state file that is not SQLite, is another program's SQLite database (no ocpoll
//! `application_id`, see `schema`), is corrupted or truncated (`PRAGMA quick_check` at open, up
//! to [`QUICK_CHECK_MAX_BYTES`]), has an unwritable `-wal`/`-shm` beside it, or comes from a newer
//! ocpoll is refused with an error naming it ([`StateError::is_unusable_file`]), before anything
//! is written into it; it is never replaced by an empty one, because that would silently reset
//! every watermark. Damage a later statement meets marks the file corrupt for the whole process
//! ([`Store::corruption`]), which the daemon's `/healthz` reports. For the same reason an empty
//! (0-byte) state file is an error: ocpoll creates the file whole (a temporary file with the
//! schema, linked into place), so an empty one was truncated by something else.

pub mod lock;
mod outbox;
mod schema;
mod staging;
mod tokens;
mod webhooks;

#[cfg(test)]
mod crash_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use thiserror::Error;

pub use lock::{LockError, StateLock};
pub use outbox::{
    DropTarget, DueNotification, NewNotification, OutboxDepth, OutboxFilter, OutboxRow,
    OutboxSelection, RetryTarget,
};
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use staging::{CommitTxn, PollId, PollOutcome, StagedEvent, StagedKind};
pub use tokens::{StateTokens, TokenOverview};
pub use webhooks::{ReceiptOutcome, ReceiptWrite, StoredTokens, WebhookStatusRow};

/// How long a statement waits for another process's write transaction before giving up. Long
/// enough for the daemon's largest commit; `status` and `state reset` run beside the daemon.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Prepared statements kept per connection (see `configure`).
const STATEMENT_CACHE: usize = 64;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, Error)]
pub enum StateError {
    #[error(
        "{}: not an ocpoll state file (not an SQLite database); move it away or choose another --state",
        path.display()
    )]
    NotSqlite { path: PathBuf },
    #[error(
        "{}: the state file is corrupted or truncated ({detail}); ocpoll did not change it. To recover, stop every ocpoll using it, then restore it from a backup, or move it away to start over (every watermark would reset); see \"The state file is damaged\" in docs/operations.md",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{}: not an ocpoll state file (an SQLite database of another program: it has tables but not ocpoll's application_id); it was not changed; choose another --state",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error(
        "{}: SQLite's {kind} file cannot be written ({source}); a daemon would die on it (SIGBUS). Give it back to the user ocpoll runs as, or remove it while no ocpoll runs",
        path.display()
    )]
    SideFileUnwritable {
        path: PathBuf,
        kind: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: written by a newer ocpoll (state schema version {found}, this one knows up to {supported}); upgrade ocpoll",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{}: no state file (nothing has been polled yet)", path.display())]
    Missing { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The poll's staging rows were discarded (a newer `begin_poll` of the same resource, or
    /// `discard_unfinished_polls`), so committing it would lose events.
    #[error("poll {0} is no longer staged (a newer poll of the same resource discarded it)")]
    PollGone(i64),
}

impl StateError {
    /// True for the errors that make the file unusable as it is (the CLI exits 78 on them):
    /// not SQLite, another program's database, corrupted or truncated, from a newer schema, or
    /// with an unwritable `-wal`/`-shm` file beside it.
    pub fn is_unusable_file(&self) -> bool {
        matches!(
            self,
            StateError::NotSqlite { .. }
                | StateError::Foreign { .. }
                | StateError::Corrupt { .. }
                | StateError::NewerSchema { .. }
                | StateError::SideFileUnwritable { .. }
        )
    }
}

/// State files found corrupted by a statement in this process, by path, with SQLite's message:
/// what `/healthz` reads ([`Store::corruption`]), whichever connection met the damage.
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
/// of the process ([`Store::corruption`]).
fn classify(path: &Path, error: rusqlite::Error) -> StateError {
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

/// One polled thing: an instance's resource, fanned out per pathParams value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub instance: String,
    pub resource: String,
    /// "" without pathParams, else [`ResourceKey::render_path_params`] of the values.
    pub path_params: String,
}

/// `%`, `&` and `=` are escaped so that distinct parameter maps never render alike.
const PATH_PARAM_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'&').add(b'=');

impl ResourceKey {
    pub fn new(
        instance: impl Into<String>,
        resource: impl Into<String>,
        path_params: &BTreeMap<String, String>,
    ) -> ResourceKey {
        ResourceKey {
            instance: instance.into(),
            resource: resource.into(),
            path_params: ResourceKey::render_path_params(path_params),
        }
    }

    /// The canonical rendering stored in the state: `calendarId=primary`, several joined by `&`
    /// in key order (the BTreeMap's), `%`, `&` and `=` percent-escaped.
    pub fn render_path_params(path_params: &BTreeMap<String, String>) -> String {
        path_params
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(name, PATH_PARAM_ESCAPES),
                    utf8_percent_encode(value, PATH_PARAM_ESCAPES)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// How the last poll of a resource ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// Committed, every record understood.
    Ok,
    /// Committed, but some records could not be read (their problems are the last error).
    Problems,
    /// Failed before its commit; the watermark did not move.
    Failed,
}

impl PollResult {
    fn as_str(self) -> &'static str {
        match self {
            PollResult::Ok => "ok",
            PollResult::Problems => "problems",
            PollResult::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<PollResult> {
        match text {
            "ok" => Some(PollResult::Ok),
            "problems" => Some(PollResult::Problems),
            "failed" => Some(PollResult::Failed),
            _ => None,
        }
    }
}

/// What the state remembers of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceState {
    pub watermark: Option<DateTime<Utc>>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_result: Option<PollResult>,
    pub last_error: Option<String>,
    pub next_due_at: Option<DateTime<Utc>>,
    /// Of the last committed poll.
    pub records_read: u64,
    /// Of the last committed poll.
    pub events: u64,
}

/// One line of `ocpoll status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatusRow {
    pub key: ResourceKey,
    pub state: ResourceState,
}

/// How hard a commit insists on reaching the disk (`[state] synchronous`; the configuration
/// hands it to [`Store::open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit reaches the disk before it is acknowledged (power-loss safe).
    #[default]
    Full,
    /// Faster; a power loss may lose the last commits (a process crash loses nothing).
    Normal,
}

/// The state file, open. One per thread (SQLite connections are not shared); a reader such as
/// `status` opens its own beside the daemon's.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    synchronous: Synchronous,
    /// Counts this store in [`OPEN_IN_PROCESS`] while it lives.
    registered: Registration,
    /// A [`Store::relaxed`] write happened since the last [`Store::sync`]: only then does
    /// [`Store::sync_relaxed`] have anything to make durable.
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

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// A write transaction of the store, with the file's path for its errors (see
/// [`Store::write_txn`]). Derefs to the SQLite transaction.
struct WriteTxn<'a> {
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
    fn fail(&self, error: rusqlite::Error) -> StateError {
        classify(self.path, error)
    }

    fn commit(self) -> Result<(), StateError> {
        let path = self.path;
        self.tx.commit().map_err(|e| classify(path, e))
    }
}

impl Store {
    /// The store behind a mutex shared by several tasks. A poisoned lock (a panic elsewhere)
    /// still holds a consistent store, because every change is a transaction.
    pub fn locked(store: &std::sync::Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the state file at `path`, creating it (and its folders) when it does not exist.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Store, StateError> {
        if !path.exists() {
            create_state_file(path, synchronous)?;
        }
        Store::open_existing(path, synchronous)
    }

    /// Opens an existing state file; [`StateError::Missing`] when there is none (for commands
    /// that only read, which should not create a state as a side effect).
    pub fn open_existing(path: &Path, synchronous: Synchronous) -> Result<Store, StateError> {
        if !path.exists() {
            return Err(StateError::Missing {
                path: path.to_owned(),
            });
        }
        Store::open_checked(path, synchronous, QUICK_CHECK_MAX_BYTES)
    }

    /// [`Store::open_existing`] with the size above which the quick check is skipped.
    pub(crate) fn open_checked(
        path: &Path,
        synchronous: Synchronous,
        quick_check_max_bytes: u64,
    ) -> Result<Store, StateError> {
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
        let mut store = Store::prepare(conn, path.to_owned(), synchronous)?;
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
    pub fn open_in_memory() -> Result<Store, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| classify(&path, e))?;
        Store::prepare(conn, path, Synchronous::Full)
    }

    fn prepare(
        mut conn: Connection,
        path: PathBuf,
        synchronous: Synchronous,
    ) -> Result<Store, StateError> {
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
        Ok(Store {
            conn,
            path,
            synchronous,
            registered: Registration::default(),
            // A crash may have left relaxed commits of the previous run unsynced.
            unsynced: std::cell::Cell::new(true),
        })
    }

    /// Runs `write` without waiting for the disk. For staging, which a crash discards anyway,
    /// and for polls' final commits and delivery bookkeeping, which [`Store::sync`] makes
    /// durable together (group commit): SQLite's log keeps commits in order, so one sync
    /// covers every commit before it. A process crash loses none of them either way (the
    /// operating system has the writes); only a power loss before the sync could.
    pub(crate) fn relaxed<T>(&mut self, write: impl FnOnce(&mut Store) -> T) -> T {
        self.unsynced.set(true);
        self.set_relaxed(true);
        let result = write(self);
        self.set_relaxed(false);
        result
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

    /// [`Store::sync`] when a relaxed write happened on this connection since the last one,
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

    fn fail(&self, error: rusqlite::Error) -> StateError {
        classify(&self.path, error)
    }

    /// Opens a write transaction: IMMEDIATE, so it takes the write lock now and cannot fail
    /// half-way for lack of it. Dropping it without [`WriteTxn::commit`] rolls back.
    fn write_txn(&mut self) -> Result<WriteTxn<'_>, StateError> {
        let Store { conn, path, .. } = self;
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
    let store = Store::prepare(conn, temporary.to_owned(), synchronous)?;
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
/// which marks the store corrupt ([`Store::corruption`]).
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

fn resource_id(conn: &Connection, key: &ResourceKey) -> rusqlite::Result<Option<i64>> {
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
fn ensure_resource(conn: &Connection, key: &ResourceKey) -> rusqlite::Result<i64> {
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
fn encode_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn time_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let Some(text) = row.get::<_, Option<String>>(index)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|e| conversion_error(index, format!("bad time {text:?}: {e}")))
}

fn conversion_error(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, message.into())
}

#[cfg(test)]
mod tests;
