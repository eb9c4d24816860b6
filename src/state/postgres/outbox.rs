//! The outbox in PostgreSQL: the same reads and writes as the SQLite store's `outbox`, and the
//! two helpers every insert goes through.
//!
//! What it owns: queue heads read without scanning the outbox (a recursive walk over the
//! partial index `outbox_pending (instance, seq) WHERE NOT dead`: one index seek per instance,
//! like the SQLite store's skip scan), and commit order: [`lock_instance`] takes the
//! transaction-level advisory lock of an instance before its notifications are inserted, so
//! within an instance seq order is commit order even across nodes (a transaction that drew
//! lower seqs cannot commit after one that drew higher ones).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::super::{
    DropTarget, DueNotification, NewNotification, OutboxDepth, OutboxFilter, OutboxRow,
    OutboxSelection, RetryTarget, StateError, encode_time,
};
use super::{PgStore, parse_time, time_or_default, unsigned};

/// The first key of the instances' advisory locks ("ocpl"); the second is the instance's
/// `hashtext`. Two-key locks never collide with the one-key migration lock.
const INSTANCE_LOCK: i32 = 0x6F63_706C;

/// Holds `instance`'s queue until this transaction ends (see the module notes).
pub(super) fn lock_instance(
    client: &mut impl GenericClient,
    instance: &str,
) -> Result<(), postgres::Error> {
    client.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&INSTANCE_LOCK, &instance],
    )?;
    Ok(())
}

/// Inserts `notifications` in one statement, in order (seq follows the array order).
pub(super) fn insert_notifications(
    client: &mut impl GenericClient,
    notifications: &[NewNotification],
) -> Result<(), postgres::Error> {
    if notifications.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(notifications.len());
    let mut instances = Vec::with_capacity(notifications.len());
    let mut bodies: Vec<&[u8]> = Vec::with_capacity(notifications.len());
    let mut events = Vec::with_capacity(notifications.len());
    let mut created = Vec::with_capacity(notifications.len());
    for notification in notifications {
        ids.push(notification.id.as_str());
        instances.push(notification.instance.as_str());
        bodies.push(&notification.body);
        events.push(i64::from(notification.events));
        created.push(encode_time(&notification.created_at));
    }
    client.execute(
        "INSERT INTO outbox (id, instance, body, events, created_at, next_attempt_at)
         SELECT u.id, u.instance, u.body, u.events, u.created_at, u.created_at
         FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::text[])
              AS u(id, instance, body, events, created_at)",
        &[&ids, &instances, &bodies, &events, &created],
    )?;
    Ok(())
}

/// Each instance with pending notifications and its head's seq: a loose index scan.
pub(super) const HEADS: &str = "
    WITH RECURSIVE instances(name) AS (
        SELECT (SELECT min(instance) FROM outbox WHERE NOT dead)
        UNION ALL
        SELECT (SELECT min(instance) FROM outbox WHERE NOT dead AND instance > name)
        FROM instances WHERE name IS NOT NULL
    ),
    heads(seq) AS (
        SELECT (SELECT seq FROM outbox WHERE instance = name AND NOT dead ORDER BY seq LIMIT 1)
        FROM instances WHERE name IS NOT NULL
    )";

fn read_due(row: &postgres::Row) -> Result<DueNotification, StateError> {
    Ok(DueNotification {
        seq: row.get(0),
        id: row.get(1),
        instance: row.get(2),
        body: row.get(3),
        created_at: time_or_default(row.get(4))?,
        attempts: u32::try_from(row.get::<_, i64>(5)).unwrap_or(u32::MAX),
        window_start: time_or_default(row.get(6))?,
    })
}

