//! A poll's lifecycle in PostgreSQL: begin, stage page by page, commit once ([`PgCommitTxn`]),
//! with the meaning of the SQLite store's `staging` (read its notes first).
//!
//! What it owns, beyond SQLite's:
//!
//! - **The node.** A poll row carries the node that runs it. A node's start-up
//!   ([`PgStore::discard_unfinished_polls`]) drops its own leftovers and the polls of other
//!   nodes that no longer hold a live lease on their resource, never a live node's poll.
//! - **One commit per resource.** The final commit locks the poll row (`FOR UPDATE`) and the
//!   resource row (`FOR NO KEY UPDATE`) before anything else, so [`PgCommitTxn::watermark`]
//!   reads a watermark no other node can move before this commit ends: a second node
//!   committing the same resource waits, then sees the moved watermark (`WatermarkMoved`) or
//!   its discarded poll (`PollGone`).
//! - **Commit order.** Inserting into an instance's queue first takes a transaction-level
//!   advisory lock on the instance (`outbox::lock_instance`), held until COMMIT, so seq order
//!   within an instance is commit order across nodes.
//! - **Round trips.** Remembered pairs and notifications are buffered and written as one
//!   multi-row `INSERT ... SELECT FROM unnest(...)` per batch; staged rows are read in chunks.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::super::staging::{PollId, PollOutcome, StagedEvent, StagedKind};
use super::super::{NewNotification, PollResult, ResourceKey, StateError, encode_time};
use super::actor::Session;
use super::{ENSURE_RESOURCE, PgStore, encode_opt, ensure_resource, ensure_resource_by, outbox};
use crate::detect::EventType;

/// Starts a transaction's relaxed commit: it returns before its WAL reaches the disk. For
/// staging (a crash discards it anyway) and the writes the SQLite store makes `relaxed`: the
/// server writes WAL in order, so the next durable commit (a poll's final commit) makes every
/// earlier one durable with it, as `Store::sync` does for SQLite.
pub(super) const RELAXED: &str = "SET LOCAL synchronous_commit = off";

/// Rows read per round trip from the staging tables.
const READ_CHUNK: i64 = 2_000;
/// Buffered notifications (or their bytes) that make a flush.
pub(super) const FLUSH_ROWS: usize = 2_000;
const FLUSH_BYTES: usize = 8 * 1024 * 1024;

fn kind_str(kind: StagedKind) -> &'static str {
    match kind {
        StagedKind::Baseline => "BASELINE",
        StagedKind::Event(event_type) => event_type.as_str(),
    }
}

fn parse_kind(text: &str) -> Result<StagedKind, StateError> {
    match text {
        "BASELINE" => Ok(StagedKind::Baseline),
        other => EventType::parse(other)
            .map(StagedKind::Event)
            .ok_or_else(|| StateError::Postgres {
                location: String::new(),
                detail: format!("unknown event type {other:?} in the staging table"),
            }),
    }
}

/// A foreign-key error on a poll id means the poll was discarded meanwhile.
fn poll_gone_or(session: &mut Session, poll: PollId, error: postgres::Error) -> StateError {
    if error.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
        StateError::PollGone(poll.0)
    } else {
        session.fail(error)
    }
}

