//! The webhooks tables (docs/design.md#webhooks): each instance's URL token (and the previous
//! one during its grace period), the receipts already enqueued (for recognising a provider's
//! retry), and the last receipt `status` shows.
//!
//! [`SqliteStore::commit_receipts`] is where a received webhook is born into the outbox: several
//! receipts (the listener's group commit) in one transaction, each one's dedupe row and
//! notifications together, so a crash keeps all of a receipt or none of it, and a retry after
//! the commit finds the dedupe row. It is a durable commit (not [`SqliteStore::relaxed`]): the 2xx it
//! allows tells the provider it may forget the webhook.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::StateError;
use super::outbox::{NewNotification, insert_notification};
use super::sqlite::{SqliteStore, encode_time, time_column};
use crate::instance::Secret;

/// One receipt to commit: its dedupe key and the notifications it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptWrite {
    pub instance: String,
    /// `delivery:<provider id>` or `sha256:<body hash>`.
    pub key: String,
    /// Until when a retry with the same key is recognised.
    pub keep_until: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub notifications: Vec<NewNotification>,
}

/// What became of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Its notifications are in the outbox.
    Enqueued,
    /// A receipt with the same key was enqueued before; nothing was added.
    Duplicate,
}

/// A webhooks instance's row for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStatusRow {
    pub instance: String,
    pub last_receipt_at: Option<DateTime<Utc>>,
    pub accepted: u64,
    pub duplicates: u64,
    /// Until when the previous token works, when one is in its grace period.
    pub previous_token_until: Option<DateTime<Utc>>,
    pub has_token: bool,
}

/// An instance's tokens as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub current: Secret,
    pub previous: Option<(Secret, DateTime<Utc>)>,
}

impl SqliteStore {
    /// Every instance's tokens (the listener's cache).
    pub fn webhook_tokens(&self) -> Result<Vec<(String, StoredTokens)>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT instance, token, previous_token, previous_until FROM webhook_token",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| {
                let previous = match (row.get::<_, Option<String>>(2)?, time_column(row, 3)?) {
                    (Some(token), Some(until)) => Some((Secret::new(token), until)),
                    _ => None,
                };
                Ok((
                    row.get::<_, String>(0)?,
                    StoredTokens {
                        current: Secret::new(row.get::<_, String>(1)?),
                        previous,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.fail(e))?;
        Ok(rows)
    }

    /// The instance's token, stored as `fresh` when it has none yet.
    pub fn webhook_token_or_create(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Secret, StateError> {
        let tx = self.write_txn()?;
        let fail = |e| tx.fail(e);
        tx.execute(
            "INSERT OR IGNORE INTO webhook_token (instance, token, created_at) VALUES (?1, ?2, ?3)",
            // Leaves for its destination: the state file (0600).
            params![instance, fresh.expose(), encode_time(&now)],
        )
        .map_err(fail)?;
        let token: String = tx
            .query_row(
                "SELECT token FROM webhook_token WHERE instance = ?1",
                [instance],
                |row| row.get(0),
            )
            .map_err(fail)?;
        tx.commit()?;
        Ok(Secret::new(token))
    }

    /// Replaces the instance's token with `fresh`; the current one keeps working until
    /// `previous_until`. Without a current token, `fresh` is simply stored.
    pub fn rotate_webhook_token(
        &mut self,
        instance: &str,
        fresh: &Secret,
        now: DateTime<Utc>,
        previous_until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let tx = self.write_txn()?;
        tx.execute(
            "INSERT INTO webhook_token (instance, token, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (instance) DO UPDATE SET
                 previous_token = token, previous_until = ?4,
                 token = excluded.token, created_at = excluded.created_at",
            params![
                instance,
                fresh.expose(),
                encode_time(&now),
                encode_time(&previous_until)
            ],
        )
        .map_err(|e| tx.fail(e))?;
        tx.commit()
    }

    /// Commits `receipts` in one durable transaction, in order; a receipt whose key is already
    /// kept adds nothing. On an error nothing of any of them is kept.
    pub fn commit_receipts(
        &mut self,
        receipts: &[ReceiptWrite],
    ) -> Result<Vec<ReceiptOutcome>, StateError> {
        let tx = self.write_txn()?;
        let fail = |e| tx.fail(e);
        let mut outcomes = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            let fresh = tx
                .prepare_cached(
                    "INSERT INTO webhook_receipt (instance, key, keep_until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (instance, key) DO NOTHING",
                )
                .and_then(|mut insert| {
                    insert.execute(params![
                        receipt.instance,
                        receipt.key,
                        encode_time(&receipt.keep_until)
                    ])
                })
                .map_err(fail)?
                == 1;
            if fresh {
                for notification in &receipt.notifications {
                    insert_notification(&tx, notification).map_err(fail)?;
                }
            }
            tx.prepare_cached(
                "INSERT INTO webhook_status (instance, last_receipt_at, accepted, duplicates)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance) DO UPDATE SET last_receipt_at = excluded.last_receipt_at,
                     accepted = accepted + excluded.accepted,
                     duplicates = duplicates + excluded.duplicates",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    receipt.instance,
                    encode_time(&receipt.received_at),
                    i64::from(fresh),
                    i64::from(!fresh)
                ])
            })
            .map_err(fail)?;
            outcomes.push(if fresh {
                ReceiptOutcome::Enqueued
            } else {
                ReceiptOutcome::Duplicate
            });
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Forgets receipts kept until before `now`; returns how many.
    pub fn trim_webhook_receipts(&mut self, now: DateTime<Utc>) -> Result<usize, StateError> {
        // Forgetting early only lets a late retry through twice: no disk sync needed.
        self.relaxed(|store| {
            store
                .conn
                .execute(
                    "DELETE FROM webhook_receipt WHERE keep_until < ?1",
                    [encode_time(&now)],
                )
                .map_err(|e| store.fail(e))
        })
    }

    /// Every instance with a token or a receipt, for `status`.
    pub fn webhook_statuses(&self) -> Result<Vec<WebhookStatusRow>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT i.instance, s.last_receipt_at, IFNULL(s.accepted, 0),
                        IFNULL(s.duplicates, 0), t.previous_until, t.token IS NOT NULL
                 FROM (SELECT instance FROM webhook_token UNION SELECT instance FROM webhook_status) i
                 LEFT JOIN webhook_status s ON s.instance = i.instance
                 LEFT JOIN webhook_token t ON t.instance = i.instance
                 ORDER BY i.instance",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(WebhookStatusRow {
                    instance: row.get(0)?,
                    last_receipt_at: time_column(row, 1)?,
                    accepted: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
                    duplicates: row.get::<_, i64>(3)?.try_into().unwrap_or(0),
                    previous_token_until: time_column(row, 4)?,
                    has_token: row.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.fail(e))?;
        Ok(rows)
    }

    /// Whether `instance` has a receipt kept under `key` (tests and `status`).
    pub fn webhook_receipt_kept(&self, instance: &str, key: &str) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT 1 FROM webhook_receipt WHERE instance = ?1 AND key = ?2",
                [instance, key],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.fail(e))
    }
}