impl PgStore {
    /// The instances with a notification due at `now`, oldest head first.
    pub fn outbox_due_instances(&self, now: DateTime<Utc>) -> Result<Vec<String>, StateError> {
        let now = encode_time(&now);
        self.call(move |session| {
            static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "{HEADS}
                    SELECT o.instance FROM heads JOIN outbox o ON o.seq = heads.seq
                    WHERE o.next_attempt_at <= $1 ORDER BY o.seq"
                )
            });
            let statement = session.prepare(SQL.as_str())?;
            let rows = session.run(|client| client.query(&statement, &[&now]))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// The head of one instance's queue, if it is due at `now`.
    pub fn outbox_due_head(
        &self,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DueNotification>, StateError> {
        self.outbox_due_head_after(instance, None, now)
    }

    /// The head of one instance's queue once the notifications up to seq `after` are gone, if
    /// it is due at `now`.
    pub fn outbox_due_head_after(
        &self,
        instance: &str,
        after: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<DueNotification>, StateError> {
        let instance = instance.to_owned();
        let after = after.unwrap_or(i64::MIN);
        let now = encode_time(&now);
        self.call(move |session| {
            let statement = session.prepare(
                "SELECT seq, id, instance, body, created_at, attempts,
                        coalesce(retried_at, created_at)
                 FROM (SELECT * FROM outbox WHERE instance = $2 AND NOT dead AND seq > $3
                       ORDER BY seq LIMIT 1) head
                 WHERE next_attempt_at <= $1",
            )?;
            let row =
                session.run(|client| client.query_opt(&statement, &[&now, &instance, &after]))?;
            row.as_ref().map(read_due).transpose()
        })
    }

    /// Each instance's queue head and when it may next be sent, due or not.
    pub fn outbox_head_attempts(&self) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        self.call(|session| {
            static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "{HEADS}
                    SELECT o.instance, o.next_attempt_at FROM heads JOIN outbox o ON o.seq = heads.seq"
                )
            });
            let statement = session.prepare(SQL.as_str())?;
            let rows = session.run(|client| client.query(&statement, &[]))?;
            rows.iter()
                .map(|row| Ok((row.get(0), time_or_default(row.get(1))?)))
                .collect()
        })
    }

    /// Their callbacks acknowledged them: the rows go, in one statement. Returns how many went.
    pub fn outbox_delivered_all(&mut self, ids: &[String]) -> Result<usize, StateError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.call(move |session| {
            let statement = session.prepare("DELETE FROM outbox WHERE id = ANY($1::text[])")?;
            // Not synced on its own, as with SQLite: lost in a crash, the notifications are
            // sent again with their eventIds.
            session
                .run(|client| {
                    let mut tx = client.transaction()?;
                    tx.batch_execute(super::staging::RELAXED)?;
                    let deleted = tx.execute(&statement, &[&ids])?;
                    tx.commit()?;
                    Ok(deleted)
                })
                .map(|n| n as usize)
        })
    }

    /// Pending notifications in the outbox, all instances.
    pub fn outbox_pending(&self) -> Result<u64, StateError> {
        self.call(|session| {
            let statement = session.prepare("SELECT count(*) FROM outbox WHERE NOT dead")?;
            let row = session.run(|client| client.query_one(&statement, &[]))?;
            Ok(unsigned(row.get(0)))
        })
    }

    /// One more failed attempt; the next one is not before `next_attempt_at`.
    pub fn outbox_attempt_failed(
        &self,
        id: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StateError> {
        let id = id.to_owned();
        let error = error.to_owned();
        let next = encode_time(&next_attempt_at);
        self.call(move |session| {
            let statement = session.prepare(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
                 WHERE id = $1",
            )?;
            session
                .run(|client| client.execute(&statement, &[&id, &next, &error]))
                .map(drop)
        })
    }

    /// Gives up on a notification (counting the attempt that failed): it stays, marked dead.
    pub fn outbox_dead_letter(&self, id: &str, reason: &str) -> Result<(), StateError> {
        let id = id.to_owned();
        let reason = reason.to_owned();
        self.call(move |session| {
            let statement = session.prepare(
                "UPDATE outbox SET attempts = attempts + 1, dead = true, last_error = $2
                 WHERE id = $1",
            )?;
            session
                .run(|client| client.execute(&statement, &[&id, &reason]))
                .map(drop)
        })
    }

    /// `outbox retry`: the chosen rows become pending and due at `now`, with a fresh retry
    /// window. Returns how many rows changed.
    pub fn outbox_retry(
        &self,
        target: &RetryTarget,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        let target = target.clone();
        let now = encode_time(&now);
        self.call(move |session| {
            session
                .run(|client| match &target {
                    RetryTarget::Id(id) => client.execute(
                        "UPDATE outbox SET dead = false, next_attempt_at = $2, retried_at = $2
                         WHERE id = $1",
                        &[id, &now],
                    ),
                    RetryTarget::AllDead => client.execute(
                        "UPDATE outbox SET dead = false, next_attempt_at = $1, retried_at = $1
                         WHERE dead",
                        &[&now],
                    ),
                })
                .map(|n| n as usize)
        })
    }

    /// `outbox drop`: deletes the chosen rows for good. Returns how many went.
    pub fn outbox_drop(&self, target: &DropTarget) -> Result<usize, StateError> {
        let target = target.clone();
        self.call(move |session| {
            session
                .run(|client| match &target {
                    DropTarget::Id(id) => client.execute("DELETE FROM outbox WHERE id = $1", &[id]),
                    DropTarget::AllDead => client.execute("DELETE FROM outbox WHERE dead", &[]),
                    DropTarget::Instance(instance) => {
                        client.execute("DELETE FROM outbox WHERE instance = $1", &[instance])
                    }
                })
                .map(|n| n as usize)
        })
    }

    /// Pending and dead-lettered counts per instance (instances with an empty outbox are absent).
    pub fn outbox_depth(&self) -> Result<HashMap<String, OutboxDepth>, StateError> {
        self.call(|session| {
            let rows = session.run(|client| {
                client.query(
                    "SELECT instance, count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead),
                            min(created_at) FILTER (WHERE NOT dead)
                     FROM outbox GROUP BY instance",
                    &[],
                )
            })?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.get::<_, String>(0),
                        OutboxDepth {
                            pending: unsigned(row.get(1)),
                            dead: unsigned(row.get(2)),
                            oldest_pending_at: parse_time(row.get(3))?,
                        },
                    ))
                })
                .collect()
        })
    }

    /// Notifications in delivery order, without bodies.
    pub fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StateError> {
        let dead = match filter.selection {
            OutboxSelection::All => None,
            OutboxSelection::Pending => Some(false),
            OutboxSelection::Dead => Some(true),
        };
        let instance = filter.instance.clone();
        let limit = filter
            .limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        self.call(move |session| {
            let rows = session.run(|client| {
                client.query(
                    "SELECT seq, id, instance, events, octet_length(body), created_at, attempts,
                            next_attempt_at, last_error, dead
                     FROM outbox
                     WHERE ($1::text IS NULL OR instance = $1) AND ($2::bool IS NULL OR dead = $2)
                     ORDER BY seq LIMIT $3",
                    &[&instance, &dead, &limit],
                )
            })?;
            rows.iter()
                .map(|row| {
                    Ok(OutboxRow {
                        seq: row.get(0),
                        id: row.get(1),
                        instance: row.get(2),
                        events: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
                        body_bytes: u64::try_from(row.get::<_, i32>(4)).unwrap_or(0),
                        created_at: time_or_default(row.get(5))?,
                        attempts: u32::try_from(row.get::<_, i64>(6)).unwrap_or(u32::MAX),
                        next_attempt_at: time_or_default(row.get(7))?,
                        last_error: row.get(8),
                        dead: row.get(9),
                    })
                })
                .collect()
        })
    }

    /// The exact body bytes of one notification.
    pub fn outbox_body(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let id = id.to_owned();
        self.call(move |session| {
            let row = session
                .run(|client| client.query_opt("SELECT body FROM outbox WHERE id = $1", &[&id]))?;
            Ok(row.map(|row| row.get(0)))
        })
    }
}