impl PgStore {
    /// Starts a poll of `key` (watermark mode), discarding any unfinished poll of it first.
    pub fn begin_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        self.begin(key, false)
    }

    /// Starts a snapshot-mode poll (see the SQLite store).
    pub fn begin_snapshot_poll(&mut self, key: &ResourceKey) -> Result<PollId, StateError> {
        self.begin(key, true)
    }

    fn begin(&mut self, key: &ResourceKey, snapshot: bool) -> Result<PollId, StateError> {
        let key = key.clone();
        let node = self.node.0.clone();
        let now = encode_time(&Utc::now());
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                tx.batch_execute(RELAXED)?;
                let resource_id = ensure_resource(&mut tx, &key)?;
                tx.execute("DELETE FROM poll WHERE resource_id = $1", &[&resource_id])?;
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO poll (resource_id, snapshot, node, started_at)
                         VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&resource_id, &snapshot, &node, &now],
                    )?
                    .get(0);
                tx.commit()?;
                Ok(PollId(id))
            })
        })
    }

    /// Stages one page of events in one statement. An event with the same (id, updated) as one
    /// already staged in this poll is ignored (the first is kept). Returns how many rows were
    /// added.
    pub fn stage_events(
        &mut self,
        poll: PollId,
        events: &[StagedEvent],
    ) -> Result<usize, StateError> {
        let mut record_ids = Vec::with_capacity(events.len());
        let mut updated = Vec::with_capacity(events.len());
        let mut kinds = Vec::with_capacity(events.len());
        let mut dates = Vec::with_capacity(events.len());
        let mut path_params = Vec::with_capacity(events.len());
        let mut raws = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for event in events {
            record_ids.push(event.record_id.clone());
            updated.push(event.updated);
            kinds.push(kind_str(event.kind));
            dates.push(event.date.clone());
            path_params.push(event.path_params_json.clone());
            raws.push(event.raw.clone());
            hashes.push(event.hash.clone());
        }
        self.call(move |session| {
            require_poll(session, poll)?;
            let statement = session.prepare(
                "INSERT INTO staged_event
                     (poll_id, record_id, updated, event_type, date, path_params, raw, hash)
                 SELECT $1, u.* FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[],
                                            $6::text[], $7::bytea[], $8::text[]) AS u
                 ON CONFLICT DO NOTHING",
            )?;
            let result = session.client()?.transaction().and_then(|mut tx| {
                tx.batch_execute(RELAXED)?;
                let inserted = tx.execute(
                    &statement,
                    &[
                        &poll.0,
                        &record_ids,
                        &updated,
                        &kinds,
                        &dates,
                        &path_params,
                        &raws,
                        &hashes,
                    ],
                )?;
                tx.commit()?;
                Ok(inserted)
            });
            result
                .map(|n| n as usize)
                .map_err(|e| poll_gone_or(session, poll, e))
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
        let ids: Vec<String> = records.iter().map(|r| r.0.as_ref().to_owned()).collect();
        let hashes: Vec<String> = records.iter().map(|r| r.1.as_ref().to_owned()).collect();
        let raws: Vec<Vec<u8>> = records.iter().map(|r| r.2.as_ref().to_vec()).collect();
        self.call(move |session| {
            require_poll(session, poll)?;
            let result = session.client()?.transaction().and_then(|mut tx| {
                tx.batch_execute(RELAXED)?;
                tx.execute("UPDATE poll SET snapshot = true WHERE id = $1", &[&poll.0])?;
                tx.execute(
                    "INSERT INTO staged_snapshot (poll_id, record_id, hash, raw)
                     SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::bytea[]) AS u
                     ON CONFLICT DO NOTHING",
                    &[&poll.0, &ids, &hashes, &raws],
                )?;
                tx.commit()
            });
            result.map_err(|e| poll_gone_or(session, poll, e))
        })
    }

    /// At a node's start-up: drops this node's unfinished polls and those of other nodes that
    /// no longer hold a live poll lease on their resource (they died, or never claimed one),
    /// never another live node's poll in progress. Returns how many polls were dropped.
    pub fn discard_unfinished_polls(&mut self) -> Result<usize, StateError> {
        let node = self.node.0.clone();
        let now = encode_time(&Utc::now());
        self.call(move |session| {
            session
                .run(|client| {
                    client.execute(
                        "DELETE FROM poll p
                     WHERE p.node = $1 OR NOT EXISTS (
                         SELECT 1 FROM poll_lease l
                         WHERE l.resource_id = p.resource_id AND l.node = p.node
                           AND l.expires_at > $2)",
                        &[&node, &now],
                    )
                })
                .map(|n| n as usize)
        })
    }

    /// Records a failed poll: its time, error and next due time; its staging rows go. The
    /// watermark, seen pairs and snapshot do not move.
    pub fn record_poll_failure(
        &mut self,
        key: &ResourceKey,
        error: &str,
        polled_at: DateTime<Utc>,
        next_due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StateError> {
        let key = key.clone();
        let error = error.to_owned();
        let polled_at = encode_time(&polled_at);
        let next_due_at = encode_opt(next_due_at);
        self.call(move |session| {
            session.run(|client| {
                let mut tx = client.transaction()?;
                let resource_id = ensure_resource(&mut tx, &key)?;
                // The poll rows first, then the resource row: the order a commit locks them.
                tx.execute("DELETE FROM poll WHERE resource_id = $1", &[&resource_id])?;
                tx.execute(
                    "UPDATE resource_state SET last_poll_at = $2, last_result = 'failed',
                         last_error = $3, next_due_at = $4
                     WHERE id = $1",
                    &[&resource_id, &polled_at, &error, &next_due_at],
                )?;
                tx.commit()
            })
        })
    }

    /// Opens the poll's final transaction, locking the poll and its resource (see the module
    /// notes). [`StateError::PollGone`] when the poll was discarded. Dropping the returned
    /// value without `finish` rolls back.
    pub fn begin_commit(&mut self, poll: PollId) -> Result<PgCommitTxn<'_>, StateError> {
        let found = self.call(move |session| {
            session.begin()?;
            let found = session.run(|client| {
                let Some(row) = client.query_opt(
                    "SELECT resource_id, snapshot FROM poll WHERE id = $1 FOR UPDATE",
                    &[&poll.0],
                )?
                else {
                    return Ok(None);
                };
                let resource_id: i64 = row.get(0);
                let snapshot: bool = row.get(1);
                client.execute(
                    "SELECT 1 FROM resource_state WHERE id = $1 FOR NO KEY UPDATE",
                    &[&resource_id],
                )?;
                Ok(Some((resource_id, snapshot)))
            });
            match found {
                Ok(Some(found)) => Ok(found),
                Ok(None) => {
                    session.rollback();
                    Err(StateError::PollGone(poll.0))
                }
                Err(e) => {
                    session.rollback();
                    Err(e)
                }
            }
        })?;
        Ok(PgCommitTxn::new(self, Some(poll), found.0, found.1))
    }

    /// Opens the final transaction of a watermark-mode poll that staged nothing (its events
    /// come from memory). Leftover staging of an earlier poll of `key` is dropped in it.
    pub fn begin_direct_commit(
        &mut self,
        key: &ResourceKey,
    ) -> Result<PgCommitTxn<'_>, StateError> {
        let key = key.clone();
        let resource_id = self.call(move |session| {
            session.begin()?;
            let found = (|| {
                let find_or_add = session.prepare(ENSURE_RESOURCE)?;
                let resource_id =
                    session.run(|client| ensure_resource_by(client, &find_or_add, &key))?;
                session.exec("DELETE FROM poll WHERE resource_id = $1", &[&resource_id])?;
                session.exec(
                    "SELECT 1 FROM resource_state WHERE id = $1 FOR NO KEY UPDATE",
                    &[&resource_id],
                )?;
                Ok(resource_id)
            })();
            if found.is_err() {
                session.rollback();
            }
            found
        })?;
        Ok(PgCommitTxn::new(self, None, resource_id, false))
    }
}

