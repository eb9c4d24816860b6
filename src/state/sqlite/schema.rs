//! The state file's schema and its migrations.
//!
//! The schema version lives in SQLite's `PRAGMA user_version` (a header field, written inside the
//! migrating transaction, so a crash leaves either the old or the new version, never half of one).
//! Version N means "the first N entries of [`MIGRATIONS`] have been applied". A migration is never
//! edited once released: changes go into a new entry at the end.
//!
//! A file with a version above [`MIGRATIONS`]`.len()` was written by a newer ocpoll; it is refused,
//! not downgraded, because an older binary cannot know what the newer tables mean.
//!
//! Since version 3 the header also carries [`APPLICATION_ID`] (`PRAGMA application_id`), so that
//! [`is_ocpoll_file`] can tell another program's SQLite file from ours before anything is
//! written into it.

use rusqlite::{Connection, TransactionBehavior};

/// Every migration, in order. Times are TEXT in one fixed-width RFC 3339 form
/// (`2026-11-25T12:59:58.123456789Z`, see `mod.rs`), so they sort as text and read well in the
/// `sqlite3` shell; the seen pairs use integer nanoseconds because they are compared in bulk.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    -- One row per (instance, resource, pathParams value): the watermark and the last poll.
    CREATE TABLE resource_state (
        id            INTEGER PRIMARY KEY,
        instance      TEXT NOT NULL,
        resource      TEXT NOT NULL,
        path_params   TEXT NOT NULL,
        watermark     TEXT,
        last_poll_at  TEXT,
        last_result   TEXT,
        last_error    TEXT,
        next_due_at   TEXT,
        records_read  INTEGER NOT NULL DEFAULT 0,
        events        INTEGER NOT NULL DEFAULT 0,
        UNIQUE (instance, resource, path_params)
    );

    -- (id, updated) pairs already turned into events near the watermark (docs/design.md#change-detection).
    CREATE TABLE seen_pair (
        resource_id  INTEGER NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        updated      INTEGER NOT NULL,
        record_id    TEXT NOT NULL,
        PRIMARY KEY (resource_id, updated, record_id)
    ) WITHOUT ROWID;

    -- Snapshot mode: the previous poll's (id, content hash) set, with the record for DELETED.
    CREATE TABLE snapshot_item (
        resource_id  INTEGER NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        record_id    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        raw          BLOB NOT NULL,
        PRIMARY KEY (resource_id, record_id)
    ) WITHOUT ROWID;

    -- A poll that has begun and not yet committed. Its staging rows hang off it.
    CREATE TABLE poll (
        id           INTEGER PRIMARY KEY,
        resource_id  INTEGER NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        snapshot     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX poll_by_resource ON poll(resource_id);

    -- Events of unfinished polls, one short transaction per page. seq is the rowid: it only grows
    -- while a poll's own rows exist, so ordering by it is the order records were read.
    CREATE TABLE staged_event (
        seq          INTEGER PRIMARY KEY,
        poll_id      INTEGER NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
        record_id    TEXT NOT NULL,
        updated      INTEGER,
        event_type   TEXT NOT NULL,
        date         TEXT NOT NULL,
        path_params  TEXT,
        raw          BLOB NOT NULL
    );
    -- "Unique per poll, id and updated" (docs/design.md#change-detection); snapshot events have no updated, and NULLs are
    -- distinct in a UNIQUE index, hence the IFNULL.
    CREATE UNIQUE INDEX staged_event_unique
        ON staged_event(poll_id, record_id, IFNULL(updated, -9223372036854775808));

    -- Snapshot mode: the current poll's full (id, hash, record) set, streamed page by page.
    CREATE TABLE staged_snapshot (
        poll_id      INTEGER NOT NULL REFERENCES poll(id) ON DELETE CASCADE,
        record_id    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        raw          BLOB NOT NULL,
        PRIMARY KEY (poll_id, record_id)
    ) WITHOUT ROWID;

    -- Notifications not yet acknowledged by their callback. seq is the rowid: delivery order.
    -- body is the last column: SQLite reads a row's columns in order, and a body spills into
    -- overflow pages, so the columns delivery filters on must come before it.
    CREATE TABLE outbox (
        seq              INTEGER PRIMARY KEY,
        id               TEXT NOT NULL UNIQUE,
        instance         TEXT NOT NULL,
        events           INTEGER NOT NULL,
        created_at       TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  TEXT NOT NULL,
        last_error       TEXT,
        dead             INTEGER NOT NULL DEFAULT 0,
        -- Set by `outbox retry`: the retry window counts from here instead of created_at.
        retried_at       TEXT,
        body             BLOB NOT NULL
    );
    CREATE INDEX outbox_by_instance ON outbox(instance, dead, seq);

    -- OAuth access tokens obtained by refresh, tied to the credentials they came from (docs/design.md#state).
    CREATE TABLE oauth_token (
        instance          TEXT PRIMARY KEY,
        credentials_hash  TEXT NOT NULL,
        access_token      TEXT NOT NULL,
        refresh_token     TEXT,
        expires_at        TEXT
    );

    -- One row, rewritten by `Store::sync` at the configured durability: that commit waits for
    -- the disk and with it every commit before it (group commit; see mod.rs).
    CREATE TABLE sync_point (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        at  TEXT NOT NULL
    );
    "#,
    // 2: window mode (docs/design.md#window-mode).
    r#"
    -- (id, content hash) pairs a window-mode poll has seen, each with the provider's time (unix
    -- nanos) of the last page that returned it; kept until the window has moved past it.
    CREATE TABLE window_pair (
        resource_id  INTEGER NOT NULL REFERENCES resource_state(id) ON DELETE CASCADE,
        record_id    TEXT NOT NULL,
        hash         TEXT NOT NULL,
        seen_at      INTEGER NOT NULL,
        PRIMARY KEY (resource_id, record_id, hash)
    ) WITHOUT ROWID;

    -- A window-mode staged row's content hash (NULL in the other modes).
    ALTER TABLE staged_event ADD COLUMN hash TEXT;
    "#,
    // 3: ocpoll's mark in the file header, so another program's database is never taken over
    // (`is_ocpoll_file`). 1868787820 is APPLICATION_ID, "ocpl".
    r#"
    PRAGMA application_id = 1868787820;
    "#,
    // 4: OAuth grants (docs/design.md#oauth-grants): which `providerData.code` was already sent
    // (its SHA-256, never the code), the last token request's result, and a revoked grant.
    r#"
    CREATE TABLE oauth_grant (
        instance           TEXT PRIMARY KEY,
        credentials_hash   TEXT NOT NULL,
        code_hash          TEXT,
        code_rejected      INTEGER NOT NULL DEFAULT 0,
        last_token_at      TEXT,
        last_token_result  TEXT,
        revoked_at         TEXT
    );
    "#,
    // 5: webhooks instances (docs/design.md#webhooks). IF NOT EXISTS: a file whose version was
    // set back (tests do) runs it again over its own tables.
    r#"
    -- The URL token of each webhooks instance, and the one it replaced until its grace ends.
    CREATE TABLE IF NOT EXISTS webhook_token (
        instance        TEXT PRIMARY KEY,
        token           TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        previous_token  TEXT,
        previous_until  TEXT
    );

    -- Receipts already enqueued, by the provider's delivery id or the body's hash, until
    -- keep_until: a provider's retry of one of them is answered 2xx and not enqueued again.
    CREATE TABLE IF NOT EXISTS webhook_receipt (
        instance    TEXT NOT NULL,
        key         TEXT NOT NULL,
        keep_until  TEXT NOT NULL,
        PRIMARY KEY (instance, key)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS webhook_receipt_by_age ON webhook_receipt(keep_until);

    -- What `status` shows of a webhooks instance.
    CREATE TABLE IF NOT EXISTS webhook_status (
        instance         TEXT PRIMARY KEY,
        last_receipt_at  TEXT NOT NULL,
        accepted         INTEGER NOT NULL DEFAULT 0,
        duplicates       INTEGER NOT NULL DEFAULT 0
    );
    "#,
];

/// SQLite's `PRAGMA application_id` of an ocpoll state file: "ocpl" (0x6F63706C), set by
/// migration 3.
pub const APPLICATION_ID: i32 = 0x6F63_706C;

/// The schema version whose migration set [`APPLICATION_ID`]: files of the versions before it
/// are ocpoll's without the mark.
const APPLICATION_ID_SINCE: u32 = 3;

/// The schema version this build writes and understands.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// What [`migrate`] found wrong, before any SQLite error.
#[derive(Debug)]
pub enum MigrateError {
    /// The file's version is newer than [`CURRENT_VERSION`].
    Newer {
        found: u32,
    },
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(error: rusqlite::Error) -> Self {
        MigrateError::Sqlite(error)
    }
}

/// Brings the schema up to [`CURRENT_VERSION`] in one IMMEDIATE transaction (the version is
/// re-read inside it, so two processes opening a fresh file at once do not both migrate).
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let found = user_version(conn)?;
    if found > CURRENT_VERSION {
        return Err(MigrateError::Newer { found });
    }
    if found == CURRENT_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > CURRENT_VERSION {
        return Err(MigrateError::Newer { found });
    }
    for migration in MIGRATIONS.iter().skip(found as usize) {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Whether the database open on `conn` is ocpoll's to use; only reads. Yes when it carries
/// [`APPLICATION_ID`], or has no tables yet (a new file), or has no application_id but the
/// `user_version` and tables of an ocpoll file older than the mark (the migration adds it). Any
/// other database (another application_id, or tables without ocpoll's history) is another
/// program's, and is refused untouched.
pub fn is_ocpoll_file(conn: &Connection) -> rusqlite::Result<bool> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    if application_id == APPLICATION_ID {
        return Ok(true);
    }
    if application_id != 0 {
        return Ok(false);
    }
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.is_empty() {
        return Ok(true);
    }
    let version = user_version(conn)?;
    let has = |name: &str| tables.iter().any(|table| table == name);
    Ok((1..APPLICATION_ID_SINCE).contains(&version)
        && has("resource_state")
        && has("outbox")
        && has("sync_point"))
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_sets_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), CURRENT_VERSION);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn the_migration_sets_the_application_id() {
        assert_eq!(
            MIGRATIONS[APPLICATION_ID_SINCE as usize - 1].trim(),
            format!("PRAGMA application_id = {APPLICATION_ID};")
        );
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(
            is_ocpoll_file(&conn).unwrap(),
            "an empty database is ours to set up"
        );
        migrate(&mut conn).unwrap();
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        assert!(is_ocpoll_file(&conn).unwrap());
    }

    #[test]
    fn a_file_of_an_older_ocpoll_is_ours_and_gets_the_mark() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for migration in &MIGRATIONS[..2] {
            tx.execute_batch(migration).unwrap();
        }
        tx.pragma_update(None, "user_version", 2).unwrap();
        tx.commit().unwrap();
        assert!(is_ocpoll_file(&conn).unwrap());
        migrate(&mut conn).unwrap();
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
    }

    #[test]
    fn another_programs_database_is_foreign() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            .unwrap();
        assert!(
            !is_ocpoll_file(&conn).unwrap(),
            "tables, no mark, no history"
        );
        conn.pragma_update(None, "user_version", 2).unwrap();
        assert!(
            !is_ocpoll_file(&conn).unwrap(),
            "a version but not ocpoll's tables"
        );
        let other = Connection::open_in_memory().unwrap();
        other.pragma_update(None, "application_id", 42).unwrap();
        assert!(!is_ocpoll_file(&other).unwrap(), "another application_id");
    }

    #[test]
    fn a_newer_version_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        match migrate(&mut conn) {
            Err(MigrateError::Newer { found }) => assert_eq!(found, CURRENT_VERSION + 1),
            other => panic!("expected Newer, got {other:?}"),
        }
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .unwrap();
        assert_eq!(tables, 0, "nothing was created in a newer file");
    }
}
