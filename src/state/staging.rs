//! The staging store: a poll's events staged page by page until its commit (the poll lifecycle
//! in the state: begin, stage page by page, commit once).
//!
//! ```text
//! begin_poll ──> stage_events / stage_snapshot (one short transaction per page) ──>
//!   begin_commit ──> for_each_staged + snapshot_deletions + insert_notification ──> finish
//! ```
//! A poll whose first page is also its last (most polls of a quiet resource) skips staging: it
//! keeps that page's events in memory and writes them in its one transaction, opened with
//! `begin_direct_commit` (`remember_seen` + `insert_notification`, then `finish`). One write
//! transaction per poll instead of three is most of what a tick over 10,000 instances costs.
//!
//! Everything before `finish` can be thrown away by a crash or an error without harm: the staging
//! rows are not events yet. `finish` is the one transaction where a poll's events are born into
//! the outbox and its watermark moves (see the crash notes in `mod.rs`).

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use crate::detect::EventType;

use super::outbox::{NewNotification, insert_notification};
use super::sqlite::{SqliteStore, WriteTxn, encode_time, ensure_resource, time_column};
use super::{ResourceKey, StateError};

/// A poll that has begun and not yet been committed or discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PollId(pub(in crate::state) i64);

/// One changed record as the poll found it, waiting for the poll's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEvent {
    pub record_id: String,
    /// The record's updated date in unix nanoseconds (None in snapshot mode; in window mode the
    /// provider's time of the page that returned it).
    pub updated: Option<i64>,
    /// Window mode: the record's content hash; with the id, what the window remembers.
    pub hash: Option<String>,
    /// An event, or a baseline row (remembered as seen, never sent).
    pub kind: StagedKind,
    /// The event's `date` as it will be sent.
    pub date: String,
    /// The event's `pathParams` object as JSON, for fanned-out resources.
    pub path_params_json: Option<String>,
    /// The record exactly as the provider sent it.
    pub raw: Vec<u8>,
}

/// What a staged row is: an event of a type, or a baseline row. A baseline poll stages what it
/// saw so that its commit remembers every (id, updated) as seen, but none of it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagedKind {
    Baseline,
    Event(EventType),
}

impl StagedKind {
    /// As kept in `staged_event.event_type`.
    fn as_str(self) -> &'static str {
        match self {
            StagedKind::Baseline => "BASELINE",
            StagedKind::Event(event_type) => event_type.as_str(),
        }
    }
}

impl ToSql for StagedKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for StagedKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "BASELINE" => Ok(StagedKind::Baseline),
            other => EventType::parse(other)
                .map(StagedKind::Event)
                .ok_or_else(|| FromSqlError::Other(format!("unknown event type {other:?}").into())),
        }
    }
}

/// What a successful poll leaves behind, written by [`SqliteCommitTxn::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// The watermark to store (None: none, as in snapshot mode).
    pub watermark: Option<DateTime<Utc>>,
    /// Seen pairs older than this (unix nanos) are dropped: watermark minus lookback. None keeps
    /// none (snapshot and window mode, or nothing to compare against).
    pub seen_floor: Option<i64>,
    /// Window mode: the poll's (id, hash) pairs join the window's, and pairs last seen before
    /// this (unix nanos: the next window's start) are dropped. None leaves the window's alone.
    pub window_floor: Option<i64>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub records_read: u64,
    pub events: u64,
    pub polled_at: DateTime<Utc>,
    /// Record-level problems (unparsable dates...) of a poll that still committed.
    pub problems: Option<String>,
}