fn require_poll(session: &mut Session, poll: PollId) -> Result<(), StateError> {
    let statement = session.prepare("SELECT 1 FROM poll WHERE id = $1")?;
    let found = session.run(|client| client.query_opt(&statement, &[&poll.0]))?;
    found.map(drop).ok_or(StateError::PollGone(poll.0))
}

/// What [`PgCommitTxn`] has not written yet.
#[derive(Default)]
struct Buffers {
    notifications: Vec<NewNotification>,
    notification_bytes: usize,
    seen: Vec<(String, i64)>,
    /// (id, hash) -> latest seen_at: one statement may not update a row twice.
    window: HashMap<(String, String), i64>,
}

/// The final transaction of one poll on PostgreSQL: the same methods as the SQLite
/// [`CommitTxn`](super::super::CommitTxn). Methods take `&self`, so the closure given to
/// [`PgCommitTxn::for_each_staged`] can call [`PgCommitTxn::insert_notification`] while the
/// staged rows stream past (read in chunks, written in batches).
pub struct PgCommitTxn<'a> {
    store: &'a mut PgStore,
    poll: Option<PollId>,
    resource_id: i64,
    snapshot: bool,
    buffers: RefCell<Buffers>,
    /// Instances whose advisory lock this transaction holds.
    locked: RefCell<BTreeSet<String>>,
    finished: Cell<bool>,
}

