//! The outbox table: notifications waiting for their callback's 2xx, the read-side queries
//! `status` and `ocpoll outbox list` need, and the delivery side's writes. Notifications enter
//! only through a poll's commit ([`super::CommitTxn::insert_notification`]); they leave only by
//! [`SqliteStore::outbox_delivered_all`] (after a 2xx) or [`SqliteStore::outbox_drop`] (a user's decision).
//!
//! What survives a crash: every row, with the attempts, backoff and dead-letter marks of the
//! last committed write. A crash between a 2xx and [`SqliteStore::outbox_delivered_all`] (delivery
//! writes acknowledgements in batches) leaves the row pending, so it is sent again with the same
//! eventId (at least once; receivers deduplicate).
//!
//! Order: within an instance, only the lowest-seq pending row (its *head*) may be sent, so a
//! failing notification blocks its own instance and nothing else. Dead letters do not block.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::StateError;
use super::sqlite::{SqliteStore, encode_time, time_column};

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

/// A notification ready to send: the head of its instance's queue, due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotification {
    pub seq: i64,
    pub id: String,
    pub instance: String,
    pub body: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// Where the retry window starts: when it entered the outbox, or its last `outbox retry`.
    pub window_start: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// Which rows `outbox retry` makes due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    /// One notification, dead or pending.
    Id(String),
    AllDead,
}

/// Which rows `outbox drop` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropTarget {
    Id(String),
    AllDead,
    /// Every row of an instance, pending and dead.
    Instance(String),
}

/// One instance's head after seq ?3: the index on (instance, dead, seq) finds it directly (one
/// delivery must not group every instance's queue to find its own). Delivery passes the seq
/// of its last acknowledged notification, whose deletion may still wait in its batch.
const DUE_HEAD_OF_INSTANCE: &str = "
    SELECT seq, id, instance, body, created_at, attempts, coalesce(retried_at, created_at)
    FROM (SELECT * FROM outbox WHERE instance = ?2 AND dead = 0 AND seq > ?3 ORDER BY seq LIMIT 1)
    WHERE next_attempt_at <= ?1";

fn read_due(row: &rusqlite::Row<'_>) -> rusqlite::Result<DueNotification> {
    Ok(DueNotification {
        seq: row.get(0)?,
        id: row.get(1)?,
        instance: row.get(2)?,
        body: row.get(3)?,
        created_at: time_column(row, 4)?.unwrap_or_default(),
        attempts: row.get(5)?,
        window_start: time_column(row, 6)?.unwrap_or_default(),
    })
}

/// Each instance with pending notifications and its queue head's seq, found by walking the
/// index on (instance, dead, seq) from one instance to the next (a skip scan: a few index
/// seeks per instance), never grouping the table: a receiver that is down lets the outbox
/// grow by thousands of rows a second, and every delivery pass reads the heads.
const HEADS: &str = "
    WITH RECURSIVE instances(name) AS (
        SELECT (SELECT min(instance) FROM outbox WHERE dead = 0)
        UNION ALL
        SELECT (SELECT min(instance) FROM outbox WHERE dead = 0 AND instance > name)
        FROM instances WHERE name IS NOT NULL
    ),
    heads(seq) AS (
        SELECT (SELECT seq FROM outbox WHERE instance = name AND dead = 0 ORDER BY seq LIMIT 1)
        FROM instances WHERE name IS NOT NULL
    )";

/// The instances whose queue head is due: read from the index and the head rows' leading
/// columns only, never the bodies.
static DUE_INSTANCES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{HEADS}
        SELECT o.instance FROM heads JOIN outbox o ON o.seq = heads.seq
        WHERE o.next_attempt_at <= ?1
        ORDER BY o.seq"
    )
});

/// Each instance's queue head and when it may next be sent.
static HEAD_ATTEMPTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{HEADS}
        SELECT o.instance, o.next_attempt_at FROM heads JOIN outbox o ON o.seq = heads.seq"
    )
});