impl SqliteStore {
    /// Starts a poll of `key` (watermark mode), discarding any unfinished poll of it first.
    pub fn begin_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        self.begin(key, false)
    }

    /// Starts a snapshot-mode poll: its commit replaces the snapshot set with what it staged,
    /// even when it staged nothing (the resource became empty, every record DELETED).
    pub fn begin_snapshot_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        self.begin(key, true)
    }

    fn begin(&mut self, key: &ResourceKey, snapshot: bool) -> Result<PollId, StateError> {
        // Starting a poll only matters if the poll commits; see `SqliteStore::relaxed`.
        self.relaxed(|store| {
            let tx = store.write_txn()?;
            let fail = |e| tx.fail(e);
            let resource_id = ensure_resource(&tx, key).map_err(fail)?;
            // Staging rows go with their poll (ON DELETE CASCADE).
            tx.execute("DELETE FROM poll WHERE resource_id = ?1", [resource_id])
                .map_err(fail)?;
            tx.execute(
                "INSERT INTO poll (resource_id, snapshot) VALUES (?1, ?2)",
                params![resource_id, snapshot],
            )
            .map_err(fail)?;
            let poll = PollId(tx.last_insert_rowid());
            tx.commit()?;
            Ok(poll)
        })
    }

    /// Stages one page of events in one short transaction. An event with the same
    /// (id, updated) as one already staged in this poll is ignored (the first is kept: the
    /// record was read twice, e.g. across a page boundary). Returns how many rows were added.
    pub fn stage_events(
        &mut self,
        poll: PollId,
        events: &[StagedEvent],
    ) -> Result<usize, StateError> {
        // Staging a crash would discard anyway: no disk sync (see `SqliteStore::relaxed`).
        self.relaxed(|store| {
            let tx = store.write_txn()?;
            let fail = |e| tx.fail(e);
            require_poll(&tx, poll)?;
            let mut inserted = 0;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO staged_event
                         (poll_id, record_id, updated, event_type, date, path_params, raw, hash)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(fail)?;
                for event in events {
                    inserted += insert
                        .execute(params![
                            poll.0,
                            event.record_id,
                            event.updated,
                            event.kind,
                            event.date,
                            event.path_params_json,
                            event.raw,
                            event.hash
                        ])
                        .map_err(fail)?;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
    }

    /// Snapshot mode: stages one page of the current poll's (id, content hash, record) set.
    /// A record id already staged in this poll keeps its first version.
    pub fn stage_snapshot<I, H, R>(
        &mut self,
        poll: PollId,
        records: &[(I, H, R)],
    ) -> Result<(), StateError>
    where
        I: AsRef<str>,
        H: AsRef<str>,
        R: AsRef<[u8]>,
    {
        // Staging, as `stage_events`: no disk sync.
        self.relaxed(|store| {
            let tx = store.write_txn()?;
            let fail = |e| tx.fail(e);
            require_poll(&tx, poll)?;
            tx.execute("UPDATE poll SET snapshot = 1 WHERE id = ?1", [poll.0])
                .map_err(fail)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO staged_snapshot (poll_id, record_id, hash, raw)
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(fail)?;
                for (id, hash, raw) in records {
                    insert
                        .execute(params![poll.0, id.as_ref(), hash.as_ref(), raw.as_ref()])
                        .map_err(fail)?;
                }
            }
            tx.commit()
        })
    }

    /// Drops every unfinished poll and its staging rows (at start-up: they belong to a process
    /// that died). Returns how many polls were dropped.
    pub fn discard_unfinished_polls(&mut self) -> Result<usize, StateError> {
        self.conn
            .execute("DELETE FROM poll", [])
            .map_err(|e| self.fail(e))
    }

    /// Records a failed poll: its time, error and next due time. The watermark, seen pairs and
    /// snapshot do not move, and its staging rows are dropped (the next poll starts over).
    pub fn record_poll_failure(
        &mut self,
        key: &ResourceKey,
        error: &str,
        polled_at: DateTime<Utc>,
        next_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StateError> {
        let tx = self.write_txn()?;
        let fail = |e| tx.fail(e);
        let resource_id = ensure_resource(&tx, key).map_err(fail)?;
        tx.execute(
            "UPDATE resource_state SET last_poll_at = ?2, last_result = 'failed', last_error = ?3,
                 next_due_at = ?4
             WHERE id = ?1",
            params![
                resource_id,
                encode_time(&polled_at),
                error,
                next_due_at.as_ref().map(encode_time)
            ],
        )
        .map_err(fail)?;
        tx.execute("DELETE FROM poll WHERE resource_id = ?1", [resource_id])
            .map_err(fail)?;
        tx.commit()
    }

    /// Opens the poll's final transaction (a [`SqliteStore::write_txn`]: it takes the write lock now,
    /// so it cannot fail half-way for lack of it). Dropping the returned value without `finish`
    /// rolls back.
    pub fn begin_commit(&mut self, poll: PollId) -> Result<SqliteCommitTxn<'_>, StateError> {
        let tx = self.write_txn()?;
        let (resource_id, snapshot) = tx
            .query_row(
                "SELECT resource_id, snapshot FROM poll WHERE id = ?1",
                [poll.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| tx.fail(e))?
            .ok_or(StateError::PollGone(poll.0))?;
        Ok(SqliteCommitTxn {
            tx,
            poll: Some(poll),
            resource_id,
            snapshot,
        })
    }

    /// Opens the final transaction of a watermark-mode poll that staged nothing: its events come
    /// from memory (`remember_seen`, `insert_notification`). Leftover staging of an unfinished
    /// earlier poll of `key` is dropped in it, as `begin_poll` would have.
    pub fn begin_direct_commit(
        &mut self,
        key: &ResourceKey,
    ) -> Result<SqliteCommitTxn<'_>, StateError> {
        let tx = self.write_txn()?;
        let fail = |e| tx.fail(e);
        let resource_id = ensure_resource(&tx, key).map_err(fail)?;
        tx.prepare_cached("DELETE FROM poll WHERE resource_id = ?1")
            .and_then(|mut stmt| stmt.execute([resource_id]))
            .map_err(fail)?;
        Ok(SqliteCommitTxn {
            tx,
            poll: None,
            resource_id,
            snapshot: false,
        })
    }
}

/// The final transaction of one poll. Its methods take `&self`, so the closure given to
/// [`SqliteCommitTxn::for_each_staged`] can call [`SqliteCommitTxn::insert_notification`] on the same value
/// while the staged rows stream past (SQLite reads one row at a time; nothing is collected).
pub struct SqliteCommitTxn<'a> {
    tx: WriteTxn<'a>,
    /// None for a direct commit: nothing was staged.
    poll: Option<PollId>,
    resource_id: i64,
    snapshot: bool,
}

