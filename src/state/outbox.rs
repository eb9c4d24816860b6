//! The outbox table: notifications waiting for their callback's 2xx, and the read-side queries
//! `status` and `ocpoll outbox list` need. Notifications enter only through a poll's commit
//! ([`super::CommitTxn::insert_notification`]); delivery (attempts, backoff, dead letters,
//! removal on acknowledgement) is the delivery module's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{StateError, Store, encode_time, time_column};

/// A notification as the poll builds it: body bytes final, sent as they are on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// The eventId (stable across retries).
    pub id: String,
    pub instance: String,
    pub body: Vec<u8>,
    pub events: u32,
    pub created_at: DateTime<Utc>,
}

/// Outbox depth of one instance, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxDepth {
    pub pending: u64,
    pub dead: u64,
    /// When the oldest pending notification entered the outbox.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// One notification without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Delivery order (within an instance, lower goes first).
    pub seq: i64,
    pub id: String,
    pub instance: String,
    pub events: u32,
    pub body_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub dead: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxSelection {
    #[default]
    All,
    Pending,
    Dead,
}

/// Which rows `outbox_list` returns; the default is all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxFilter {
    pub instance: Option<String>,
    pub selection: OutboxSelection,
    pub limit: Option<u64>,
}

pub(super) fn insert_notification(
    conn: &Connection,
    notification: &NewNotification,
) -> rusqlite::Result<()> {
    let created_at = encode_time(&notification.created_at);
    conn.prepare_cached(
        "INSERT INTO outbox (id, instance, body, events, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        notification.id,
        notification.instance,
        notification.body,
        notification.events,
        created_at
    ])?;
    Ok(())
}

impl Store {
    /// Pending and dead-lettered counts per instance (instances with an empty outbox are absent).
    pub fn outbox_depth(&self) -> Result<HashMap<String, OutboxDepth>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT instance, sum(dead = 0), sum(dead <> 0),
                        min(CASE WHEN dead = 0 THEN created_at END)
                 FROM outbox GROUP BY instance",
            )
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                OutboxDepth {
                    pending: row.get(1)?,
                    dead: row.get(2)?,
                    oldest_pending_at: time_column(row, 3)?,
                },
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.fail(e))
    }

    /// Notifications in delivery order, without bodies.
    pub fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutboxRow>, StateError> {
        let dead = match filter.selection {
            OutboxSelection::All => None,
            OutboxSelection::Pending => Some(false),
            OutboxSelection::Dead => Some(true),
        };
        // A negative LIMIT means none in SQLite.
        let limit = filter
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, id, instance, events, length(body), created_at, attempts,
                        next_attempt_at, last_error, dead
                 FROM outbox
                 WHERE (?1 IS NULL OR instance = ?1) AND (?2 IS NULL OR dead = ?2)
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(|e| self.fail(e))?;
        stmt.query_map(params![filter.instance, dead, limit], |row| {
            Ok(OutboxRow {
                seq: row.get(0)?,
                id: row.get(1)?,
                instance: row.get(2)?,
                events: row.get(3)?,
                body_bytes: row.get(4)?,
                created_at: time_column(row, 5)?.unwrap_or_default(),
                attempts: row.get(6)?,
                next_attempt_at: time_column(row, 7)?.unwrap_or_default(),
                last_error: row.get(8)?,
                dead: row.get(9)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.fail(e))
    }

    /// The exact body bytes of one notification.
    pub fn outbox_body(&self, id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row("SELECT body FROM outbox WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.fail(e))
    }
}
