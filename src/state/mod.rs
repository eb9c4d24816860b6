//! The state store: everything ocpoll must remember between runs, in one SQLite file (the
//! default, `sqlite/`) or in a PostgreSQL database several daemons share (`postgres/`, with the
//! leases of `lease`). [`Store`] (`store.rs`) is the one interface; [`StateLocation`] says which.
//!
//! It owns the watermarks (per instance, resource and pathParams value), the (id, updated) pairs
//! seen near each watermark, snapshot sets, stored OAuth tokens (`tokens`), the poll staging
//! tables (`staging`) and the outbox of notifications not yet acknowledged (`outbox`). Other
//! modules read and write them only through [`Store`]; `lock` is the poller lock beside a file,
//! `sqlite/schema.rs` and `postgres/schema.rs` the migrations. `suite` tests both backends.
//!
//! # What survives a crash, and why
//!
//! (For the SQLite file; a PostgreSQL commit is durable when it returns, and the same
//! transactions make the same promises there.) The file is in WAL mode and every change is one
//! SQLite transaction (those of several statements are opened by `SqliteStore::write_txn`), so after a crash at any moment (`kill -9`, panic,
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

mod lease;
pub mod lock;
mod outbox;
pub mod postgres;
mod sqlite;
mod staging;
mod store;
#[cfg(test)]
mod suite;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use thiserror::Error;

pub use lease::{ConfigVersion, DeliveryClaim, LeaseCounts, NodeId, PollClaim};
pub use lock::{LockError, StateLock};
pub use outbox::{
    DropTarget, DueNotification, NewNotification, OutboxDepth, OutboxFilter, OutboxRow,
    OutboxSelection, RetryTarget,
};
pub use postgres::{PgCommitTxn, PgSettings, PgStore};
/// Times as both backends store them (RFC 3339, nanoseconds, UTC).
use sqlite::encode_time;
pub use sqlite::schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use sqlite::{QUICK_CHECK_MAX_BYTES, SqliteStore};
pub use staging::{PollId, PollOutcome, StagedEvent, StagedKind};
pub use store::{CommitTxn, Store};
pub use tokens::{StateTokens, TokenOverview};
pub use webhooks::{ReceiptOutcome, ReceiptWrite, StoredTokens, WebhookStatusRow};

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
    /// A statement against a PostgreSQL state failed (the server's message and SQLSTATE, or
    /// the driver's; never the password).
    #[error("{location}: {detail}")]
    Postgres { location: String, detail: String },
    /// A `postgres://` state URL that cannot be used as written (its password reference, its
    /// sslmode, its root certificate...).
    #[error("{location}: {detail}")]
    PostgresSettings { location: String, detail: String },
    /// The database's schema is older than this ocpoll's and nothing migrates it implicitly.
    #[error(
        "{location}: the state database has schema version {found}, this ocpoll needs {current}; run `ocpoll state migrate --state {location}` (or start with --migrate)"
    )]
    Unmigrated {
        location: String,
        found: u32,
        current: u32,
    },
    /// A PostgreSQL database (schema) with tables but without ocpoll's mark.
    #[error(
        "{location}: not an ocpoll state database (it has tables of another program and no ocpoll_schema row); it was not changed; choose another database or schema"
    )]
    ForeignDatabase { location: String },
}

impl StateError {
    /// True for the errors that make the state unusable as it is (the CLI exits 78 on them):
    /// not SQLite, another program's database, corrupted or truncated, from a newer schema, or
    /// with an unwritable `-wal`/`-shm` file beside it; a database not migrated, another
    /// program's, or whose URL cannot be used (bad settings, an unresolved password reference):
    /// waiting will not fix those, the configuration must change.
    pub fn is_unusable_file(&self) -> bool {
        matches!(
            self,
            StateError::NotSqlite { .. }
                | StateError::Foreign { .. }
                | StateError::Corrupt { .. }
                | StateError::NewerSchema { .. }
                | StateError::SideFileUnwritable { .. }
                | StateError::Unmigrated { .. }
                | StateError::ForeignDatabase { .. }
                | StateError::PostgresSettings { .. }
        )
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

/// Where the state is: `--state`, `state =` or `OCPOLL_STATE`, read as a PostgreSQL URL when it
/// starts with `postgres://` or `postgresql://`, else as the SQLite file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    File(PathBuf),
    /// The URL as given (it may hold a password or a `${env:..}` reference: never print it;
    /// [`StateLocation::display`] does not).
    Postgres(String),
}

impl StateLocation {
    pub fn of(setting: &std::path::Path) -> StateLocation {
        match setting.to_str() {
            Some(text) if text.starts_with("postgres://") || text.starts_with("postgresql://") => {
                StateLocation::Postgres(text.to_owned())
            }
            _ => StateLocation::File(setting.to_owned()),
        }
    }

    /// True when several daemons may share it (leases are claimed).
    pub fn is_shared(&self) -> bool {
        matches!(self, StateLocation::Postgres(_))
    }

    /// The file's path, or the URL without its password, for messages.
    pub fn display(&self) -> String {
        match self {
            StateLocation::File(path) => path.display().to_string(),
            StateLocation::Postgres(url) => without_password(url),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db`: whatever sits between the
/// scheme's `//` and the last `@` of the authority is cut after its first `:`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
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

#[cfg(test)]
mod location_tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_a_database_and_its_password_is_never_shown() {
        let location = StateLocation::of(std::path::Path::new(
            "postgres://ocpoll:s3cr:et@db.example:5433/fleet?sslmode=require",
        ));
        assert!(location.is_shared());
        assert_eq!(
            location.display(),
            "postgres://ocpoll@db.example:5433/fleet?sslmode=require"
        );
        let location = StateLocation::of(std::path::Path::new("postgresql://db/fleet"));
        assert_eq!(location.display(), "postgresql://db/fleet");
    }

    #[test]
    fn anything_else_is_a_file() {
        let location = StateLocation::of(std::path::Path::new("/var/lib/ocpoll/state.db"));
        assert_eq!(
            location,
            StateLocation::File("/var/lib/ocpoll/state.db".into())
        );
        assert!(!location.is_shared());
        assert!(!StateLocation::of(std::path::Path::new("postgres.db")).is_shared());
    }
}