impl SqliteStore {
    /// The instances with a notification due at `now`, oldest head first.
    pub fn outbox_due_instances(&self, now: DateTime<Utc>) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(&DUE_INSTANCES)
            .map_err(|e| self.fail(e))?;
        stmt.query_map(params![encode_time(&now)], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))
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
    /// it is due at `now`: delivery passes its last acknowledged notification, whose row stays
    /// until its batch of acknowledgements is written ([`SqliteStore::outbox_delivered_all`]).
    pub fn outbox_due_head_after(
        &self,
        instance: &str,
        after: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<DueNotification>, StateError> {
        let after = after.unwrap_or(i64::MIN);
        self.conn
            .prepare_cached(DUE_HEAD_OF_INSTANCE)
            .and_then(|mut stmt| {
                stmt.query_row(params![encode_time(&now), instance, after], read_due)
                    .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// Each instance's queue head and when it may next be sent, due or not: the delivery
    /// worker sleeps until the earliest one of the instances it can send to.
    pub fn outbox_head_attempts(&self) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(&HEAD_ATTEMPTS)
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |row| {
            Ok((row.get(0)?, time_column(row, 1)?.unwrap_or_default()))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.fail(e))
    }

    /// Their callbacks acknowledged them: the rows go, all in one transaction (delivery batches
    /// its acknowledgements: one commit for many 2xx instead of one each). Returns how many
    /// rows went (ids dropped meanwhile by `outbox drop` count none). A second backend
    /// implements it as one statement over the ids.
    ///
    /// Not synced on its own: lost in a crash or power cut, the notifications are sent again
    /// with their eventIds, which at-least-once allows; the next [`SqliteStore::sync`] or synced
    /// commit covers it.
    pub fn outbox_delivered_all(&mut self, ids: &[String]) -> Result<usize, StateError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.relaxed(|store| {
            let tx = store.write_txn()?;
            let mut deleted = 0;
            {
                let mut stmt = tx
                    .prepare_cached("DELETE FROM outbox WHERE id = ?1")
                    .map_err(|e| tx.fail(e))?;
                for id in ids {
                    deleted += stmt.execute([id]).map_err(|e| tx.fail(e))?;
                }
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    /// Pending notifications in the outbox, all instances (what a delivery pass leaves).
    pub fn outbox_pending(&self) -> Result<u64, StateError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE dead = 0")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map_err(|e| self.fail(e))
    }

    /// One more failed attempt; the next one is not before `next_attempt_at`.
    pub fn outbox_attempt_failed(
        &self,
        id: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id, encode_time(&next_attempt_at), error]))
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    /// Gives up on a notification (counting the attempt that failed): it stays, marked dead,
    /// until `outbox retry` or `outbox drop`.
    pub fn outbox_dead_letter(&self, id: &str, reason: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, dead = 1, last_error = ?2
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id, reason]))
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    /// `outbox retry`: the chosen rows become pending and due at `now`, with a fresh retry
    /// window from `now` (a user who fixed the receiver expects the full window again, not a
    /// dead letter at the first 503). Attempts and the last error are kept for the record.
    /// Returns how many rows changed.
    pub fn outbox_retry(
        &self,
        target: &RetryTarget,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        let now = encode_time(&now);
        let result = match target {
            RetryTarget::Id(id) => self.conn.execute(
                "UPDATE outbox SET dead = 0, next_attempt_at = ?2, retried_at = ?2 WHERE id = ?1",
                params![id, now],
            ),
            RetryTarget::AllDead => self.conn.execute(
                "UPDATE outbox SET dead = 0, next_attempt_at = ?1, retried_at = ?1 WHERE dead <> 0",
                params![now],
            ),
        };
        result.map_err(|e| self.fail(e))
    }

    /// `outbox drop`: deletes the chosen rows for good. Returns how many went.
    pub fn outbox_drop(&self, target: &DropTarget) -> Result<usize, StateError> {
        let result = match target {
            DropTarget::Id(id) => self.conn.execute("DELETE FROM outbox WHERE id = ?1", [id]),
            DropTarget::AllDead => self.conn.execute("DELETE FROM outbox WHERE dead <> 0", []),
            DropTarget::Instance(instance) => self
                .conn
                .execute("DELETE FROM outbox WHERE instance = ?1", [instance]),
        };
        result.map_err(|e| self.fail(e))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    /// Inserts notification `id` of `instance`, created (and first due) at `at(created)`.
    fn add(store: &SqliteStore, id: &str, instance: &str, created: i64) {
        insert_notification(
            &store.conn,
            &NewNotification {
                id: id.to_owned(),
                instance: instance.to_owned(),
                body: format!(r#"{{"message":{{"eventId":"{id}"}}}}"#).into_bytes(),
                events: 1,
                created_at: at(created),
            },
        )
        .unwrap();
    }

    #[test]
    fn reading_heads_does_not_prepare_the_statement_again() {
        let store = SqliteStore::open_in_memory().unwrap();
        for (n, instance) in ["a", "b", "c"].iter().enumerate() {
            add(&store, &format!("{instance}1"), instance, n as i64);
        }
        for (n, instance) in ["a", "b", "c", "a"].iter().enumerate() {
            let after = (n > 2).then_some(0);
            store
                .outbox_due_head_after(instance, after, at(n as i64))
                .unwrap();
        }
        let statement = store.conn.prepare_cached(DUE_HEAD_OF_INSTANCE).unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "each new binding re-planned the cached statement"
        );
    }

    /// The heads found by walking the index agree with grouping the whole table (the query
    /// they replaced), over instances with dead rows before, between and after pending ones,
    /// heads not yet due, and instances with only dead rows.
    #[test]
    fn heads_by_skip_scan_agree_with_grouping_the_table() {
        const GROUPED_DUE: &str = "
            SELECT o.instance FROM outbox o
            JOIN (SELECT instance, min(seq) AS seq FROM outbox WHERE dead = 0 GROUP BY instance) head
              ON head.seq = o.seq
            WHERE o.next_attempt_at <= ?1 ORDER BY o.seq";
        const GROUPED_HEADS: &str = "
            SELECT o.instance, o.next_attempt_at FROM outbox o
            JOIN (SELECT instance, min(seq) AS seq FROM outbox WHERE dead = 0 GROUP BY instance) head
              ON head.seq = o.seq ORDER BY o.instance";
        let store = SqliteStore::open_in_memory().unwrap();
        for n in 0..300 {
            let instance = format!("i{:02}", (n * 7) % 23);
            add(&store, &format!("n{n}"), &instance, n);
            match n % 5 {
                0 => store.outbox_dead_letter(&format!("n{n}"), "gone").unwrap(),
                1 => store
                    .outbox_attempt_failed(&format!("n{n}"), at(n + 200), "503")
                    .unwrap(),
                _ => {}
            }
        }
        add(&store, "only-dead", "zz", 1);
        store.outbox_dead_letter("only-dead", "gone").unwrap();
        for now in [0, 50, 150, 250, 400, 600] {
            let grouped: Vec<String> = store
                .conn
                .prepare(GROUPED_DUE)
                .unwrap()
                .query_map(params![encode_time(&at(now))], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                store.outbox_due_instances(at(now)).unwrap(),
                grouped,
                "at {now}"
            );
        }
        let grouped: Vec<(String, String)> = store
            .conn
            .prepare(GROUPED_HEADS)
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut walked: Vec<(String, String)> = store
            .outbox_head_attempts()
            .unwrap()
            .into_iter()
            .map(|(instance, when)| (instance, encode_time(&when)))
            .collect();
        walked.sort();
        assert_eq!(walked, grouped);
        assert!(!walked.iter().any(|(instance, _)| instance == "zz"));
    }

    /// The heads are found by index seeks: no plan step scans or groups the outbox.
    #[test]
    fn heads_are_read_without_scanning_the_outbox() {
        let store = SqliteStore::open_in_memory().unwrap();
        let now = encode_time(&at(0));
        for (query, bound) in [(&*DUE_INSTANCES, 1), (&*HEAD_ATTEMPTS, 0)] {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap();
            let detail = |row: &rusqlite::Row<'_>| row.get::<_, String>(3);
            let plan: Vec<String> = match bound {
                1 => stmt.query_map(params![now], detail),
                _ => stmt.query_map([], detail),
            }
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
            for step in &plan {
                assert!(
                    !step.starts_with("SCAN o") && !step.contains("GROUP BY"),
                    "{step}\n{plan:#?}"
                );
            }
        }
    }
}