impl<'a> PgCommitTxn<'a> {
    fn new(
        store: &'a mut PgStore,
        poll: Option<PollId>,
        resource_id: i64,
        snapshot: bool,
    ) -> PgCommitTxn<'a> {
        PgCommitTxn {
            store,
            poll,
            resource_id,
            snapshot,
            buffers: RefCell::default(),
            locked: RefCell::default(),
            finished: Cell::new(false),
        }
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
        let mut after = i64::MIN;
        loop {
            let chunk = self.store.call(move |session| {
                let statement = session.prepare(
                    "SELECT seq, record_id, updated, event_type, date, path_params, raw, hash
                     FROM staged_event WHERE poll_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )?;
                let rows = session
                    .run(|client| client.query(&statement, &[&poll.0, &after, &READ_CHUNK]))?;
                rows.into_iter()
                    .map(|row| {
                        Ok((
                            row.get::<_, i64>(0),
                            StagedEvent {
                                record_id: row.get(1),
                                updated: row.get(2),
                                kind: parse_kind(row.get(3))?,
                                date: row.get(4),
                                path_params_json: row.get(5),
                                raw: row.get(6),
                                hash: row.get(7),
                            },
                        ))
                    })
                    .collect::<Result<Vec<_>, StateError>>()
            })?;
            let full = chunk.len() as i64 == READ_CHUNK;
            for (seq, event) in chunk {
                after = seq;
                f(event)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Snapshot mode: calls `f` with each record id of the previous snapshot that this poll did
    /// not see, with its last stored version (None when it was not kept).
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
        let resource_id = self.resource_id;
        let mut after = String::new();
        let mut first = true;
        loop {
            let from = after.clone();
            let chunk = self.store.call(move |session| {
                let statement = session.prepare(
                    "SELECT record_id, raw FROM snapshot_item AS item
                     WHERE resource_id = $1 AND ($4 OR record_id > $3) AND NOT EXISTS (
                         SELECT 1 FROM staged_snapshot AS now
                         WHERE now.poll_id = $2 AND now.record_id = item.record_id)
                     ORDER BY record_id LIMIT $5",
                )?;
                let rows = session.run(|client| {
                    client.query(
                        &statement,
                        &[&resource_id, &poll.0, &from, &first, &READ_CHUNK],
                    )
                })?;
                Ok(rows
                    .into_iter()
                    .map(|row| (row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)))
                    .collect::<Vec<_>>())
            })?;
            first = false;
            let full = chunk.len() as i64 == READ_CHUNK;
            for (record_id, raw) in chunk {
                after.clone_from(&record_id);
                f(record_id, Some(raw).filter(|raw| !raw.is_empty()))?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The resource's watermark as the state holds it now, inside this transaction, with the
    /// resource row locked (no node can move it before this commit ends).
    pub fn watermark(&self) -> Result<Option<DateTime<Utc>>, StateError> {
        let resource_id = self.resource_id;
        let text = self.store.call(move |session| {
            let statement =
                session.prepare("SELECT watermark FROM resource_state WHERE id = $1")?;
            let row = session.run(|client| client.query_one(&statement, &[&resource_id]))?;
            Ok(row.get::<_, Option<String>>(0))
        })?;
        super::parse_time(text)
    }

    /// Remembers what a row of a direct commit saw (buffered; written before `finish` reads
    /// the pairs).
    pub fn remember(&self, event: &StagedEvent) -> Result<(), StateError> {
        let full = {
            let mut buffers = self.buffers.borrow_mut();
            match (&event.hash, event.updated) {
                (Some(hash), Some(seen_at)) => {
                    let latest = buffers
                        .window
                        .entry((event.record_id.clone(), hash.clone()))
                        .or_insert(seen_at);
                    *latest = (*latest).max(seen_at);
                }
                (None, Some(updated)) => buffers.seen.push((event.record_id.clone(), updated)),
                _ => {}
            }
            buffers.seen.len() + buffers.window.len() >= FLUSH_ROWS
        };
        if full { self.flush() } else { Ok(()) }
    }

    /// Adds one notification to the outbox, due for delivery at once (buffered: written in
    /// batches, all before COMMIT).
    pub fn insert_notification(&self, notification: NewNotification) -> Result<(), StateError> {
        let full = {
            let mut buffers = self.buffers.borrow_mut();
            buffers.notification_bytes += notification.body.len();
            buffers.notifications.push(notification);
            buffers.notifications.len() >= FLUSH_ROWS || buffers.notification_bytes >= FLUSH_BYTES
        };
        if full { self.flush() } else { Ok(()) }
    }

    /// Writes what the buffers hold.
    fn flush(&self) -> Result<(), StateError> {
        let buffers = std::mem::take(&mut *self.buffers.borrow_mut());
        if buffers.notifications.is_empty() && buffers.seen.is_empty() && buffers.window.is_empty()
        {
            return Ok(());
        }
        let to_lock: Vec<String> = {
            let locked = self.locked.borrow();
            buffers
                .notifications
                .iter()
                .map(|n| n.instance.clone())
                .filter(|instance| !locked.contains(instance))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let resource_id = self.resource_id;
        let newly_locked = to_lock.clone();
        self.store.call(move |session| {
            session.run(|client| {
                for instance in &to_lock {
                    outbox::lock_instance(client, instance)?;
                }
                outbox::insert_notifications(client, &buffers.notifications)
            })?;
            if !buffers.seen.is_empty() {
                let (ids, updated): (Vec<String>, Vec<i64>) = buffers.seen.into_iter().unzip();
                session.exec(
                    "INSERT INTO seen_pair (resource_id, updated, record_id)
                     SELECT $1, u.updated, u.record_id
                     FROM unnest($2::int8[], $3::text[]) AS u(updated, record_id)
                     ON CONFLICT DO NOTHING",
                    &[&resource_id, &updated, &ids],
                )?;
            }
            if !buffers.window.is_empty() {
                let mut ids = Vec::new();
                let mut hashes = Vec::new();
                let mut seen = Vec::new();
                for ((id, hash), at) in buffers.window {
                    ids.push(id);
                    hashes.push(hash);
                    seen.push(at);
                }
                session.exec(
                    "INSERT INTO window_pair (resource_id, record_id, hash, seen_at)
                     SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::int8[]) AS u
                     ON CONFLICT (resource_id, record_id, hash)
                     DO UPDATE SET seen_at = greatest(window_pair.seen_at, excluded.seen_at)",
                    &[&resource_id, &ids, &hashes, &seen],
                )?;
            }
            Ok(())
        })?;
        self.locked.borrow_mut().extend(newly_locked);
        Ok(())
    }

    /// Commits the poll: watermark, seen pairs, snapshot set, poll result and the
    /// notifications, in one COMMIT; the staging rows go, and this node's poll lease of the
    /// resource is released.
    pub fn finish(self, outcome: PollOutcome) -> Result<(), StateError> {
        self.flush()?;
        let resource_id = self.resource_id;
        let poll = self.poll.map(|poll| poll.0);
        let snapshot = self.snapshot;
        let node = self.store.node.0.clone();
        let result = if outcome.problems.is_some() {
            PollResult::Problems
        } else {
            PollResult::Ok
        };
        self.store.call(move |session| {
            {
                // Seen pairs: (old ∪ staged) above the floor, or none.
                match (outcome.seen_floor, poll) {
                    (None, _) => {
                        session.exec(
                            "DELETE FROM seen_pair WHERE resource_id = $1",
                            &[&resource_id],
                        )?;
                    }
                    (Some(floor), poll) => {
                        if let Some(poll) = poll {
                            session.exec(
                                "INSERT INTO seen_pair (resource_id, updated, record_id)
                                 SELECT $1, updated, record_id FROM staged_event
                                 WHERE poll_id = $2 AND updated IS NOT NULL AND updated >= $3
                                 ON CONFLICT DO NOTHING",
                                &[&resource_id, &poll, &floor],
                            )?;
                        }
                        session.exec(
                            "DELETE FROM seen_pair WHERE resource_id = $1 AND updated < $2",
                            &[&resource_id, &floor],
                        )?;
                    }
                }
                if let Some(floor) = outcome.window_floor {
                    if let Some(poll) = poll {
                        session.exec(
                            "INSERT INTO window_pair (resource_id, record_id, hash, seen_at)
                             SELECT $1, record_id, hash, max(updated) FROM staged_event
                             WHERE poll_id = $2 AND hash IS NOT NULL AND updated IS NOT NULL
                             GROUP BY record_id, hash
                             ON CONFLICT (resource_id, record_id, hash)
                             DO UPDATE SET seen_at = greatest(window_pair.seen_at, excluded.seen_at)",
                            &[&resource_id, &poll],
                        )?;
                    }
                    session.exec(
                        "DELETE FROM window_pair WHERE resource_id = $1 AND seen_at < $2",
                        &[&resource_id, &floor],
                    )?;
                }
                if let (true, Some(poll)) = (snapshot, poll) {
                    session.exec(
                        "DELETE FROM snapshot_item WHERE resource_id = $1 AND NOT EXISTS (
                             SELECT 1 FROM staged_snapshot AS now
                             WHERE now.poll_id = $2 AND now.record_id = snapshot_item.record_id)",
                        &[&resource_id, &poll],
                    )?;
                    session.exec(
                        "INSERT INTO snapshot_item (resource_id, record_id, hash, raw)
                         SELECT $1, record_id, hash, raw FROM staged_snapshot WHERE poll_id = $2
                         ON CONFLICT (resource_id, record_id)
                         DO UPDATE SET hash = excluded.hash, raw = excluded.raw",
                        &[&resource_id, &poll],
                    )?;
                }
                session.exec(
                    "UPDATE resource_state SET watermark = $2, last_poll_at = $3,
                         last_result = $4, last_error = $5, next_due_at = $6,
                         records_read = $7, events = $8
                     WHERE id = $1",
                    &[
                        &resource_id,
                        &encode_opt(outcome.watermark),
                        &encode_time(&outcome.polled_at),
                        &result.as_str(),
                        &outcome.problems,
                        &encode_opt(outcome.next_due_at),
                        &i64::try_from(outcome.records_read).unwrap_or(i64::MAX),
                        &i64::try_from(outcome.events).unwrap_or(i64::MAX),
                    ],
                )?;
                if let Some(poll) = poll {
                    session.exec("DELETE FROM poll WHERE id = $1", &[&poll])?;
                }
                session.exec(
                    "UPDATE poll_lease SET node = NULL, expires_at = NULL
                     WHERE resource_id = $1 AND node = $2",
                    &[&resource_id, &node],
                )?;
            }
            session.commit()
        })?;
        self.finished.set(true);
        Ok(())
    }
}

impl Drop for PgCommitTxn<'_> {
    fn drop(&mut self) {
        if !self.finished.get() {
            // Rolls back whatever this transaction wrote (nothing when the connection is gone).
            let _ = self.store.call(|session| {
                session.rollback();
                Ok(())
            });
        }
    }
}