impl SqliteCommitTxn<'_> {
    fn fail(&self, error: rusqlite::Error) -> StateError {
        self.tx.fail(error)
    }

    /// Calls `f` with each staged event of the poll, in the order they were staged.
    pub fn for_each_staged<E>(
        &self,
        mut f: impl FnMut(StagedEvent) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StateError>,
    {
        let Some(poll) = self.poll else {
            return Ok(());
        };
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT record_id, updated, event_type, date, path_params, raw, hash
                 FROM staged_event WHERE poll_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.fail(e))?;
        let mut rows = stmt.query([poll.0]).map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let event = StagedEvent {
                record_id: row.get(0).map_err(|e| self.fail(e))?,
                updated: row.get(1).map_err(|e| self.fail(e))?,
                kind: row.get(2).map_err(|e| self.fail(e))?,
                date: row.get(3).map_err(|e| self.fail(e))?,
                path_params_json: row.get(4).map_err(|e| self.fail(e))?,
                raw: row.get(5).map_err(|e| self.fail(e))?,
                hash: row.get(6).map_err(|e| self.fail(e))?,
            };
            f(event)?;
        }
        Ok(())
    }

    /// Snapshot mode: calls `f` with each record id of the previous snapshot that this poll did
    /// not see (a DELETED event), with the last version of it that was stored. Nothing for a poll
    /// in watermark mode.
    pub fn snapshot_deletions<E>(
        &self,
        mut f: impl FnMut(String, Option<Vec<u8>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<StateError>,
    {
        let (true, Some(poll)) = (self.snapshot, self.poll) else {
            return Ok(());
        };
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT record_id, raw FROM snapshot_item AS item
                 WHERE resource_id = ?1 AND NOT EXISTS (
                     SELECT 1 FROM staged_snapshot AS now
                     WHERE now.poll_id = ?2 AND now.record_id = item.record_id)
                 ORDER BY record_id",
            )
            .map_err(|e| self.fail(e))?;
        let mut rows = stmt
            .query(params![self.resource_id, poll.0])
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let record_id: String = row.get(0).map_err(|e| self.fail(e))?;
            let raw: Vec<u8> = row.get(1).map_err(|e| self.fail(e))?;
            // An empty blob means the record was not kept.
            f(record_id, Some(raw).filter(|raw| !raw.is_empty()))?;
        }
        Ok(())
    }

    /// The resource's watermark as the state holds it now, inside this transaction (so nothing
    /// can move it between this read and the commit).
    pub fn watermark(&self) -> Result<Option<DateTime<Utc>>, StateError> {
        self.tx
            .prepare_cached("SELECT watermark FROM resource_state WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([self.resource_id], |row| time_column(row, 0)))
            .map_err(|e| self.fail(e))
    }

    /// Remembers what a row of a direct commit saw (staged rows are remembered by `finish`):
    /// its (id, updated) pair in watermark mode, its (id, hash) pair in window mode. Pairs
    /// below the floors are dropped again by `finish`.
    pub fn remember(&self, event: &StagedEvent) -> Result<(), StateError> {
        let result = match (&event.hash, event.updated) {
            (Some(hash), Some(seen_at)) => {
                self.tx
                    .prepare_cached(REMEMBER_WINDOW_PAIR)
                    .and_then(|mut stmt| {
                        stmt.execute(params![self.resource_id, event.record_id, hash, seen_at])
                    })
            }
            (None, Some(updated)) => self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO seen_pair (resource_id, updated, record_id)
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![self.resource_id, updated, event.record_id])
                }),
            _ => Ok(0),
        };
        result.map(drop).map_err(|e| self.fail(e))
    }

    /// Adds one notification to the outbox, due for delivery at once.
    pub fn insert_notification(&self, notification: NewNotification) -> Result<(), StateError> {
        insert_notification(&self.tx, &notification).map_err(|e| self.fail(e))
    }

    /// Commits the poll: watermark, seen pairs, snapshot set, poll result, and the notifications
    /// inserted so far, in one COMMIT; the staging rows are deleted in it too.
    pub fn finish(self, outcome: PollOutcome) -> Result<(), StateError> {
        self.refresh_seen_pairs(outcome.seen_floor)
            .map_err(|e| self.fail(e))?;
        if let Some(floor) = outcome.window_floor {
            self.refresh_window_pairs(floor).map_err(|e| self.fail(e))?;
        }
        if self.snapshot {
            self.replace_snapshot().map_err(|e| self.fail(e))?;
        }
        self.record_outcome(&outcome).map_err(|e| self.fail(e))?;
        if let Some(poll) = self.poll {
            self.tx
                .prepare_cached("DELETE FROM poll WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([poll.0]))
                .map_err(|e| self.fail(e))?;
        }
        self.tx.commit()
    }

    /// Kept pairs = (old pairs ∪ this poll's staged pairs) with updated >= floor, done inside
    /// SQLite so memory does not grow with the number of pairs.
    fn refresh_seen_pairs(&self, floor: Option<i64>) -> rusqlite::Result<()> {
        let Some(floor) = floor else {
            self.tx
                .prepare_cached("DELETE FROM seen_pair WHERE resource_id = ?1")?
                .execute([self.resource_id])?;
            return Ok(());
        };
        if let Some(poll) = self.poll {
            self.tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO seen_pair (resource_id, updated, record_id)
                     SELECT ?1, updated, record_id FROM staged_event
                     WHERE poll_id = ?2 AND updated IS NOT NULL AND updated >= ?3",
                )?
                .execute(params![self.resource_id, poll.0, floor])?;
        }
        self.tx
            .prepare_cached("DELETE FROM seen_pair WHERE resource_id = ?1 AND updated < ?2")?
            .execute(params![self.resource_id, floor])?;
        Ok(())
    }

    /// The window's pairs gain this poll's (a pair seen again keeps its latest time), then lose
    /// those last seen before `floor`: no later window can return their records unchanged.
    fn refresh_window_pairs(&self, floor: i64) -> rusqlite::Result<()> {
        if let Some(poll) = self.poll {
            self.tx
                .prepare_cached(
                    "INSERT INTO window_pair (resource_id, record_id, hash, seen_at)
                     SELECT ?1, record_id, hash, updated FROM staged_event
                     WHERE poll_id = ?2 AND hash IS NOT NULL AND updated IS NOT NULL
                     ON CONFLICT (resource_id, record_id, hash)
                     DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)",
                )?
                .execute(params![self.resource_id, poll.0])?;
        }
        self.tx
            .prepare_cached("DELETE FROM window_pair WHERE resource_id = ?1 AND seen_at < ?2")?
            .execute(params![self.resource_id, floor])?;
        Ok(())
    }

    /// The snapshot set becomes exactly what this poll staged.
    fn replace_snapshot(&self) -> rusqlite::Result<()> {
        // Snapshot polls always stage (`begin_snapshot_poll`); a direct commit is never one.
        let Some(poll) = self.poll else {
            return Ok(());
        };
        self.tx.execute(
            "DELETE FROM snapshot_item WHERE resource_id = ?1 AND NOT EXISTS (
                 SELECT 1 FROM staged_snapshot AS now
                 WHERE now.poll_id = ?2 AND now.record_id = snapshot_item.record_id)",
            params![self.resource_id, poll.0],
        )?;
        self.tx.execute(
            "INSERT OR REPLACE INTO snapshot_item (resource_id, record_id, hash, raw)
             SELECT ?1, record_id, hash, raw FROM staged_snapshot WHERE poll_id = ?2",
            params![self.resource_id, poll.0],
        )?;
        Ok(())
    }

    fn record_outcome(&self, outcome: &PollOutcome) -> rusqlite::Result<()> {
        let result = if outcome.problems.is_some() {
            super::PollResult::Problems
        } else {
            super::PollResult::Ok
        };
        self.tx
            .prepare_cached(
                "UPDATE resource_state SET watermark = ?2, last_poll_at = ?3, last_result = ?4,
                 last_error = ?5, next_due_at = ?6, records_read = ?7, events = ?8
             WHERE id = ?1",
            )?
            .execute(params![
                self.resource_id,
                outcome.watermark.as_ref().map(encode_time),
                encode_time(&outcome.polled_at),
                result.as_str(),
                outcome.problems,
                outcome.next_due_at.as_ref().map(encode_time),
                outcome.records_read,
                outcome.events
            ])?;
        Ok(())
    }
}

/// A window pair seen (again) at `seen_at`: the latest time wins.
const REMEMBER_WINDOW_PAIR: &str = "INSERT INTO window_pair (resource_id, record_id, hash, seen_at)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (resource_id, record_id, hash) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)";

/// Fails with [`StateError::PollGone`] when the poll was discarded: staging into it would
/// otherwise hit a foreign-key error that says nothing useful.
fn require_poll(tx: &WriteTxn<'_>, poll: PollId) -> Result<(), StateError> {
    let exists = tx
        .query_row("SELECT 1 FROM poll WHERE id = ?1", [poll.0], |_| Ok(()))
        .optional()
        .map_err(|e| tx.fail(e))?;
    exists.ok_or(StateError::PollGone(poll.0))
}
